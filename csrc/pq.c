/*
 * pq.c -- product quantization (vecdb.h, vdb_quantizer): training (vdb_pq_train), row
 * encode / decode, ADC tables (quant_pq_tables) and the table-driven scan.
 *
 * Layout: params = codebooks[m][256][dsub] (dsub = dim / m); a code row is m bytes, byte j the
 * index of the nearest centroid of codebook j to the j-th sub-vector (dims [j dsub, (j+1)
 * dsub)); tables[j][c] (m x 256 floats) hold the ADC term of sub-vector j against centroid c.
 *
 * Invariants:
 *  1. Codebook j is exactly what vdb_kmeans(simd, sub-vectors j, n, dsub, 256, iters, seed)
 *     returns (same seed for every j), so training is deterministic and independent of the
 *     thread count; sub-quantizers are trained in parallel, each writing only its codebook.
 *  2. Encoding uses the assignment of k-means (km_assign: nearest, ties to the smaller).
 *  3. Every table entry is a float sum in d order of products (of differences under L2),
 *     without FMA, on every SIMD level (the AVX2 copy only transposes the data), so tables
 *     are the same on every level. A distance is the float sum of table[j][code_j] in j
 *     order, plus pq_base, whatever the number of rows scanned together.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec_int.h"
#include "kmeans_int.h"
#include "quant_int.h"
#include "threads_int.h"
#include "vecdb.h"

/* ---- training ------------------------------------------------------------------------------ */

typedef struct pq_train_job {
    const vdb_kernels *kern;
    const float *x;
    size_t n, dim, dsub;
    unsigned iters, inner_threads;
    uint64_t seed;
    float *out; /* [m][256][dsub] */
    int *rc;    /* [m] */
} pq_train_job;

/* Idempotent: reads x, writes codebook j and rc[j]. */
static void pq_train_task(void *arg, size_t j) {
    const pq_train_job *job = arg;
    size_t n = job->n, dsub = job->dsub;
    float *sub = malloc(n * dsub * sizeof(float)); /* sub-vectors j, contiguous; freed below */
    if (sub == NULL) {
        job->rc[j] = VDB_ERR_NOMEM;
        return;
    }
    for (size_t i = 0; i < n; i++)
        memcpy(sub + i * dsub, job->x + i * job->dim + j * dsub, dsub * sizeof(float));
    job->rc[j] = km_train(job->kern, sub, n, dsub, PQ_K, job->iters, job->seed,
                          job->inner_threads, job->out + j * PQ_K * dsub, NULL);
    free(sub);
}

int vdb_pq_train(int simd, const float *x, size_t n, size_t dim, size_t m, unsigned iters,
                 uint64_t seed, int n_threads, float *params) {
    if (x == NULL || params == NULL || dim == 0 || m == 0 || dim % m != 0 || n < PQ_K ||
        n_threads < 0)
        return VDB_ERR_INVALID;
    if (n > SIZE_MAX / sizeof(double) / dim || dim > SIZE_MAX / sizeof(double) / PQ_K)
        return VDB_ERR_INVALID;
    if (simd < VDB_SIMD_SCALAR || simd > VDB_SIMD_AVX512) return VDB_ERR_INVALID;
    const vdb_kernels *kern = vdb_kernels_for(simd);
    if (kern == NULL) return VDB_ERR_UNSUPPORTED;

    unsigned threads = vdb_threads_resolve(n_threads);
    unsigned outer = m < threads ? (unsigned)m : threads;
    /* both freed below; params written only on success */
    float *out = malloc(m * PQ_K * (dim / m) * sizeof(float));
    int *rc = malloc(m * sizeof(int));
    if (out == NULL || rc == NULL) {
        free(out);
        free(rc);
        return VDB_ERR_NOMEM;
    }
    pq_train_job job = {kern, x, n, dim, dim / m, iters, threads / outer, seed, out, rc};
    km_parallel(outer, m, pq_train_task, &job);
    int status = VDB_OK;
    for (size_t j = 0; j < m && status == VDB_OK; j++) status = rc[j];
    if (status == VDB_OK) memcpy(params, out, m * PQ_K * (dim / m) * sizeof(float));
    free(out);
    free(rc);
    return status;
}

/* ---- encode / decode ---------------------------------------------------------------------- */

