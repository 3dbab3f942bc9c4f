/*
 * quant.c -- the quantizer front: the public vdb_quantizer_* functions (code size, parallel
 * encode, decode, ADC distances) and the private quant_int.h interface used by the searches
 * on codes (quant_check, quant_scratch_bytes, quant_prepare, quant_dists*). The per-kind work
 * lives in sq.c (SQ8) and pq.c (PQ), reached through codec_int.h.
 *
 * Invariants:
 *  1. Every public function validates its quantizer with the same check (check_quantizer:
 *     kind, metric, dim, m, params) before reading anything else.
 *  2. vdb_quantizer_distances is quant_prepare + quant_dists_contiguous, so the searches on
 *     codes score exactly as the public function does (quant_int.h invariant 1).
 *  3. Encoding runs fixed blocks of rows on threads; each block writes only its own rows, so
 *     the codes do not depend on the thread count, and a thread that cannot start only
 *     means the calling thread encodes every block (km_parallel). Outputs are written only
 *     after every check and allocation succeeded.
 *  4. Memory: scratch and encoders are allocated and freed within one call.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec_int.h"
#include "distance_int.h"
#include "kmeans_int.h"
#include "quant_int.h"
#include "threads_int.h"
#include "vecdb.h"

#define SQ8_ENCODE_BLOCK 1024            /* rows per SQ8 encoding task */
#define WORK_PER_THREAD ((size_t)1 << 22) /* operations that justify one more thread */

/* Bytes of a code row of a checked quantizer (layouts in sq.c and pq.c). */
static size_t code_size_of(const vdb_quantizer *q) {
    if (q->kind == VDB_QUANT_PQ) return q->m;
    return q->dim + (q->metric == VDB_METRIC_IP ? 0 : sizeof(float));
}

/* Structure of q without a SIMD level (invariant 1). */
static int check_quantizer(const vdb_quantizer *q, size_t *code_size) {
    if (q == NULL || q->params == NULL || q->dim == 0) return VDB_ERR_INVALID;
    if (q->metric != VDB_METRIC_L2 && q->metric != VDB_METRIC_IP &&
        q->metric != VDB_METRIC_COSINE)
        return VDB_ERR_INVALID;
    if (q->kind == VDB_QUANT_SQ8) {
        if (q->dim > SIZE_MAX / 16) return VDB_ERR_INVALID;
        if (!sq8_params_ok(q)) return VDB_ERR_INVALID;
    } else if (q->kind == VDB_QUANT_PQ) {
        if (q->metric == VDB_METRIC_COSINE || q->m == 0 || q->dim % q->m != 0)
            return VDB_ERR_INVALID;
        if (q->dim > SIZE_MAX / sizeof(double) / PQ_K) return VDB_ERR_INVALID;
    } else {
        return VDB_ERR_INVALID;
    }
    if (code_size != NULL) *code_size = code_size_of(q);
    return VDB_OK;
}

int quant_check(int simd, const vdb_quantizer *q, size_t *code_size) {
    size_t cs;
    int rc = check_quantizer(q, &cs);
    if (rc != VDB_OK) return rc;
    if (simd < VDB_SIMD_SCALAR || simd > VDB_SIMD_AVX512) return VDB_ERR_INVALID;
    if (vdb_kernels_for(simd) == NULL) return VDB_ERR_UNSUPPORTED;
    if (code_size != NULL) *code_size = cs;
    return VDB_OK;
}

size_t quant_scratch_bytes(const vdb_quantizer *q) {
    size_t bytes = q->kind == VDB_QUANT_SQ8 ? q->dim * sizeof(int16_t)
                                            : q->m * PQ_K * sizeof(float);
    return (bytes + 63) & ~(size_t)63;
}

void quant_prepare(int simd, const vdb_quantizer *q, const float *query, void *scratch,
                   quant_query *out) {
    memset(out, 0, sizeof *out);
    out->q = q;
    out->code_size = code_size_of(q);
    if (q->kind == VDB_QUANT_SQ8)
        sq8_prepare(simd, q, query, scratch, out);
    else
        pq_prepare(simd, q, query, scratch, out);
}

void quant_dists(const quant_query *qq, const uint8_t *const *codes, size_t n, float *out) {
    if (qq->q->kind == VDB_QUANT_SQ8)
        sq8_dists(qq, codes, NULL, n, out);
    else
        pq_dists(qq, codes, NULL, n, out);
}

void quant_dists_contiguous(const quant_query *qq, const uint8_t *codes, size_t n,
                            float *out) {
    if (qq->q->kind == VDB_QUANT_SQ8)
        sq8_dists(qq, NULL, codes, n, out);
    else
        pq_dists(qq, NULL, codes, n, out);
}

