/*
 * distance_avx512.c -- float32 kernels for VDB_SIMD_AVX512 (AVX-512F, 16 lanes).
 *
 * Compiled on x86-64 only, with per-function target attributes (no -march flag for the build
 * machine);
 * vdb_kernels_for hands this table out only when __builtin_cpu_supports reports avx512f (which
 * libgcc sets only if the OS also saves the zmm state). Same structure as distance_avx2.c with
 * twice the lane count, so the two files can be reviewed side by side.
 *
 * Invariants: see distance_int.h. Unaligned loads; 4 accumulators for pairs, 4 for the 1x4
 * blocks, 12 for 4x3; every kernel finishes dim % 16 (or % 64 for pairs) elements with a
 * scalar tail.
 */
#include "distance_int.h"
#include "vecdb.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define VDB_AVX512 __attribute__((target("avx512f")))

/* Keeps v in a register: without it gcc folds a query load into each of the two FMAs that
 * use it, and the 4x3 kernels become load-bound (one load per FMA instead of 7 per 12). */
#define KEEP_IN_REGISTER(v) __asm__("" : "+v"(v))

VDB_AVX512 static inline float hsum16(__m512 v) { return _mm512_reduce_add_ps(v); }

VDB_AVX512 static float l2_avx512(const float *a, const float *b, size_t dim) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= dim; i += 64) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32));
        __m512 d3 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48));
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
        s2 = _mm512_fmadd_ps(d2, d2, s2);
        s3 = _mm512_fmadd_ps(d3, d3, s3);
    }
    for (; i + 16 <= dim; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    float s = hsum16(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    for (; i < dim; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

VDB_AVX512 static float dot_avx512(const float *a, const float *b, size_t dim) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= dim; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= dim; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    float s = hsum16(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    for (; i < dim; i++) s += a[i] * b[i];
    return s;
}

/* One query, four rows, one accumulator per row: the same order of operations per (query,
 * row) pair as the 4x3 kernels below, so a distance does not depend on which kernel computed
 * it. Four FMA chains are enough here: one query's scan is bound by memory, not by FMAs. */
VDB_AVX512 static void l2_1x4_avx512(const float *q, const float *const *x, size_t dim,
                                     float *out) {
    const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m512 v = _mm512_loadu_ps(q + i), d;
        d = _mm512_sub_ps(v, _mm512_loadu_ps(x0 + i)), a0 = _mm512_fmadd_ps(d, d, a0);
        d = _mm512_sub_ps(v, _mm512_loadu_ps(x1 + i)), a1 = _mm512_fmadd_ps(d, d, a1);
        d = _mm512_sub_ps(v, _mm512_loadu_ps(x2 + i)), a2 = _mm512_fmadd_ps(d, d, a2);
        d = _mm512_sub_ps(v, _mm512_loadu_ps(x3 + i)), a3 = _mm512_fmadd_ps(d, d, a3);
    }
    float s0 = hsum16(a0), s1 = hsum16(a1), s2 = hsum16(a2), s3 = hsum16(a3);
    for (; i < dim; i++) {
        float d0 = q[i] - x0[i], d1 = q[i] - x1[i], d2 = q[i] - x2[i], d3 = q[i] - x3[i];
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
}

VDB_AVX512 static void dot_1x4_avx512(const float *q, const float *const *x, size_t dim,
                                      float *out) {
    const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m512 v = _mm512_loadu_ps(q + i);
        a0 = _mm512_fmadd_ps(v, _mm512_loadu_ps(x0 + i), a0);
        a1 = _mm512_fmadd_ps(v, _mm512_loadu_ps(x1 + i), a1);
        a2 = _mm512_fmadd_ps(v, _mm512_loadu_ps(x2 + i), a2);
        a3 = _mm512_fmadd_ps(v, _mm512_loadu_ps(x3 + i), a3);
    }
    float s0 = hsum16(a0), s1 = hsum16(a1), s2 = hsum16(a2), s3 = hsum16(a3);
    for (; i < dim; i++) {
        s0 += q[i] * x0[i];
        s1 += q[i] * x1[i];
        s2 += q[i] * x2[i];
        s3 += q[i] * x3[i];
    }
    out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
}

/* Four queries, three rows, L2: like dot_4x3 below plus a difference register per product
 * (gcc then reads one row operand from L1 instead of a register; still FMA-bound). */
VDB_AVX512 static void l2_4x3_avx512(const float *const *q, const float *const *x, size_t dim,
                                     float *out) {
    const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3];
    const float *x0 = x[0], *x1 = x[1], *x2 = x[2];
    __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps(), c02 = _mm512_setzero_ps();
    __m512 c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps(), c12 = _mm512_setzero_ps();
    __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps(), c22 = _mm512_setzero_ps();
    __m512 c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps(), c32 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m512 y0 = _mm512_loadu_ps(x0 + i), y1 = _mm512_loadu_ps(x1 + i);
        __m512 y2 = _mm512_loadu_ps(x2 + i), v, d;
        v = _mm512_loadu_ps(q0 + i);
        KEEP_IN_REGISTER(v);
        d = _mm512_sub_ps(v, y0), c00 = _mm512_fmadd_ps(d, d, c00);
        d = _mm512_sub_ps(v, y1), c01 = _mm512_fmadd_ps(d, d, c01);
        d = _mm512_sub_ps(v, y2), c02 = _mm512_fmadd_ps(d, d, c02);
        v = _mm512_loadu_ps(q1 + i);
        KEEP_IN_REGISTER(v);
        d = _mm512_sub_ps(v, y0), c10 = _mm512_fmadd_ps(d, d, c10);
        d = _mm512_sub_ps(v, y1), c11 = _mm512_fmadd_ps(d, d, c11);
        d = _mm512_sub_ps(v, y2), c12 = _mm512_fmadd_ps(d, d, c12);
        v = _mm512_loadu_ps(q2 + i);
        KEEP_IN_REGISTER(v);
        d = _mm512_sub_ps(v, y0), c20 = _mm512_fmadd_ps(d, d, c20);
        d = _mm512_sub_ps(v, y1), c21 = _mm512_fmadd_ps(d, d, c21);
        d = _mm512_sub_ps(v, y2), c22 = _mm512_fmadd_ps(d, d, c22);
        v = _mm512_loadu_ps(q3 + i);
        KEEP_IN_REGISTER(v);
        d = _mm512_sub_ps(v, y0), c30 = _mm512_fmadd_ps(d, d, c30);
        d = _mm512_sub_ps(v, y1), c31 = _mm512_fmadd_ps(d, d, c31);
        d = _mm512_sub_ps(v, y2), c32 = _mm512_fmadd_ps(d, d, c32);
    }
    float s[12] = {hsum16(c00), hsum16(c01), hsum16(c02), hsum16(c10), hsum16(c11), hsum16(c12),
                   hsum16(c20), hsum16(c21), hsum16(c22), hsum16(c30), hsum16(c31), hsum16(c32)};
    for (; i < dim; i++) {
        for (int k = 0; k < 4; k++) {
            float d0 = q[k][i] - x0[i], d1 = q[k][i] - x1[i], d2 = q[k][i] - x2[i];
            s[3 * k] += d0 * d0;
            s[3 * k + 1] += d1 * d1;
            s[3 * k + 2] += d2 * d2;
        }
    }
    for (int k = 0; k < 12; k++) out[k] = s[k];
}

