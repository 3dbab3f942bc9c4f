/*
 * distance_avx2.c -- float32 kernels for VDB_SIMD_AVX2 (AVX2 + FMA, 8 lanes).
 *
 * Compiled on x86-64 only, with per-function target attributes (no -march flag for the build
 * machine), so the rest of the build stays baseline x86-64; vdb_kernels_for hands this table out only when
 * __builtin_cpu_supports reports avx2 and fma.
 *
 * Invariants: see distance_int.h. Vector loops use unaligned loads and enough independent
 * accumulators to cover FMA latency (4 for pairs, 4 for the 1x4 blocks, 12 for 4x3);
 * every kernel finishes dim % 8 (or % 32 for pairs) elements with a scalar tail.
 */
#include "distance_int.h"
#include "vecdb.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define VDB_AVX2 __attribute__((target("avx2,fma")))

/* Keeps v in a register: without it gcc folds a query load into each of the two FMAs that
 * use it, and the 4x3 kernels become load-bound (one load per FMA instead of 7 per 12). */
#define KEEP_IN_REGISTER(v) __asm__("" : "+x"(v))

VDB_AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

VDB_AVX2 static float l2_avx2(const float *a, const float *b, size_t dim) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
        __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
        s2 = _mm256_fmadd_ps(d2, d2, s2);
        s3 = _mm256_fmadd_ps(d3, d3, s3);
    }
    for (; i + 8 <= dim; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < dim; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

VDB_AVX2 static float dot_avx2(const float *a, const float *b, size_t dim) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= dim; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= dim; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < dim; i++) s += a[i] * b[i];
    return s;
}

/* One query, four rows, one accumulator per row: the same order of operations per (query,
 * row) pair as the 4x3 kernels below, so a distance does not depend on which kernel computed
 * it. Four FMA chains are enough here: one query's scan is bound by memory, not by FMAs. */
VDB_AVX2 static void l2_1x4_avx2(const float *q, const float *const *x, size_t dim,
                                 float *out) {
    const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        __m256 v = _mm256_loadu_ps(q + i), d;
        d = _mm256_sub_ps(v, _mm256_loadu_ps(x0 + i)), a0 = _mm256_fmadd_ps(d, d, a0);
        d = _mm256_sub_ps(v, _mm256_loadu_ps(x1 + i)), a1 = _mm256_fmadd_ps(d, d, a1);
        d = _mm256_sub_ps(v, _mm256_loadu_ps(x2 + i)), a2 = _mm256_fmadd_ps(d, d, a2);
        d = _mm256_sub_ps(v, _mm256_loadu_ps(x3 + i)), a3 = _mm256_fmadd_ps(d, d, a3);
    }
    float s0 = hsum8(a0), s1 = hsum8(a1), s2 = hsum8(a2), s3 = hsum8(a3);
    for (; i < dim; i++) {
        float d0 = q[i] - x0[i], d1 = q[i] - x1[i], d2 = q[i] - x2[i], d3 = q[i] - x3[i];
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
}

