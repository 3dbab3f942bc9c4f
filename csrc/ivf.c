/*
 * ivf.c -- vdb_ivfpq_search: search of an IVF-PQ index (coarse centroids, and per list the
 * row numbers and PQ codes of the residuals row - centroid), for collections that do not
 * keep a graph in RAM.
 *
 * Per query:
 *  1. Coarse probe: the distances of the query to every centroid under the quantizer's
 *     metric (the 1x4 float kernels: L2, or IP = -q.c), the nprobe best kept in a bounded
 *     heap (ties to the smaller list), probed closest first.
 *  2. ADC tables, three paths:
 *     - L2 without norms: a table [m][256] per probed list, of the residual query q - c
 *       (quant_pq_tables), since |q - x|^2 = |(q - c) - (x - c)|^2.
 *     - L2 with norms (lists->norms, norms[l][i] = |x^|^2 - |c|^2 = 2 c.r^ + |r^|^2, the
 *       norm term of the decoded row x^ = c + r^): ONE table per query, T[j][k] =
 *       -2 q_j . r_jk (the IP table of 2q, i.e. the IP table of q doubled, barring overflow
 *       / underflow), since |q - x^|^2 = |q - c|^2 - 2 q.r^ + (2 c.r^ + |r^|^2). The list's
 *       base |q - c|^2 is the coarse probe's distance, and the row's norm term is added
 *       after the table sum. This removes the nprobe tables (dim * 256 operations each).
 *     - IP: one table of q for all lists, plus the list's base -q.c (its coarse distance),
 *       since -q.x = -q.c - q.(x - c); norms are ignored.
 *  3. Scan: each list's codes are scored in blocks of SCAN_BLOCK rows by sum_4 (four rows
 *     per step, so four independent sums are in flight, the code bytes of a row read eight
 *     at a time; compiled with constant m for m = 8, 16, 32, 48, 64), then the block's
 *     distances are completed (with norms: each row's norm added, in a separate vectorizable
 *     pass over the block) and filtered: only a final distance not above the current k-th
 *     best has its row checked (rows >= n_rows, deny) and offered to the top-k heap
 *     (topk.h). With an allow bitset, eligibility is checked first (without branches) and
 *     only the eligible rows of a block are scored (a selective allow skips most of the
 *     work).
 * Queries are handed out one at a time to the workers from an atomic counter; each worker
 * allocates its scratch once per call.
 *
 * Invariants:
 *  1. A code's distance is the sum over j of table[j][code_j], summed in j order in float,
 *     then base added, then (L2 with norms) the row's norm added: (sum + base) + norm.
 *     Under L2 without norms (base 0) that is exactly the ADC distance
 *     (vdb_quantizer_distances) of the residual query to the code. With norms it equals the
 *     same ADC distance |q - x^|^2 only up to float rounding (not bit-equal to the per-list
 *     table path): the terms -2 q.r^ and 2 c.r^ cancel, so the error scales with
 *     |q| |r^| + |c| |r^| (eps of those), not with the distance; being relative to the
 *     list's centre, it stays small for data far from the origin. The result does not depend on the block or
 *     unrolling a code falls in, nor on n_threads.
 *  2. Ranking by (distance, row) (topk.h): ties go to the smaller row, NaN is never kept,
 *     and the result depends neither on n_threads nor on the order of the lists. Only
 *     eligible rows (allow / deny, < n_rows) are returned. Rows are not deduplicated: a row
 *     stored in two probed lists may appear twice (an index keeps each row in one list).
 *  3. Reads only what the caller's arguments describe: sizes[i] rows, codes and (L2) norms
 *     of list i (pointers checked non-NULL for non-empty lists; norms[i], when norms is
 *     given, checked under either metric), bitset words of rows < n_rows.
 *  4. Work counts: per worker, added atomically once at the end; the caller's stats only
 *     on success. visited = non-empty lists scanned, distances = centroids + codes scored.
 *  5. Outputs are written per query by the worker that owns it; on an error (allocation)
 *     some queries' outputs may have been written.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitset_int.h"
#include "distance_int.h"
#include "quant_int.h"
#include "threads_int.h"
#include "topk.h"
#include "vecdb.h"

#define SCAN_BLOCK 256                    /* codes scored before their distances are read */
#define WORK_PER_THREAD ((size_t)1 << 20) /* operations that justify starting a thread */

