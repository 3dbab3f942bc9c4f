/*
 * flat.c -- vdb_flat_search: exact k-nearest search by scanning every eligible row.
 *
 * Plan. The work is cut into tasks = (block of queries) x (range of rows), run by
 * vdb_parallel_for, which hands tasks out dynamically. Many queries: one row range, query
 * blocks spread over the threads. Few queries (fewer than TASKS_PER_THREAD blocks per thread):
 * every block is also split into row ranges, so that threads can balance even when one of
 * them is slowed down; one heap per (query, range), merged at the end. Inside a task, rows
 * are visited in tiles (a tile never crosses a segment and is small enough to stay in L2) and
 * each tile is reused by every query of the block, four queries at a time through a
 * register-blocked kernel (4 queries x 3 rows, each row load shared by four queries); a lone
 * query uses a 1x4 kernel over rows in order (the hardware prefetcher keeps up; software
 * prefetch measured no faster).
 *
 * Invariants:
 *  1. A task writes only its own heaps (scratch memory); out_rows / out_dist are written only
 *     after every task succeeded, so a failed call leaves them untouched.
 *  2. The result does not depend on the plan (threads, blocks, ranges, segments): the 1x4 and
 *     4x3 kernels compute each (query, row) distance with the same operations in the same
 *     order (distance_int.h, invariant 5), and the heap order (distance, row) is total, so
 *     ties go to the smaller row whatever the visiting order.
 *  3. Only rows < n_rows are read, and only bitset words < ceil(n_rows / 64).
 *  4. Distances are finished with the helpers of distance_int.h, exactly as vdb_distances does.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "bitset_int.h"
#include "distance_int.h"
#include "rows_int.h"
#include "threads_int.h"
#include "topk.h"
#include "vecdb.h"

#define TILE_BYTES ((size_t)128 * 1024)   /* rows of a tile, reused by a query block: in L2 */
#define TILE_MAX_ROWS 512
#define QBLOCK_BYTES ((size_t)96 * 1024)  /* queries of a block */
#define QBLOCK_MAX 64                     /* multiple of 4 */
#define SPLIT_MIN_ROWS ((size_t)1024)     /* smallest row range worth its own task */
#define WORK_PER_THREAD ((size_t)1 << 21) /* multiply-adds that justify starting a thread */
#define TASKS_PER_THREAD 4                /* few query blocks: also cut rows, to balance */

typedef struct flat_job {
    const vdb_kernels *kern;
    int metric;
    const float *const *segments;
    unsigned shift;
    size_t seg_mask;
    size_t n_rows, dim;
    const float *queries;
    size_t nq;
    const uint64_t *allow, *deny;
    size_t kk;                       /* heap capacity: min(k, n_rows) */
    size_t qblock, n_qblocks;        /* queries per block (last may be short), block count */
    size_t rsplit_rows, n_rsplits;   /* rows per range (last may be short), range count */
    size_t tile_rows;
    vdb_hit *hits;                   /* [n_rsplits][nq][kk] heap storage */
    size_t *sizes;                   /* [n_rsplits][nq] heap sizes after the scan */
    uint64_t examined;               /* atomic: (query, row) pairs scanned, for stats */
} flat_job;

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }
static size_t ceil_div(size_t a, size_t b) { return a / b + (a % b != 0); }

static inline float finish(int metric, float raw, double qinv, double xinv) {
    if (metric == VDB_METRIC_L2) return raw;
    if (metric == VDB_METRIC_IP) return vdb_ip_from_dot(raw);
    return vdb_cosine_from_dot(raw, qinv, xinv);
}