/* Four queries, three rows: twelve accumulators, three row registers and one query register
 * (all sixteen ymm registers for AVX2); each row load feeds four FMAs, each query load three. */
VDB_AVX512 static void dot_4x3_avx512(const float *const *q, const float *const *x, size_t dim,
                                      float *out) {
    const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3];
    const float *x0 = x[0], *x1 = x[1], *x2 = x[2];
    __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps(), c02 = _mm512_setzero_ps();
    __m512 c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps(), c12 = _mm512_setzero_ps();
    __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps(), c22 = _mm512_setzero_ps();
    __m512 c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps(), c32 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m512 y0 = _mm512_loadu_ps(x0 + i), y1 = _mm512_loadu_ps(x1 + i);
        __m512 y2 = _mm512_loadu_ps(x2 + i), v;
        v = _mm512_loadu_ps(q0 + i);
        KEEP_IN_REGISTER(v);
        c00 = _mm512_fmadd_ps(v, y0, c00), c01 = _mm512_fmadd_ps(v, y1, c01);
        c02 = _mm512_fmadd_ps(v, y2, c02);
        v = _mm512_loadu_ps(q1 + i);
        KEEP_IN_REGISTER(v);
        c10 = _mm512_fmadd_ps(v, y0, c10), c11 = _mm512_fmadd_ps(v, y1, c11);
        c12 = _mm512_fmadd_ps(v, y2, c12);
        v = _mm512_loadu_ps(q2 + i);
        KEEP_IN_REGISTER(v);
        c20 = _mm512_fmadd_ps(v, y0, c20), c21 = _mm512_fmadd_ps(v, y1, c21);
        c22 = _mm512_fmadd_ps(v, y2, c22);
        v = _mm512_loadu_ps(q3 + i);
        KEEP_IN_REGISTER(v);
        c30 = _mm512_fmadd_ps(v, y0, c30), c31 = _mm512_fmadd_ps(v, y1, c31);
        c32 = _mm512_fmadd_ps(v, y2, c32);
    }
    float s[12] = {hsum16(c00), hsum16(c01), hsum16(c02), hsum16(c10), hsum16(c11), hsum16(c12),
                   hsum16(c20), hsum16(c21), hsum16(c22), hsum16(c30), hsum16(c31), hsum16(c32)};
    for (; i < dim; i++) {
        for (int k = 0; k < 4; k++) {
            s[3 * k] += q[k][i] * x0[i];
            s[3 * k + 1] += q[k][i] * x1[i];
            s[3 * k + 2] += q[k][i] * x2[i];
        }
    }
    for (int k = 0; k < 12; k++) out[k] = s[k];
}

const vdb_kernels vdb_kernels_avx512 = {
    VDB_SIMD_AVX512, l2_avx512,     dot_avx512,     l2_1x4_avx512,
    dot_1x4_avx512,  l2_4x3_avx512, dot_4x3_avx512,
};

#endif /* __x86_64__ */