typedef struct ivf_job {
    int simd;
    const vdb_kernels *kern;
    const vdb_quantizer *q;
    int metric;
    size_t dim, m;
    const vdb_ivf_lists *lists;
    size_t n_rows;
    const float *queries;
    size_t nq, k, kk;    /* slots per query; heap capacity min(k, codes in all lists) */
    size_t nprobe;       /* <= nlist */
    const uint64_t *allow, *deny;
    int64_t *out_rows;
    float *out_dist;
    size_t next;         /* atomic: next query to claim */
    int err;             /* atomic: first error */
    int counting;
    uint64_t visited;    /* atomic: workers' counts */
    uint64_t distances;
} ivf_job;

/* A worker's scratch, owned by the worker for the whole call. */
typedef struct ivf_scratch {
    float *tables;       /* [m][256], 64-byte aligned */
    float *cdist;        /* [nlist] coarse distances */
    float *resid;        /* [dim] query - centroid */
    vdb_hit *probe;      /* [nprobe] */
    vdb_hit *hits;       /* [kk] */
    float dist[SCAN_BLOCK];
    uint32_t pos[SCAN_BLOCK];
    uint64_t visited, distances;
} ivf_scratch;

/* --- the scan --- */

/* The table sums of four code rows c0..c3 (m bytes each) in j order (invariant 1).
 * always_inline: the drivers below instantiate it with constant m for the common sizes. */
static inline __attribute__((always_inline)) void sum_4(const float *tab, size_t m,
                                                        const uint8_t *c0, const uint8_t *c1,
                                                        const uint8_t *c2, const uint8_t *c3,
                                                        float base, float *out) {
    float s0 = tab[c0[0]], s1 = tab[c1[0]], s2 = tab[c2[0]], s3 = tab[c3[0]];
    size_t j = 1;
    for (; j + 8 <= m; j += 8) { /* eight code bytes of each row per load */
        uint64_t w0, w1, w2, w3;
        memcpy(&w0, c0 + j, 8);
        memcpy(&w1, c1 + j, 8);
        memcpy(&w2, c2 + j, 8);
        memcpy(&w3, c3 + j, 8);
        const float *t = tab + j * 256;
        for (unsigned b = 0; b < 8; b++, t += 256) {
            s0 += t[(w0 >> (8 * b)) & 255];
            s1 += t[(w1 >> (8 * b)) & 255];
            s2 += t[(w2 >> (8 * b)) & 255];
            s3 += t[(w3 >> (8 * b)) & 255];
        }
    }
    for (; j < m; j++) {
        const float *t = tab + j * 256;
        s0 += t[c0[j]];
        s1 += t[c1[j]];
        s2 += t[c2[j]];
        s3 += t[c3[j]];
    }
    out[0] = s0 + base;
    out[1] = s1 + base;
    out[2] = s2 + base;
    out[3] = s3 + base;
}

/* Distances of n code rows into out[n]: row i at codes + i * m (pos == NULL, contiguous)
 * or at codes + pos[i] * m. A short last group repeats its last row. */
static inline __attribute__((always_inline)) void scan_m(const float *tab, size_t m,
                                                         const uint8_t *codes,
                                                         const uint32_t *pos, size_t n,
                                                         float base, float *out) {
    for (size_t i = 0; i < n; i += 4) {
        size_t cnt = n - i < 4 ? n - i : 4;
        const uint8_t *c[4];
        for (size_t j = 0; j < 4; j++) {
            size_t at = i + (j < cnt ? j : cnt - 1);
            c[j] = codes + (pos != NULL ? (size_t)pos[at] : at) * m;
        }
        if (cnt == 4) {
            sum_4(tab, m, c[0], c[1], c[2], c[3], base, out + i);
        } else {
            float t[4];
            sum_4(tab, m, c[0], c[1], c[2], c[3], base, t);
            for (size_t j = 0; j < cnt; j++) out[i + j] = t[j];
        }
    }
}

/* scan_m with m a constant for the common code sizes (the compiler unrolls the sums: 8-30%
 * faster), and for any m otherwise. */