int pq_encoder_init(pq_encoder *e, const vdb_kernels *kern, const vdb_quantizer *q) {
    size_t m = q->m, dsub = q->dim / m;
    e->q = q;
    e->dsub = dsub;
    e->as = malloc(m * sizeof(km_assigner)); /* owned by e: pq_encoder_free */
    if (e->as == NULL) return VDB_ERR_NOMEM;
    for (size_t j = 0; j < m; j++) {
        if (km_assigner_init(&e->as[j], kern, q->params + j * PQ_K * dsub, PQ_K, dsub) !=
            VDB_OK) {
            for (size_t i = 0; i < j; i++) km_assigner_free(&e->as[i]);
            free(e->as);
            e->as = NULL;
            return VDB_ERR_NOMEM;
        }
    }
    return VDB_OK;
}

void pq_encoder_free(pq_encoder *e) {
    if (e->as == NULL) return;
    for (size_t j = 0; j < e->q->m; j++) km_assigner_free(&e->as[j]);
    free(e->as);
    e->as = NULL;
}

void pq_encode_rows(const pq_encoder *e, const float *x, size_t n, uint8_t *codes,
                    float *err) {
    size_t m = e->q->m, dim = e->q->dim, dsub = e->dsub;
    uint32_t a[PQ_ENCODE_BLOCK];
    for (size_t j = 0; j < m; j++) {
        km_assign(&e->as[j], x + j * dsub, dim, n, a, NULL);
        for (size_t i = 0; i < n; i++) codes[i * m + j] = (uint8_t)a[i];
    }
    if (err == NULL) return;
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (size_t j = 0; j < m; j++) {
            const float *c = e->q->params + (j * PQ_K + codes[i * m + j]) * dsub;
            const float *v = x + i * dim + j * dsub;
            for (size_t d = 0; d < dsub; d++) {
                double t = (double)v[d] - (double)c[d];
                s += t * t;
            }
        }
        err[i] = (float)s;
    }
}

void pq_decode_row(const vdb_quantizer *q, const uint8_t *code, float *out) {
    size_t dsub = q->dim / q->m;
    for (size_t j = 0; j < q->m; j++)
        memcpy(out + j * dsub, q->params + (j * PQ_K + code[j]) * dsub, dsub * sizeof(float));
}

/* ---- ADC tables and scan -------------------------------------------------------------------- */

#if defined(__x86_64__)
#include <immintrin.h>

/* Dims d..d+3 of the eight rows r[0..7][dsub], transposed: x[k] lane l = r[l][d + k]. */
__attribute__((target("avx2"), always_inline)) static inline void load_t4(
    const float *r, size_t dsub, size_t d, __m256 *x) {
    /* rows l and l + 4 side by side, then a 4x4 transpose within each 128-bit half */
    __m256 a = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(r + d)),
                                    _mm_loadu_ps(r + 4 * dsub + d), 1);
    __m256 b = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(r + dsub + d)),
                                    _mm_loadu_ps(r + 5 * dsub + d), 1);
    __m256 e = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(r + 2 * dsub + d)),
                                    _mm_loadu_ps(r + 6 * dsub + d), 1);
    __m256 f = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(r + 3 * dsub + d)),
                                    _mm_loadu_ps(r + 7 * dsub + d), 1);
    __m256 t0 = _mm256_unpacklo_ps(a, b), t1 = _mm256_unpackhi_ps(a, b);
    __m256 t2 = _mm256_unpacklo_ps(e, f), t3 = _mm256_unpackhi_ps(e, f);
    x[0] = _mm256_shuffle_ps(t0, t2, 0x44);
    x[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
    x[2] = _mm256_shuffle_ps(t1, t3, 0x44);
    x[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
}

/* The table of one sub-vector v[dsub] (dsub a multiple of 4) against codebook cb[256][dsub],
 * 32 centroids at a time in four independent groups of eight (one accumulator each, to hide
 * the add latency): after load_t4, lane l of a group runs exactly the arithmetic of the
 * portable loop below for its centroid (a difference, a product, a sum, in d order; no
 * FMA), so the tables have the same bits. */
__attribute__((target("avx2"))) static void table_avx2(const float *v, const float *cb,
                                                      size_t dsub, int metric, float *t) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (size_t c = 0; c < PQ_K; c += 32) {
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                         _mm256_setzero_ps()};
        for (size_t d = 0; d < dsub; d += 4) {
            __m256 q[4] = {_mm256_set1_ps(v[d]), _mm256_set1_ps(v[d + 1]),
                           _mm256_set1_ps(v[d + 2]), _mm256_set1_ps(v[d + 3])};
            for (int g = 0; g < 4; g++) {
                __m256 x[4];
                load_t4(cb + (c + 8 * (size_t)g) * dsub, dsub, d, x);
                for (int k = 0; k < 4; k++) {
                    if (metric == VDB_METRIC_L2) {
                        __m256 diff = _mm256_sub_ps(q[k], x[k]);
                        acc[g] = _mm256_add_ps(acc[g], _mm256_mul_ps(diff, diff));
                    } else {
                        acc[g] = _mm256_add_ps(acc[g], _mm256_mul_ps(q[k], x[k]));
                    }
                }
            }
        }
        for (int g = 0; g < 4; g++) {
            if (metric != VDB_METRIC_L2) acc[g] = _mm256_xor_ps(acc[g], sign); /* -s exactly */
            _mm256_storeu_ps(t + c + 8 * g, acc[g]);
        }
    }
}
#endif