/* Eligible rows of [lo, hi) (all in the segment starting at base) into ids / ptrs. */
static size_t collect_tile(const flat_job *job, const float *base, size_t lo, size_t hi,
                           const float **ptrs, int64_t *ids) {
    size_t dim = job->dim, mask = job->seg_mask, m = 0;
    if (job->allow == NULL && job->deny == NULL) {
        for (size_t r = lo; r < hi; r++, m++) {
            ids[m] = (int64_t)r;
            ptrs[m] = base + (r & mask) * dim;
        }
        return m;
    }
    for (size_t w = lo >> 6; w <= (hi - 1) >> 6; w++) {
        uint64_t bits = vdb_eligible_word(job->allow, job->deny, w);
        size_t w0 = w << 6;
        if (w0 < lo) bits &= ~(uint64_t)0 << (lo - w0);
        if (hi - w0 < 64) bits &= ((uint64_t)1 << (hi - w0)) - 1;
        while (bits != 0) {
            size_t r = w0 + (size_t)__builtin_ctzll(bits);
            bits &= bits - 1;
            ids[m] = (int64_t)r;
            ptrs[m] = base + (r & mask) * dim;
            m++;
        }
    }
    return m;
}

/* One query against m rows, four rows per kernel call. */
static void scan_1(const flat_job *job, const float *q, double qinv, vdb_topk *h,
                   const float *const *ptrs, const int64_t *ids, const double *xinv, size_t m) {
    const vdb_kernels *kern = job->kern;
    size_t dim = job->dim;
    int metric = job->metric;
    float d[4];
    for (size_t i = 0; i < m; i += 4) {
        size_t cnt = min_sz(4, m - i);
        const float *p[4];
        for (size_t j = 0; j < 4; j++) p[j] = ptrs[i + min_sz(j, cnt - 1)];
        if (metric == VDB_METRIC_L2)
            kern->l2_1x4(q, p, dim, d);
        else
            kern->dot_1x4(q, p, dim, d);
        for (size_t j = 0; j < cnt; j++)
            vdb_topk_push(h, finish(metric, d[j], qinv, xinv[i + j]), ids[i + j]);
    }
}

/* gn (2..4) queries against m rows, three rows per kernel call; q[] is padded to four
 * queries, and the row pointers of a short last call repeat the last row. */
static void scan_4(const flat_job *job, const float *const *q, size_t gn, const double *qinv,
                   vdb_topk *h, const float *const *ptrs, const int64_t *ids,
                   const double *xinv, size_t m) {
    const vdb_kernels *kern = job->kern;
    size_t dim = job->dim;
    int metric = job->metric;
    float d[12];
    for (size_t i = 0; i < m; i += 3) {
        size_t cnt = min_sz(3, m - i);
        const float *p[3] = {ptrs[i], ptrs[i + min_sz(1, cnt - 1)], ptrs[i + cnt - 1]};
        if (metric == VDB_METRIC_L2)
            kern->l2_4x3(q, p, dim, d);
        else
            kern->dot_4x3(q, p, dim, d);
        for (size_t a = 0; a < gn; a++)
            for (size_t j = 0; j < cnt; j++)
                vdb_topk_push(&h[a], finish(metric, d[3 * a + j], qinv[a], xinv[i + j]),
                              ids[i + j]);
    }
}

static void flat_task(void *arg, size_t task) {
    flat_job *job = arg;
    size_t qb = task / job->n_rsplits, rs = task % job->n_rsplits;
    size_t q_lo = qb * job->qblock, nqb = min_sz(job->qblock, job->nq - q_lo);
    size_t r_lo = rs * job->rsplit_rows, r_hi = r_lo + min_sz(job->rsplit_rows, job->n_rows - r_lo);
    size_t dim = job->dim;
    int cosine = job->metric == VDB_METRIC_COSINE;

    vdb_topk heaps[QBLOCK_MAX];
    const float *qp[QBLOCK_MAX + 3];
    double qinv[QBLOCK_MAX + 3];
    for (size_t i = 0; i < nqb; i++) {
        vdb_topk_init(&heaps[i], job->hits + (rs * job->nq + q_lo + i) * job->kk, job->kk);
        qp[i] = job->queries + (q_lo + i) * dim;
        qinv[i] = cosine ? vdb_inv_norm(job->kern->dot(qp[i], qp[i], dim)) : 0.0;
    }
    for (size_t i = nqb; i < nqb + 3; i++) qp[i] = qp[nqb - 1], qinv[i] = qinv[nqb - 1];

    const float *ptrs[TILE_MAX_ROWS];
    int64_t ids[TILE_MAX_ROWS];
    double xinv[TILE_MAX_ROWS];
    uint64_t examined = 0;
    for (size_t lo = r_lo, hi; lo < r_hi; lo = hi) {
        hi = lo + min_sz(job->tile_rows, r_hi - lo);
        size_t seg_last = lo | job->seg_mask; /* last row of lo's segment */
        if (seg_last < hi - 1) hi = seg_last + 1;
        size_t m = collect_tile(job, job->segments[lo >> job->shift], lo, hi, ptrs, ids);
        if (m == 0) continue;
        examined += m;
        for (size_t i = 0; i < m; i++)
            xinv[i] = cosine ? vdb_inv_norm(job->kern->dot(ptrs[i], ptrs[i], dim)) : 0.0;
        for (size_t g = 0; g < nqb; g += 4) {
            size_t gn = min_sz(4, nqb - g);
            if (gn == 1)
                scan_1(job, qp[g], qinv[g], &heaps[g], ptrs, ids, xinv, m);
            else
                scan_4(job, qp + g, gn, qinv + g, heaps + g, ptrs, ids, xinv, m);
        }
    }
    for (size_t i = 0; i < nqb; i++) {
        if (job->n_rsplits == 1) vdb_topk_sort(&heaps[i]); /* nothing to merge */
        job->sizes[rs * job->nq + q_lo + i] = heaps[i].n;
    }
    __atomic_fetch_add(&job->examined, examined * nqb, __ATOMIC_RELAXED);
}