static void scan(const float *tab, size_t m, const uint8_t *codes, const uint32_t *pos,
                 size_t n, float base, float *out) {
    switch (m) {
    case 8: scan_m(tab, 8, codes, pos, n, base, out); break;
    case 16: scan_m(tab, 16, codes, pos, n, base, out); break;
    case 32: scan_m(tab, 32, codes, pos, n, base, out); break;
    case 48: scan_m(tab, 48, codes, pos, n, base, out); break;
    case 64: scan_m(tab, 64, codes, pos, n, base, out); break;
    default: scan_m(tab, m, codes, pos, n, base, out); break;
    }
}

/* The heap's admission bound: a distance above it cannot enter (ties are decided by the
 * heap on the row). */
static inline float bound(const vdb_topk *h) {
    return h->n == h->cap ? h->items[0].dist : INFINITY;
}

/* Scans list l (n > 0 rows) with the prepared tables and base into heap h; norms (NULL: none)
 * the list's row norms, added to each distance after the table sum (invariant 1). */
static void scan_list(const ivf_job *job, ivf_scratch *s, size_t l, const float *tab,
                      float base, const float *norms, vdb_topk *h) {
    const size_t n = job->lists->sizes[l], m = job->m;
    const uint32_t *rows = job->lists->rows[l];
    const uint8_t *codes = job->lists->codes[l];
    const uint64_t *allow = job->allow, *deny = job->deny;
    const size_t n_rows = job->n_rows;
    uint64_t scored = 0;
    for (size_t lo = 0; lo < n; lo += SCAN_BLOCK) {
        size_t nb = n - lo < SCAN_BLOCK ? n - lo : SCAN_BLOCK;
        if (allow != NULL) { /* eligible rows first, then only those are scored */
            size_t np = 0;
            for (size_t i = 0; i < nb; i++) { /* branch-free but for the rare r >= n_rows */
                uint32_t r = rows[lo + i];
                if (r >= n_rows) continue;
                uint64_t ok = allow[r >> 6] >> (r & 63);
                if (deny != NULL) ok &= ~(deny[r >> 6] >> (r & 63));
                s->pos[np] = (uint32_t)(lo + i);
                np += (size_t)(ok & 1);
            }
            if (np == 0) continue;
            scan(tab, m, codes, s->pos, np, base, s->dist);
            if (norms != NULL)
                for (size_t i = 0; i < np; i++) s->dist[i] += norms[s->pos[i]];
            scored += np;
            float thr = bound(h);
            for (size_t i = 0; i < np; i++) {
                if (!(s->dist[i] <= thr)) continue; /* also drops NaN */
                vdb_topk_push(h, s->dist[i], rows[s->pos[i]]);
                thr = bound(h);
            }
            continue;
        }
        scan(tab, m, codes + lo * m, NULL, nb, base, s->dist);
        if (norms != NULL)
            for (size_t i = 0; i < nb; i++) s->dist[i] += norms[lo + i];
        scored += nb;
        float thr = bound(h);
        for (size_t i = 0; i < nb; i++) {
            if (!(s->dist[i] <= thr)) continue; /* also drops NaN */
            uint32_t r = rows[lo + i];
            if (r >= n_rows || (deny != NULL && vdb_bit_test(deny, r))) continue;
            vdb_topk_push(h, s->dist[i], r);
            thr = bound(h);
        }
    }
    s->distances += scored;
}

/* --- one query --- */

/* Coarse distances of query q to every centroid, into s->cdist, and the probe order. */
static size_t probe_lists(const ivf_job *job, ivf_scratch *s, const float *q) {
    const size_t nlist = job->lists->nlist, dim = job->dim;
    const float *cent = job->lists->centroids;
    float d[4];
    for (size_t i = 0; i < nlist; i += 4) {
        size_t cnt = nlist - i < 4 ? nlist - i : 4;
        const float *x[4];
        for (size_t j = 0; j < 4; j++) x[j] = cent + (i + (j < cnt ? j : cnt - 1)) * dim;
        if (job->metric == VDB_METRIC_L2) {
            job->kern->l2_1x4(q, x, dim, d);
            for (size_t j = 0; j < cnt; j++) s->cdist[i + j] = d[j];
        } else {
            job->kern->dot_1x4(q, x, dim, d);
            for (size_t j = 0; j < cnt; j++) s->cdist[i + j] = vdb_ip_from_dot(d[j]);
        }
    }
    s->distances += nlist;
    vdb_topk h;
    vdb_topk_init(&h, s->probe, job->nprobe);
    for (size_t i = 0; i < nlist; i++) vdb_topk_push(&h, s->cdist[i], (int64_t)i);
    vdb_topk_sort(&h);
    return h.n;
}

