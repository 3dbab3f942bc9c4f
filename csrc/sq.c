/*
 * sq.c -- SQ8 scalar quantization (vecdb.h, vdb_quantizer): training (vdb_sq8_train), row
 * encode / decode, query preparation and ADC distances, the portable integer dot kernel, and
 * the choice of dot kernel per SIMD level (the SIMD ones live in sq_avx2.c / sq_avx512.c).
 *
 * Code row layout (code size dim or dim + 4):
 *     byte 0 .. dim-1   c_d = clamp(round((x_d - vmin_d) / step_d), 0, 255), 0 if step_d == 0
 *     byte dim .. +3    L2 and cosine only: float32 |x^|^2 of the decoded row, native order,
 *                       unaligned (read and written with memcpy)
 *
 * Invariants:
 *  1. The decoded value is x^_d = vmin_d + (float)c_d * step_d, in float, in sq8_decode_row
 *     and in the stored norm alike (the norm sums x^_d^2 in double, in d order).
 *  2. ADC distances do not depend on the SIMD level: the query is prepared with scalar double
 *     arithmetic, the code dot product sum qi_d c_d is exact integer arithmetic on every
 *     level (|qi_d| <= 16383, c_d <= 255: a pair of products fits int32 with room for
 *     SQ8_BLOCK dims per lane, then sums widen to int64), and the distance is finished in
 *     double by one function (sq8_finish).
 *  3. Rounding is half away from zero, done exactly (t - trunc(t) is exact in float).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec_int.h"
#include "quant_int.h"
#include "vecdb.h"

int vdb_sq8_train(const float *x, size_t n, size_t dim, float *params) {
    if (x == NULL || params == NULL || n == 0 || dim == 0) return VDB_ERR_INVALID;
    if (n > SIZE_MAX / sizeof(float) / dim || dim > SIZE_MAX / 2 / sizeof(float))
        return VDB_ERR_INVALID;
    float *lo = malloc(2 * dim * sizeof(float)); /* min, max; freed below */
    if (lo == NULL) return VDB_ERR_NOMEM;
    float *hi = lo + dim;
    memcpy(lo, x, dim * sizeof(float));
    memcpy(hi, x, dim * sizeof(float));
    for (size_t i = 1; i < n; i++) {
        const float *row = x + i * dim;
        for (size_t d = 0; d < dim; d++) {
            lo[d] = row[d] < lo[d] ? row[d] : lo[d];
            hi[d] = row[d] > hi[d] ? row[d] : hi[d];
        }
    }
    int rc = VDB_OK;
    for (size_t d = 0; d < dim && rc == VDB_OK; d++) /* NaN never moves min/max: test all */
        if (!isfinite(lo[d]) || !isfinite(hi[d])) rc = VDB_ERR_INVALID;
    for (size_t i = 0; i < n * dim && rc == VDB_OK; i++)
        if (!isfinite(x[i])) rc = VDB_ERR_INVALID;
    if (rc == VDB_OK) {
        for (size_t d = 0; d < dim; d++) {
            params[d] = lo[d];
            params[dim + d] = (float)(((double)hi[d] - (double)lo[d]) / 255.0);
        }
    }
    free(lo);
    return rc;
}

int sq8_params_ok(const vdb_quantizer *q) {
    const float *vmin = q->params, *step = q->params + q->dim;
    for (size_t d = 0; d < q->dim; d++)
        if (!isfinite(vmin[d]) || !isfinite(step[d]) || step[d] < 0.0f) return 0;
    return 1;
}

/* c_d of x_d (invariant 3). */
static inline uint8_t sq8_code(float x, float vmin, float step) {
    if (!(step > 0.0f)) return 0;
    float t = (x - vmin) / step;
    if (!(t > 0.0f)) return 0; /* also NaN */
    if (t >= 255.0f) return 255;
    int c = (int)t;
    return (uint8_t)(c + (t - (float)c >= 0.5f));
}

void sq8_encode_row(const vdb_quantizer *q, const float *x, uint8_t *code, float *err) {
    size_t dim = q->dim;
    const float *vmin = q->params, *step = q->params + dim;
    double norm = 0.0, e = 0.0;
    for (size_t d = 0; d < dim; d++) {
        uint8_t c = sq8_code(x[d], vmin[d], step[d]);
        float v = vmin[d] + (float)c * step[d];
        double diff = (double)x[d] - (double)v;
        code[d] = c;
        norm += (double)v * (double)v;
        e += diff * diff;
    }
    if (q->metric != VDB_METRIC_IP) {
        float nf = (float)norm;
        memcpy(code + dim, &nf, sizeof nf);
    }
    if (err != NULL) *err = (float)e;
}