/* Four centroids at a time (independent sums, each in d order: invariant 3); with AVX2 and
 * dsub a multiple of 4, 32 at a time by table_avx2 (same results). */
void quant_pq_tables(int simd, const vdb_quantizer *q, int metric, const float *v,
                     float *tables) {
    size_t m = q->m, dsub = q->dim / m;
#if defined(__x86_64__)
    if (simd >= VDB_SIMD_AVX2 && dsub % 4 == 0) {
        for (size_t j = 0; j < m; j++)
            table_avx2(v + j * dsub, q->params + j * PQ_K * dsub, dsub, metric,
                       tables + j * PQ_K);
        return;
    }
#else
    (void)simd;
#endif
    for (size_t j = 0; j < m; j++) {
        const float *vj = v + j * dsub, *cb = q->params + j * PQ_K * dsub;
        float *t = tables + j * PQ_K;
        for (size_t c = 0; c < PQ_K; c += 4) {
            const float *c0 = cb + c * dsub, *c1 = c0 + dsub, *c2 = c1 + dsub, *c3 = c2 + dsub;
            float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
            if (metric == VDB_METRIC_L2) {
                for (size_t d = 0; d < dsub; d++) {
                    float d0 = vj[d] - c0[d], d1 = vj[d] - c1[d];
                    float d2 = vj[d] - c2[d], d3 = vj[d] - c3[d];
                    s0 += d0 * d0, s1 += d1 * d1, s2 += d2 * d2, s3 += d3 * d3;
                }
                t[c] = s0, t[c + 1] = s1, t[c + 2] = s2, t[c + 3] = s3;
            } else {
                for (size_t d = 0; d < dsub; d++) {
                    s0 += vj[d] * c0[d], s1 += vj[d] * c1[d];
                    s2 += vj[d] * c2[d], s3 += vj[d] * c3[d];
                }
                t[c] = -s0, t[c + 1] = -s1, t[c + 2] = -s2, t[c + 3] = -s3;
            }
        }
    }
}

void pq_prepare(int simd, const vdb_quantizer *q, const float *query, void *scratch,
                quant_query *out) {
    float *tables = scratch;
    quant_pq_tables(simd, q, q->metric, query, tables);
    out->tables = tables;
    out->pq_base = 0.0f;
}

/* Eight rows at a time: eight independent sums (each in j order, invariant 3) hide the add
 * latency that a single row's chain of m dependent adds would expose. */
void pq_dists(const quant_query *qq, const uint8_t *const *rows, const uint8_t *base, size_t n,
              float *out) {
    size_t m = qq->q->m, cs = qq->code_size, i = 0;
    const float *tables = qq->tables;
    float pb = qq->pq_base;
    for (; i + 8 <= n; i += 8) {
        const uint8_t *r[8];
        for (int l = 0; l < 8; l++) r[l] = rows != NULL ? rows[i + l] : base + (i + l) * cs;
        float s[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        const float *t = tables;
        for (size_t j = 0; j < m; j++, t += PQ_K)
            for (int l = 0; l < 8; l++) s[l] += t[r[l][j]];
        for (int l = 0; l < 8; l++) out[i + l] = s[l] + pb;
    }
    for (; i < n; i++) {
        const uint8_t *r = rows != NULL ? rows[i] : base + i * cs;
        float s = 0.0f;
        const float *t = tables;
        for (size_t j = 0; j < m; j++, t += PQ_K) s += t[r[j]];
        out[i] = s + pb;
    }
}