int vdb_quantizer_code_size(const vdb_quantizer *q, size_t *size) {
    if (size == NULL) return VDB_ERR_INVALID;
    return check_quantizer(q, size);
}

/* ---- encode ------------------------------------------------------------------------------- */

typedef struct encode_job {
    const vdb_quantizer *q;
    const pq_encoder *pq; /* PQ only */
    const float *x;
    size_t n, code_size, block;
    uint8_t *codes;
    float *errors;        /* nullable */
} encode_job;

/* Idempotent: reads x, writes the codes and errors of rows [t block, (t+1) block). */
static void encode_task(void *arg, size_t t) {
    const encode_job *job = arg;
    size_t lo = t * job->block, cnt = job->n - lo < job->block ? job->n - lo : job->block;
    size_t dim = job->q->dim, cs = job->code_size;
    float *err = job->errors != NULL ? job->errors + lo : NULL;
    if (job->pq != NULL) {
        pq_encode_rows(job->pq, job->x + lo * dim, cnt, job->codes + lo * cs, err);
        return;
    }
    for (size_t i = 0; i < cnt; i++)
        sq8_encode_row(job->q, job->x + (lo + i) * dim, job->codes + (lo + i) * cs,
                       err != NULL ? err + i : NULL);
}

int vdb_quantizer_encode(int simd, const vdb_quantizer *q, const float *x, size_t n,
                         int n_threads, uint8_t *codes, float *errors) {
    size_t cs;
    int rc = quant_check(simd, q, &cs);
    if (rc != VDB_OK) return rc;
    if (n_threads < 0 || (n > 0 && (x == NULL || codes == NULL))) return VDB_ERR_INVALID;
    if (n > SIZE_MAX / sizeof(float) / q->dim || n > SIZE_MAX / cs) return VDB_ERR_INVALID;
    if (n == 0) return VDB_OK;

    pq_encoder pq = {0};
    encode_job job = {q, NULL, x, n, cs, SQ8_ENCODE_BLOCK, codes, errors};
    size_t work = n * q->dim; /* no overflow: checked above */
    if (q->kind == VDB_QUANT_PQ) {
        rc = pq_encoder_init(&pq, vdb_kernels_for(simd), q); /* freed below */
        if (rc != VDB_OK) return rc;
        job.pq = &pq;
        job.block = PQ_ENCODE_BLOCK;
        work = work > SIZE_MAX / PQ_K ? SIZE_MAX : work * PQ_K;
    }
    size_t n_tasks = n / job.block + (n % job.block != 0), useful = work / WORK_PER_THREAD;
    unsigned threads = 1;
    if (useful >= 2) {
        threads = vdb_threads_resolve(n_threads);
        if (useful < threads) threads = (unsigned)useful;
    }
    km_parallel(threads, n_tasks, encode_task, &job);
    pq_encoder_free(&pq);
    return VDB_OK;
}

/* ---- decode and distances ------------------------------------------------------------------- */

int vdb_quantizer_decode(const vdb_quantizer *q, const uint8_t *codes, size_t n, float *out) {
    size_t cs;
    int rc = check_quantizer(q, &cs);
    if (rc != VDB_OK) return rc;
    if (n > 0 && (codes == NULL || out == NULL)) return VDB_ERR_INVALID;
    if (n > SIZE_MAX / sizeof(float) / q->dim || n > SIZE_MAX / cs) return VDB_ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        if (q->kind == VDB_QUANT_SQ8)
            sq8_decode_row(q, codes + i * cs, out + i * q->dim);
        else
            pq_decode_row(q, codes + i * cs, out + i * q->dim);
    }
    return VDB_OK;
}

int vdb_quantizer_distances(int simd, const vdb_quantizer *q, const float *query,
                            const uint8_t *codes, size_t n, float *out) {
    size_t cs;
    int rc = quant_check(simd, q, &cs);
    if (rc != VDB_OK) return rc;
    if (query == NULL || (n > 0 && (codes == NULL || out == NULL))) return VDB_ERR_INVALID;
    if (n > SIZE_MAX / cs) return VDB_ERR_INVALID;
    if (n == 0) return VDB_OK;
    void *scratch = aligned_alloc(64, quant_scratch_bytes(q)); /* freed below */
    if (scratch == NULL) return VDB_ERR_NOMEM;
    quant_query qq;
    quant_prepare(simd, q, query, scratch, &qq);
    quant_dists_contiguous(&qq, codes, n, out);
    free(scratch);
    return VDB_OK;
}