/* Chooses block sizes and range splits (see the header comment) and the thread count. */
static unsigned plan_job(flat_job *job, int n_threads) {
    size_t nq = job->nq, n_rows = job->n_rows, dim = job->dim;
    size_t work = nq * n_rows; /* saturating nq * n_rows * dim */
    if (n_rows != 0 && work / n_rows != nq) work = SIZE_MAX;
    work = work > SIZE_MAX / dim ? SIZE_MAX : work * dim;
    size_t useful = work / WORK_PER_THREAD; /* threads the work can keep busy */
    /* small work: one thread, without asking the OS for the CPU count (a file read, ~8 us) */
    unsigned t = useful < 2 ? 1 : vdb_threads_resolve(n_threads);
    if (useful >= 2 && useful < t) t = (unsigned)useful;

    size_t qmax = QBLOCK_BYTES / (dim * sizeof(float));
    qmax = qmax < 4 ? 4 : qmax > QBLOCK_MAX ? QBLOCK_MAX : qmax & ~(size_t)3;
    size_t n_qb = ceil_div(nq, qmax), qblock;
    if (n_qb >= t) n_qb = ceil_div(n_qb, t) * t; /* a multiple of the thread count */
    qblock = ceil_div(nq, n_qb);
    if (qblock > 1) qblock = (qblock + 3) & ~(size_t)3; /* whole groups of four; <= qmax */
    job->qblock = qblock;
    job->n_qblocks = ceil_div(nq, qblock);

    job->n_rsplits = 1;
    job->rsplit_rows = n_rows;
    if (t > 1 && job->n_qblocks < TASKS_PER_THREAD * t) { /* few blocks: split rows too */
        size_t n_rs = min_sz(ceil_div(TASKS_PER_THREAD * t, job->n_qblocks),
                             ceil_div(n_rows, SPLIT_MIN_ROWS));
        if (n_rs > 1) {
            size_t per = ceil_div(n_rows, n_rs);
            per = (per + 63) & ~(size_t)63;
            job->rsplit_rows = per;
            job->n_rsplits = ceil_div(n_rows, per);
        }
    }
    size_t tile = TILE_BYTES / (dim * sizeof(float));
    job->tile_rows = tile < 8 ? 8 : tile > TILE_MAX_ROWS ? TILE_MAX_ROWS : tile;
    return t;
}

