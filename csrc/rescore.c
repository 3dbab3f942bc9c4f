/*
 * rescore.c -- vdb_rescore: exact distances of each query's candidate rows (the second stage
 * of a search on codes: vdb_hnsw_search_codes or vdb_ivfpq_search give candidates, this
 * ranks them by their float rows), keeping the k best.
 *
 * Per query: the candidates are deduplicated (an open-addressing set of rows, cleared by
 * epoch tags, so nothing is cleared or allocated per query), entries < 0 or >= n_rows are
 * skipped, and the remaining rows are scored four at a time with the 1x4 kernel of the
 * metric (prefetching the rows of the next groups: candidates are scattered over the
 * segments) into a bounded heap (topk.h). Queries are handed out one at a time to the
 * workers from an atomic counter; each worker allocates its scratch (set, heap) once.
 *
 * Invariants:
 *  1. Distances are bit-equal to vdb_flat_search's for the same (query, row): the same
 *     kernel table, the 1x4 kernels (distance_int.h invariant 5: equal to the 4x3 ones flat
 *     search also uses) and the same finishing (vdb_ip_from_dot, vdb_cosine_from_dot with
 *     vdb_inv_norm of the kernel's dot of the query and of the row with themselves).
 *  2. Ranking by (distance, row) (topk.h), so ties go to the smaller row and the result does
 *     not depend on the candidates' order, duplicates or the thread count. NaN distances are
 *     never kept (as in flat search).
 *  3. Only rows < rows->n_rows are read. The caller's arrays are only read; outputs are
 *     written per query, by the worker that owns the query; on an error (allocation, thread
 *     start) some queries' outputs may have been written.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distance_int.h"
#include "rows_int.h"
#include "threads_int.h"
#include "topk.h"
#include "vecdb.h"

#define WORK_PER_THREAD ((size_t)1 << 20) /* multiply-adds that justify starting a thread */
#define PREFETCH_AHEAD 8                  /* candidate rows prefetched ahead of their kernel */

typedef struct rescore_job {
    const vdb_kernels *kern;
    int metric;
    const float *const *segments;
    unsigned shift;
    size_t seg_mask;
    size_t n_rows, dim;
    const float *queries;
    size_t nq;
    const int64_t *cand;
    size_t n_cand;
    size_t k, kk;       /* slots per query; heap capacity min(k, n_cand) */
    size_t set_cap;     /* slots of a worker's row set: a power of two >= 2 * n_cand */
    int64_t *out_rows;
    float *out_dist;
    size_t next;        /* atomic: next query to claim */
    int err;            /* atomic: first error */
} rescore_job;

/* A worker's scratch, owned by the worker for the whole call. */
typedef struct rescore_scratch {
    int64_t *keys;      /* [set_cap] rows of the set */
    uint32_t *tags;     /* [set_cap] tags[i] == epoch iff keys[i] is in the current set */
    uint32_t epoch;
    int64_t *ids;       /* [n_cand] the query's distinct valid candidates */
    vdb_hit *hits;      /* [kk] heap storage */
} rescore_scratch;

static inline const float *row_ptr(const rescore_job *job, int64_t r) {
    size_t u = (size_t)r;
    return job->segments[u >> job->shift] + (u & job->seg_mask) * job->dim;
}

static inline size_t hash_row(int64_t r, size_t mask) {
    uint64_t x = (uint64_t)r * 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 32 ^ x) & mask;
}

/* The distinct candidates of c[0 .. n) in [0, n_rows), in first-seen order, into s->ids. */
static size_t distinct_rows(const rescore_job *job, rescore_scratch *s, const int64_t *c,
                            size_t n) {
    if (++s->epoch == 0) { /* wrapped: old tags could match again */
        memset(s->tags, 0, job->set_cap * sizeof *s->tags);
        s->epoch = 1;
    }
    const size_t mask = job->set_cap - 1;
    const uint32_t epoch = s->epoch;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t r = c[i];
        if (r < 0 || (uint64_t)r >= job->n_rows) continue;
        size_t h = hash_row(r, mask);
        while (s->tags[h] == epoch && s->keys[h] != r) h = (h + 1) & mask;
        if (s->tags[h] == epoch) continue; /* seen */
        s->tags[h] = epoch;
        s->keys[h] = r;
        s->ids[m++] = r;
    }
    return m;
}