static void search_one(const ivf_job *job, ivf_scratch *s, size_t qi) {
    const size_t dim = job->dim;
    const float *q = job->queries + qi * dim;
    int64_t *out_r = job->out_rows + qi * job->k;
    float *out_d = job->out_dist + qi * job->k;
    size_t nr = 0;
    if (job->kk > 0) {
        vdb_topk h;
        vdb_topk_init(&h, s->hits, job->kk);
        size_t np = probe_lists(job, s, q);
        const int l2 = job->metric == VDB_METRIC_L2;
        const float *const *norms = l2 ? job->lists->norms : NULL;
        if (!l2) {
            quant_pq_tables(job->simd, job->q, VDB_METRIC_IP, q, s->tables); /* -q_j.r */
        } else if (norms != NULL) { /* -(2q)_j.r = -2 q_j.r (scaling by 2 is exact) */
            for (size_t d = 0; d < dim; d++) s->resid[d] = 2.0f * q[d];
            quant_pq_tables(job->simd, job->q, VDB_METRIC_IP, s->resid, s->tables);
        }
        for (size_t p = 0; p < np; p++) {
            size_t l = (size_t)s->probe[p].row;
            if (job->lists->sizes[l] == 0) continue;
            float base = 0.0f;
            const float *c = job->lists->centroids + l * dim;
            if (norms != NULL) { /* |q - c|^2 */
                base = s->probe[p].dist;
            } else if (l2) {
                for (size_t d = 0; d < dim; d++) s->resid[d] = q[d] - c[d];
                quant_pq_tables(job->simd, job->q, VDB_METRIC_L2, s->resid, s->tables);
            } else {
                base = s->probe[p].dist; /* -q.c */
            }
            s->visited++;
            scan_list(job, s, l, s->tables, base, norms != NULL ? norms[l] : NULL, &h);
        }
        vdb_topk_sort(&h);
        nr = h.n;
    }
    for (size_t j = 0; j < job->k; j++) {
        out_r[j] = j < nr ? s->hits[j].row : -1;
        out_d[j] = j < nr ? s->hits[j].dist : INFINITY;
    }
}

static void ivf_worker(void *arg, size_t task) {
    (void)task;
    ivf_job *job = arg;
    ivf_scratch *s = calloc(1, sizeof *s);
    if (s == NULL) {
        __atomic_store_n(&job->err, VDB_ERR_NOMEM, __ATOMIC_RELAXED);
        return;
    }
    size_t tab_bytes = job->m * 256 * sizeof(float); /* a multiple of 64 */
    s->tables = aligned_alloc(64, tab_bytes);
    s->cdist = malloc(job->lists->nlist * sizeof *s->cdist);
    s->resid = malloc(job->dim * sizeof *s->resid);
    s->probe = malloc(job->nprobe * sizeof *s->probe);
    s->hits = malloc((job->kk > 0 ? job->kk : 1) * sizeof *s->hits);
    if (s->tables == NULL || s->cdist == NULL || s->resid == NULL || s->probe == NULL ||
        s->hits == NULL) {
        __atomic_store_n(&job->err, VDB_ERR_NOMEM, __ATOMIC_RELAXED);
    } else {
        for (;;) {
            if (__atomic_load_n(&job->err, __ATOMIC_RELAXED) != VDB_OK) break;
            size_t qi = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
            if (qi >= job->nq) break;
            search_one(job, s, qi);
        }
        if (job->counting) {
            __atomic_fetch_add(&job->visited, s->visited, __ATOMIC_RELAXED);
            __atomic_fetch_add(&job->distances, s->distances, __ATOMIC_RELAXED);
        }
    }
    free(s->tables);
    free(s->cdist);
    free(s->resid);
    free(s->probe);
    free(s->hits);
    free(s);
}

/* Checks the lists against q (dim, m); *total receives the number of codes in all lists.
 * norms, when given, must be non-NULL for every non-empty list (whatever the metric). */