void sq8_decode_row(const vdb_quantizer *q, const uint8_t *code, float *out) {
    const float *vmin = q->params, *step = q->params + q->dim;
    for (size_t d = 0; d < q->dim; d++) out[d] = vmin[d] + (float)code[d] * step[d];
}

int64_t sq8_dot_scalar(const int16_t *qi, const uint8_t *code, size_t dim) {
    int64_t total = 0;
    for (size_t d0 = 0; d0 < dim; d0 += SQ8_BLOCK) {
        size_t end = dim - d0 < SQ8_BLOCK ? dim : d0 + SQ8_BLOCK;
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0; /* each <= SQ8_BLOCK/4 * 16383 * 255 */
        size_t d = d0;
        for (; d + 4 <= end; d += 4) {
            s0 += (int32_t)qi[d] * code[d];
            s1 += (int32_t)qi[d + 1] * code[d + 1];
            s2 += (int32_t)qi[d + 2] * code[d + 2];
            s3 += (int32_t)qi[d + 3] * code[d + 3];
        }
        for (; d < end; d++) s0 += (int32_t)qi[d] * code[d];
        total += (int64_t)s0 + s1 + s2 + s3;
    }
    return total;
}

sq8_dot_fn sq8_dot_for(int simd) {
#if defined(__x86_64__)
    /* madd_epi16 on zmm is AVX512BW: a CPU with AVX-512F alone keeps the AVX2 kernel */
    if (simd >= VDB_SIMD_AVX512 && __builtin_cpu_supports("avx512bw")) return sq8_dot_avx512;
    if (simd >= VDB_SIMD_AVX2) return sq8_dot_avx2;
#else
    (void)simd;
#endif
    return sq8_dot_scalar;
}

/* Rounds r (finite or not) half away from zero into [-SQ8_QMAX, SQ8_QMAX]; NaN -> 0. */
static int16_t sq8_round(double r) {
    if (!(r >= -SQ8_QMAX && r <= SQ8_QMAX)) return r > 0 ? SQ8_QMAX : r < 0 ? -SQ8_QMAX : 0;
    double a = floor(fabs(r) + 0.5);
    if (a > SQ8_QMAX) a = SQ8_QMAX;
    return (int16_t)(r < 0 ? -a : a);
}

void sq8_prepare(int simd, const vdb_quantizer *q, const float *query, void *scratch,
                 quant_query *out) {
    size_t dim = q->dim;
    const float *vmin = q->params, *step = q->params + dim;
    int16_t *qi = scratch;
    double maxw = 0.0, base = 0.0, norm2 = 0.0;
    for (size_t d = 0; d < dim; d++) {
        double w = fabs((double)query[d] * (double)step[d]);
        maxw = w > maxw ? w : maxw;
        base += (double)query[d] * (double)vmin[d];
        norm2 += (double)query[d] * (double)query[d];
    }
    if (maxw > 0.0 && isfinite(maxw)) {
        double scale = SQ8_QMAX / maxw;
        for (size_t d = 0; d < dim; d++)
            qi[d] = sq8_round((double)query[d] * (double)step[d] * scale);
        out->dot_scale = maxw / SQ8_QMAX;
    } else {
        memset(qi, 0, dim * sizeof(int16_t));
        out->dot_scale = 0.0;
    }
    out->qi = qi;
    out->dot_base = base;
    out->q_norm2 = norm2;
    out->sq8_dot = sq8_dot_for(simd);
}

/* The distance of vecdb.h from the exact integer dot of one code row (invariant 2). */
static inline float sq8_finish(const quant_query *qq, int metric, int64_t idot,
                               const uint8_t *code, size_t dim) {
    double dot = qq->dot_base + (double)idot * qq->dot_scale;
    if (metric == VDB_METRIC_IP) return (float)(-dot);
    float norm;
    memcpy(&norm, code + dim, sizeof norm);
    if (metric == VDB_METRIC_L2) return (float)(qq->q_norm2 - 2.0 * dot + (double)norm);
    if (!(qq->q_norm2 > 0.0) || !(norm > 0.0f)) return 1.0f;
    return (float)(1.0 - dot / (sqrt(qq->q_norm2) * sqrt((double)norm)));
}

void sq8_dists(const quant_query *qq, const uint8_t *const *rows, const uint8_t *base,
               size_t n, float *out) {
    size_t dim = qq->q->dim, cs = qq->code_size;
    int metric = qq->q->metric;
    sq8_dot_fn dot = qq->sq8_dot;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *code = rows != NULL ? rows[i] : base + i * cs;
        out[i] = sq8_finish(qq, metric, dot(qq->qi, code, dim), code, dim);
    }
}