VDB_AVX2 static void dot_1x4_avx2(const float *q, const float *const *x, size_t dim,
                                  float *out) {
    const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        __m256 v = _mm256_loadu_ps(q + i);
        a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x0 + i), a0);
        a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x1 + i), a1);
        a2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x2 + i), a2);
        a3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x3 + i), a3);
    }
    float s0 = hsum8(a0), s1 = hsum8(a1), s2 = hsum8(a2), s3 = hsum8(a3);
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
VDB_AVX2 static void l2_4x3_avx2(const float *const *q, const float *const *x, size_t dim,
                                 float *out) {
    const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3];
    const float *x0 = x[0], *x1 = x[1], *x2 = x[2];
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c02 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps(), c12 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c22 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c32 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        __m256 y0 = _mm256_loadu_ps(x0 + i), y1 = _mm256_loadu_ps(x1 + i);
        __m256 y2 = _mm256_loadu_ps(x2 + i), v, d;
        v = _mm256_loadu_ps(q0 + i);
        KEEP_IN_REGISTER(v);
        d = _mm256_sub_ps(v, y0), c00 = _mm256_fmadd_ps(d, d, c00);
        d = _mm256_sub_ps(v, y1), c01 = _mm256_fmadd_ps(d, d, c01);
        d = _mm256_sub_ps(v, y2), c02 = _mm256_fmadd_ps(d, d, c02);
        v = _mm256_loadu_ps(q1 + i);
        KEEP_IN_REGISTER(v);
        d = _mm256_sub_ps(v, y0), c10 = _mm256_fmadd_ps(d, d, c10);
        d = _mm256_sub_ps(v, y1), c11 = _mm256_fmadd_ps(d, d, c11);
        d = _mm256_sub_ps(v, y2), c12 = _mm256_fmadd_ps(d, d, c12);
        v = _mm256_loadu_ps(q2 + i);
        KEEP_IN_REGISTER(v);
        d = _mm256_sub_ps(v, y0), c20 = _mm256_fmadd_ps(d, d, c20);
        d = _mm256_sub_ps(v, y1), c21 = _mm256_fmadd_ps(d, d, c21);
        d = _mm256_sub_ps(v, y2), c22 = _mm256_fmadd_ps(d, d, c22);
        v = _mm256_loadu_ps(q3 + i);
        KEEP_IN_REGISTER(v);
        d = _mm256_sub_ps(v, y0), c30 = _mm256_fmadd_ps(d, d, c30);
        d = _mm256_sub_ps(v, y1), c31 = _mm256_fmadd_ps(d, d, c31);
        d = _mm256_sub_ps(v, y2), c32 = _mm256_fmadd_ps(d, d, c32);
    }
    float s[12] = {hsum8(c00), hsum8(c01), hsum8(c02), hsum8(c10), hsum8(c11), hsum8(c12),
                   hsum8(c20), hsum8(c21), hsum8(c22), hsum8(c30), hsum8(c31), hsum8(c32)};
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
VDB_AVX2 static void dot_4x3_avx2(const float *const *q, const float *const *x, size_t dim,
                                  float *out) {
    const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3];
    const float *x0 = x[0], *x1 = x[1], *x2 = x[2];
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c02 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps(), c12 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c22 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c32 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        __m256 y0 = _mm256_loadu_ps(x0 + i), y1 = _mm256_loadu_ps(x1 + i);
        __m256 y2 = _mm256_loadu_ps(x2 + i), v;
        v = _mm256_loadu_ps(q0 + i);
        KEEP_IN_REGISTER(v);
        c00 = _mm256_fmadd_ps(v, y0, c00), c01 = _mm256_fmadd_ps(v, y1, c01);
        c02 = _mm256_fmadd_ps(v, y2, c02);
        v = _mm256_loadu_ps(q1 + i);
        KEEP_IN_REGISTER(v);
        c10 = _mm256_fmadd_ps(v, y0, c10), c11 = _mm256_fmadd_ps(v, y1, c11);
        c12 = _mm256_fmadd_ps(v, y2, c12);
        v = _mm256_loadu_ps(q2 + i);
        KEEP_IN_REGISTER(v);
        c20 = _mm256_fmadd_ps(v, y0, c20), c21 = _mm256_fmadd_ps(v, y1, c21);
        c22 = _mm256_fmadd_ps(v, y2, c22);
        v = _mm256_loadu_ps(q3 + i);
        KEEP_IN_REGISTER(v);
        c30 = _mm256_fmadd_ps(v, y0, c30), c31 = _mm256_fmadd_ps(v, y1, c31);
        c32 = _mm256_fmadd_ps(v, y2, c32);
    }
    float s[12] = {hsum8(c00), hsum8(c01), hsum8(c02), hsum8(c10), hsum8(c11), hsum8(c12),
                   hsum8(c20), hsum8(c21), hsum8(c22), hsum8(c30), hsum8(c31), hsum8(c32)};
    for (; i < dim; i++) {
        for (int k = 0; k < 4; k++) {
            s[3 * k] += q[k][i] * x0[i];
            s[3 * k + 1] += q[k][i] * x1[i];
            s[3 * k + 2] += q[k][i] * x2[i];
        }
    }
    for (int k = 0; k < 12; k++) out[k] = s[k];
}

const vdb_kernels vdb_kernels_avx2 = {
    VDB_SIMD_AVX2, l2_avx2,     dot_avx2,     l2_1x4_avx2,
    dot_1x4_avx2,  l2_4x3_avx2, dot_4x3_avx2,
};

#endif /* __x86_64__ */