static void rescore_one(const rescore_job *job, rescore_scratch *s, size_t qi) {
    const vdb_kernels *kern = job->kern;
    const size_t dim = job->dim;
    const int metric = job->metric;
    const float *q = job->queries + qi * dim;
    size_t m = distinct_rows(job, s, job->cand + qi * job->n_cand, job->n_cand);
    vdb_topk h;
    vdb_topk_init(&h, s->hits, job->kk);
    double qinv = metric == VDB_METRIC_COSINE ? vdb_inv_norm(kern->dot(q, q, dim)) : 0.0;
    const int64_t *ids = s->ids;
    for (size_t i = 0; i < m && i < PREFETCH_AHEAD; i++) __builtin_prefetch(row_ptr(job, ids[i]));
    float d[4];
    for (size_t i = 0; i < m; i += 4) {
        size_t cnt = m - i < 4 ? m - i : 4;
        const float *p[4];
        for (size_t j = 0; j < 4; j++) p[j] = row_ptr(job, ids[i + (j < cnt ? j : cnt - 1)]);
        for (size_t j = i + PREFETCH_AHEAD; j < i + PREFETCH_AHEAD + 4 && j < m; j++) {
            const char *pf = (const char *)row_ptr(job, ids[j]);
            __builtin_prefetch(pf);
            __builtin_prefetch(pf + 64);
        }
        if (metric == VDB_METRIC_L2)
            kern->l2_1x4(q, p, dim, d);
        else
            kern->dot_1x4(q, p, dim, d);
        for (size_t j = 0; j < cnt; j++) {
            float x;
            if (metric == VDB_METRIC_L2)
                x = d[j];
            else if (metric == VDB_METRIC_IP)
                x = vdb_ip_from_dot(d[j]);
            else
                x = vdb_cosine_from_dot(d[j], qinv,
                                        vdb_inv_norm(kern->dot(p[j], p[j], dim)));
            vdb_topk_push(&h, x, ids[i + j]);
        }
    }
    vdb_topk_sort(&h);
    int64_t *out_r = job->out_rows + qi * job->k;
    float *out_d = job->out_dist + qi * job->k;
    for (size_t j = 0; j < job->k; j++) {
        out_r[j] = j < h.n ? h.items[j].row : -1;
        out_d[j] = j < h.n ? h.items[j].dist : INFINITY;
    }
}

static void rescore_worker(void *arg, size_t task) {
    (void)task;
    rescore_job *job = arg;
    rescore_scratch s = {0};
    s.keys = malloc(job->set_cap * sizeof *s.keys);
    s.tags = calloc(job->set_cap, sizeof *s.tags);
    s.ids = malloc((job->n_cand > 0 ? job->n_cand : 1) * sizeof *s.ids);
    s.hits = malloc((job->kk > 0 ? job->kk : 1) * sizeof *s.hits);
    if (s.keys == NULL || s.tags == NULL || s.ids == NULL || s.hits == NULL) {
        __atomic_store_n(&job->err, VDB_ERR_NOMEM, __ATOMIC_RELAXED);
    } else {
        for (;;) {
            if (__atomic_load_n(&job->err, __ATOMIC_RELAXED) != VDB_OK) break;
            size_t qi = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
            if (qi >= job->nq) break;
            rescore_one(job, &s, qi);
        }
    }
    free(s.keys);
    free(s.tags);
    free(s.ids);
    free(s.hits);
}

int vdb_rescore(int simd, int metric, const vdb_rows *rows, const float *queries, size_t nq,
                const int64_t *cand, size_t n_cand, size_t k, int n_threads,
                int64_t *out_rows, float *out_dist) {
    if (metric != VDB_METRIC_L2 && metric != VDB_METRIC_IP && metric != VDB_METRIC_COSINE)
        return VDB_ERR_INVALID;
    if (simd < VDB_SIMD_SCALAR || simd > VDB_SIMD_AVX512 || n_threads < 0)
        return VDB_ERR_INVALID;
    int rc = rows_check(rows, (size_t)INT64_MAX, sizeof(size_t) * CHAR_BIT);
    if (rc != VDB_OK) return rc;
    if (nq > 0 && k > 0 && (queries == NULL || out_rows == NULL || out_dist == NULL))
        return VDB_ERR_INVALID;
    if (nq > 0 && n_cand > 0 && cand == NULL) return VDB_ERR_INVALID;
    if (k != 0 && nq > SIZE_MAX / k) return VDB_ERR_INVALID;
    if (n_cand != 0 && nq > SIZE_MAX / n_cand) return VDB_ERR_INVALID;
    if (nq > SIZE_MAX / sizeof(float) / rows->dim) return VDB_ERR_INVALID;
    if (n_cand > (SIZE_MAX >> 2) / sizeof(int64_t)) return VDB_ERR_INVALID; /* set size */
    const vdb_kernels *kern = vdb_kernels_for(simd);
    if (kern == NULL) return VDB_ERR_UNSUPPORTED;
    if (nq == 0 || k == 0) return VDB_OK;

    rescore_job job = {0};
    job.kern = kern;
    job.metric = metric;
    job.segments = rows->segments;
    job.shift = rows->segment_shift;
    job.seg_mask = ((size_t)1 << rows->segment_shift) - 1; /* shift < bits: rows_check */
    job.n_rows = rows->n_rows;
    job.dim = rows->dim;
    job.queries = queries;
    job.nq = nq;
    job.cand = cand;
    job.n_cand = n_cand;
    job.k = k;
    job.kk = k < n_cand ? k : n_cand;
    job.set_cap = 16;
    while (job.set_cap < 2 * n_cand) job.set_cap *= 2;
    job.out_rows = out_rows;
    job.out_dist = out_dist;

    size_t work = n_cand == 0 ? 0 : nq * n_cand; /* saturating nq * n_cand * dim */
    work = work > SIZE_MAX / job.dim ? SIZE_MAX : work * job.dim;
    unsigned threads = 1;
    if (nq > 1 && n_threads != 1 && work / WORK_PER_THREAD >= 2) {
        threads = vdb_threads_resolve(n_threads);
        if (threads > nq) threads = (unsigned)nq;
        if (work / WORK_PER_THREAD < threads) threads = (unsigned)(work / WORK_PER_THREAD);
    }
    if (threads > 1) {
        rc = vdb_parallel_for(threads, threads, rescore_worker, &job);
        if (rc != VDB_OK && rc != VDB_ERR_THREAD) return rc;
    }
    rescore_worker(&job, 0); /* one thread, or what a failed thread start left over */
    return job.err;
}