static int check_lists(const vdb_ivf_lists *lists, size_t dim, size_t m, size_t *total) {
    if (lists == NULL || lists->nlist == 0 || lists->centroids == NULL ||
        lists->sizes == NULL || lists->rows == NULL || lists->codes == NULL)
        return VDB_ERR_INVALID;
    if (lists->nlist > SIZE_MAX / sizeof(float) / dim) return VDB_ERR_INVALID;
    size_t sum = 0;
    for (size_t i = 0; i < lists->nlist; i++) {
        size_t n = lists->sizes[i];
        if (n == 0) continue;
        if (lists->rows[i] == NULL || lists->codes[i] == NULL) return VDB_ERR_INVALID;
        if (lists->norms != NULL && lists->norms[i] == NULL) return VDB_ERR_INVALID;
        /* row numbers are u32: a longer list would repeat rows; positions are u32 */
        if (n > UINT32_MAX || n > SIZE_MAX / m || n > SIZE_MAX - sum) return VDB_ERR_INVALID;
        sum += n;
    }
    *total = sum;
    return VDB_OK;
}

int vdb_ivfpq_search(int simd, const vdb_quantizer *q, const vdb_ivf_lists *lists,
                     size_t n_rows, const float *queries, size_t nq, size_t k, size_t nprobe,
                     const uint64_t *allow, const uint64_t *deny, int n_threads,
                     int64_t *out_rows, float *out_dist, vdb_search_stats *stats) {
    if (q == NULL || n_threads < 0 || nprobe == 0) return VDB_ERR_INVALID;
    size_t code_size = 0;
    int rc = quant_check(simd, q, &code_size);
    if (rc != VDB_OK) return rc;
    if (q->kind != VDB_QUANT_PQ || code_size != q->m) return VDB_ERR_INVALID;
    const vdb_kernels *kern = vdb_kernels_for(simd);
    if (kern == NULL) return VDB_ERR_UNSUPPORTED;
    size_t total = 0;
    rc = check_lists(lists, q->dim, q->m, &total);
    if (rc != VDB_OK) return rc;
    if (nq > 0 && k > 0 && (queries == NULL || out_rows == NULL || out_dist == NULL))
        return VDB_ERR_INVALID;
    if (k != 0 && nq > SIZE_MAX / k) return VDB_ERR_INVALID;
    if (nq > SIZE_MAX / sizeof(float) / q->dim) return VDB_ERR_INVALID;
    if (q->m > SIZE_MAX / 256 / sizeof(float)) return VDB_ERR_INVALID;
    if (nq == 0 || k == 0) return VDB_OK;

    ivf_job job = {0};
    job.simd = simd;
    job.kern = kern;
    job.q = q;
    job.metric = q->metric;
    job.dim = q->dim;
    job.m = q->m;
    job.lists = lists;
    job.n_rows = n_rows;
    job.queries = queries;
    job.nq = nq;
    job.k = k;
    job.kk = k < total ? k : total;
    job.nprobe = nprobe < lists->nlist ? nprobe : lists->nlist;
    job.allow = allow;
    job.deny = deny;
    job.out_rows = out_rows;
    job.out_dist = out_dist;
    job.counting = stats != NULL;

    /* work of one query (saturating): centroids, tables (one per probed list under L2
     * without norms, else one), codes of an average list */
    const int per_list_tables = job.metric == VDB_METRIC_L2 && lists->norms == NULL;
    double tab = (double)job.dim * 256.0;
    double per_q = (double)lists->nlist * (double)job.dim + (per_list_tables ? 0.0 : tab) +
                   (double)job.nprobe * ((per_list_tables ? tab : 0.0) +
                                         (double)total / (double)lists->nlist * (double)job.m);
    double useful = per_q * (double)nq / (double)WORK_PER_THREAD;
    unsigned threads = 1;
    if (nq > 1 && n_threads != 1 && useful >= 2.0) {
        threads = vdb_threads_resolve(n_threads);
        if (threads > nq) threads = (unsigned)nq;
        if (useful < (double)threads) threads = (unsigned)useful;
    }
    if (threads > 1) {
        rc = vdb_parallel_for(threads, threads, ivf_worker, &job);
        if (rc != VDB_OK && rc != VDB_ERR_THREAD) return rc;
    }
    ivf_worker(&job, 0); /* one thread, or what a failed thread start left over */
    if (job.err == VDB_OK && stats != NULL) {
        __atomic_fetch_add(&stats->visited, job.visited, __ATOMIC_RELAXED);
        __atomic_fetch_add(&stats->distances, job.distances, __ATOMIC_RELAXED);
    }
    return job.err;
}