static void write_result(const flat_job *job, size_t qi, size_t k, int64_t *out_rows,
                         float *out_dist) {
    vdb_topk h;
    vdb_topk_init(&h, job->hits + qi * job->kk, job->kk);
    h.n = job->sizes[qi];
    if (job->n_rsplits > 1) { /* merge the other ranges' heaps into range 0's, then sort */
        for (size_t rs = 1; rs < job->n_rsplits; rs++) {
            const vdb_hit *o = job->hits + (rs * job->nq + qi) * job->kk;
            size_t on = job->sizes[rs * job->nq + qi];
            for (size_t j = 0; j < on; j++) vdb_topk_push(&h, o[j].dist, o[j].row);
        }
        vdb_topk_sort(&h);
    }
    for (size_t j = 0; j < k; j++) {
        out_rows[qi * k + j] = j < h.n ? h.items[j].row : -1;
        out_dist[qi * k + j] = j < h.n ? h.items[j].dist : INFINITY;
    }
}

static int check_args(int metric, const vdb_rows *rows, const float *queries, size_t nq,
                      size_t k, int n_threads, const int64_t *out_rows, const float *out_dist) {
    if (metric != VDB_METRIC_L2 && metric != VDB_METRIC_IP && metric != VDB_METRIC_COSINE)
        return VDB_ERR_INVALID;
    if (rows == NULL || rows->dim == 0 || n_threads < 0) return VDB_ERR_INVALID;
    if (nq > 0 && k > 0 && (queries == NULL || out_rows == NULL || out_dist == NULL))
        return VDB_ERR_INVALID;
    if (k != 0 && nq > SIZE_MAX / k) return VDB_ERR_INVALID;
    if (nq > SIZE_MAX / sizeof(float) / rows->dim) return VDB_ERR_INVALID;
    return rows_check(rows, (size_t)INT64_MAX, sizeof(size_t) * CHAR_BIT);
}

int vdb_flat_search(int simd, int metric, const vdb_rows *rows, const float *queries, size_t nq,
                    size_t k, const uint64_t *allow, const uint64_t *deny, int n_threads,
                    int64_t *out_rows, float *out_dist, vdb_search_stats *stats) {
    int rc = check_args(metric, rows, queries, nq, k, n_threads, out_rows, out_dist);
    if (rc != VDB_OK) return rc;
    if (simd < VDB_SIMD_SCALAR || simd > VDB_SIMD_AVX512) return VDB_ERR_INVALID;
    const vdb_kernels *kern = vdb_kernels_for(simd);
    if (kern == NULL) return VDB_ERR_UNSUPPORTED;
    if (nq == 0 || k == 0) return VDB_OK;

    flat_job job = {0};
    job.kern = kern;
    job.metric = metric;
    job.segments = rows->segments;
    job.shift = rows->segment_shift;
    job.seg_mask = ((size_t)1 << rows->segment_shift) - 1;
    job.n_rows = rows->n_rows;
    job.dim = rows->dim;
    job.queries = queries;
    job.nq = nq;
    job.allow = allow;
    job.deny = deny;
    job.kk = min_sz(k, rows->n_rows);
    if (job.kk == 0) { /* no rows: every slot is unused */
        for (size_t i = 0; i < nq * k; i++) out_rows[i] = -1, out_dist[i] = INFINITY;
        return VDB_OK;
    }
    unsigned threads = plan_job(&job, n_threads);

    size_t n_heaps = job.n_rsplits * nq; /* no overflow: n_rsplits * qblock covers few rows */
    if (n_heaps / job.n_rsplits != nq || job.kk > SIZE_MAX / sizeof(vdb_hit) / n_heaps)
        return VDB_ERR_NOMEM;
    job.hits = malloc(n_heaps * job.kk * sizeof(vdb_hit));
    job.sizes = malloc(n_heaps * sizeof(size_t));
    if (job.hits == NULL || job.sizes == NULL) {
        free(job.hits);
        free(job.sizes);
        return VDB_ERR_NOMEM;
    }
    rc = vdb_parallel_for(threads, job.n_qblocks * job.n_rsplits, flat_task, &job);
    if (rc == VDB_OK) {
        for (size_t qi = 0; qi < nq; qi++) write_result(&job, qi, k, out_rows, out_dist);
        if (stats != NULL) {
            __atomic_fetch_add(&stats->visited, job.examined, __ATOMIC_RELAXED);
            __atomic_fetch_add(&stats->distances, job.examined, __ATOMIC_RELAXED);
        }
    }
    free(job.hits);
    free(job.sizes);
    return rc;
}
