/*
 * distance_scalar.c -- portable float32 kernels (VDB_SIMD_SCALAR): the reference every SIMD
 * table is tested against, and the only table on non-x86 builds.
 *
 * Invariants: see distance_int.h. Each pairwise sum uses four independent accumulators (so
 * the loop is not bound by add latency) and a tail loop for dim % 4.
 */
#include "distance_int.h"
#include "vecdb.h"

static float l2_scalar(const float *a, const float *b, size_t dim) {
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    size_t i = 0;
    for (; i + 4 <= dim; i += 4) {
        float d0 = a[i] - b[i], d1 = a[i + 1] - b[i + 1];
        float d2 = a[i + 2] - b[i + 2], d3 = a[i + 3] - b[i + 3];
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    for (; i < dim; i++) {
        float d = a[i] - b[i];
        s0 += d * d;
    }
    return (s0 + s1) + (s2 + s3);
}

static float dot_scalar(const float *a, const float *b, size_t dim) {
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    size_t i = 0;
    for (; i + 4 <= dim; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < dim; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static void l2_1x4_scalar(const float *q, const float *const *x, size_t dim, float *out) {
    for (int j = 0; j < 4; j++) out[j] = l2_scalar(q, x[j], dim);
}

static void dot_1x4_scalar(const float *q, const float *const *x, size_t dim, float *out) {
    for (int j = 0; j < 4; j++) out[j] = dot_scalar(q, x[j], dim);
}

static void l2_4x3_scalar(const float *const *q, const float *const *x, size_t dim, float *out) {
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) out[3 * i + j] = l2_scalar(q[i], x[j], dim);
}

static void dot_4x3_scalar(const float *const *q, const float *const *x, size_t dim, float *out) {
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) out[3 * i + j] = dot_scalar(q[i], x[j], dim);
}

const vdb_kernels vdb_kernels_scalar = {
    VDB_SIMD_SCALAR, l2_scalar,     dot_scalar,     l2_1x4_scalar,
    dot_1x4_scalar,  l2_4x3_scalar, dot_4x3_scalar,
};
