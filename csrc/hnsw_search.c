/*
 * hnsw_search.c -- layer search (greedy descent, best-first search with ef), vdb_hnsw_search
 * and vdb_hnsw_search_codes. Insertion (hnsw_insert.c) uses the same layer search; filtered
 * queries search level 0 with hnsw_filter.c.
 *
 * One search for two distance sources (hnsw_int.h, hnsw_view). vdb_hnsw_search's view reads
 * float rows; vdb_hnsw_search_codes' view reads code rows held in RAM, and search_one
 * prepares each query for ADC (quant_prepare, into the worker's hnsw_ctx scratch: nothing is
 * allocated per query) and searches with a copy of the view that points at it. Everything
 * else -- descent, layer search, filtered two-hop search, seeds, share rules, stats -- is the
 * same code; only hnsw_dists and prefetch_vec look at the source.
 *
 * The hot loop (hnsw_search_layer at level 0): pop the closest candidate, read its level-0
 * record without a lock, keep the ids not yet visited (and < limit), prefetch their vectors,
 * compute their distances four at a time with the 1x4 kernel (memory-level parallelism over
 * four rows), push the ones closer than the current ef-th result, prefetch the record of
 * the next candidate.
 *
 * Invariants:
 *  1. Lock-free: only hnsw_int.h's accessors read the graph; every count is clamped to its
 *     record's capacity and every id checked against the view's limit before use, so a
 *     concurrent vdb_hnsw_add or a damaged image never makes a search read out of bounds.
 *  2. In hnsw_search_layer, excluded nodes (outside allow / inside deny) are visited and
 *     expanded like others but never enter the result heap; the search stops when the
 *     closest open candidate is farther than the worst of ef results (with fewer than ef
 *     eligible results it goes on). vdb_hnsw_search uses it for unfiltered queries (deny
 *     only: tombstones route) and for filtered queries whose share of eligible rows is
 *     outside [HNSW_FILTER_MIN_SHARE, HNSW_FILTER_MAX_SHARE); the others search level 0
 *     with hnsw_search_layer_filtered (hnsw_filter.c), from the descent's node and the seeds
 *     of hnsw_filter_seeds, with ef widened below HNSW_FILTER_WIDE_SHARE (once per call).
 *  3. Results are sorted by (distance, node), so ties go to the smaller row as in flat search;
 *     distances equal vdb_flat_search's (same kernels, same finishing), or, on codes,
 *     vdb_quantizer_distances' (quant_dists, quant_int.h invariant 1).
 *  4. On VDB_ERR_NOMEM some queries' output rows may have been written already.
 *  5. Work counts (vdb_search_stats) are kept in each worker's own hnsw_count and added to
 *     the job's with one atomic add per worker; the caller's stats only on success.
 */
#include <math.h>
#include <stdlib.h>

#include "hnsw_heap.h"
#include "threads_int.h"

double hnsw_query_inv(const hnsw_view *v, const float *q) {
    return v->metric == VDB_METRIC_COSINE ? vdb_inv_norm(v->g->kern->dot(q, q, v->dim)) : 0.0;
}

/* hnsw_dists under codes: ADC of v->qq to the code rows of ids, in batches of pointers.
 * Out of line so that the float path's loop stays as it was. */
#define CODE_BATCH 64
static __attribute__((noinline)) void code_dists(const hnsw_view *v, const uint32_t *ids,
                                                 size_t n, float *out) {
    const uint8_t *p[CODE_BATCH];
    for (size_t i = 0; i < n; i += CODE_BATCH) {
        size_t cnt = n - i < CODE_BATCH ? n - i : CODE_BATCH;
        for (size_t j = 0; j < cnt; j++) p[j] = hnsw_code(v, ids[i + j]);
        quant_dists(v->qq, p, cnt, out + i);
    }
}

void hnsw_dists(const hnsw_view *v, const float *q, double qinv, const uint32_t *ids, size_t n,
                float *out) {
    if (__builtin_expect(v->qq != NULL, 0)) {
        code_dists(v, ids, n, out);
        return;
    }
    size_t dim = v->dim;
    for (size_t i = 0; i < n; i += 4) {
        size_t cnt = n - i < 4 ? n - i : 4;
        const float *x[4];
        for (size_t j = 0; j < 4; j++) x[j] = hnsw_vec(v, ids[i + (j < cnt ? j : cnt - 1)]);
        if (cnt == 4) {
            v->k1x4(q, x, dim, out + i);
        } else { /* the kernel writes four: keep the tail within out[0 .. n) */
            float t[4];
            v->k1x4(q, x, dim, t);
            for (size_t j = 0; j < cnt; j++) out[i + j] = t[j];
        }
        if (v->metric == VDB_METRIC_IP) {
            for (size_t j = 0; j < cnt; j++) out[i + j] = vdb_ip_from_dot(out[i + j]);
        } else if (v->metric == VDB_METRIC_COSINE) {
            for (size_t j = 0; j < cnt; j++)
                out[i + j] = vdb_cosine_from_dot(
                    out[i + j], qinv, vdb_inv_norm(v->g->kern->dot(x[j], x[j], dim)));
        }
    }
}

void hnsw_sort_pairs(hnsw_pair *p, size_t n) {
    /* heapsort via the max-heap: build, then move the max to the end */
    for (size_t i = n / 2; i-- > 0;) res_sift_down(p, n, i);
    for (size_t end = n; end > 1; end--) {
        hnsw_pair t = p[0];
        p[0] = p[end - 1];
        p[end - 1] = t;
        res_sift_down(p, end - 1, 0);
    }
}

void hnsw_greedy(const hnsw_view *v, const float *q, double qinv, unsigned lc, uint32_t *cur,
                 float *curd, hnsw_count *count) {
    uint32_t ids[256];
    float d[256];
    uint64_t n_visited = 0, n_dist = 0;
    for (int moved = 1; moved;) {
        moved = 0;
        const uint32_t *rec = hnsw_upper(v, *cur, lc);
        if (rec == NULL) break;
        n_visited++;
        uint32_t cnt = LOAD_ACQ(&rec[0]);
        if (cnt > v->g->m) cnt = v->g->m;
        size_t nb = 0;
        for (uint32_t j = 0; j < cnt; j++) {
            uint32_t id = LOAD_RLX(&rec[1 + j]);
            if (id < v->limit) {
                ids[nb++] = id;
                prefetch_vec(v, id);
            }
        }
        hnsw_dists(v, q, qinv, ids, nb, d);
        n_dist += nb;
        for (size_t j = 0; j < nb; j++) {
            if (d[j] < *curd) {
                *curd = d[j];
                *cur = ids[j];
                moved = 1;
            }
        }
    }
    if (count != NULL) {
        count->visited += n_visited;
        count->distances += n_dist;
    }
}

size_t hnsw_search_layer(const hnsw_view *v, hnsw_ctx *c, const float *q, double qinv,
                         const hnsw_pair *eps, size_t n_eps, unsigned lc, size_t ef,
                         const uint64_t *allow, const uint64_t *deny, hnsw_count *count) {
    if (hnsw_ctx_reserve(c, ef + n_eps + 1) != VDB_OK) return SIZE_MAX;
    hnsw_ctx_new_pass(c);
    const int filtered = allow != NULL || deny != NULL;
    const uint16_t epoch = c->epoch;
    uint16_t *tags = c->tags;
    const size_t limit = v->limit;
    const uint32_t cap = lc == 0 ? v->g->m0 : v->g->m;
    hnsw_pair *cand = c->cand, *res = c->res;
    size_t nc = 0, nr = 0;
    seed_layer(v, c, eps, n_eps, ef, allow, deny, &nc, &nr);
    float lower = nr == ef ? res[0].d : INFINITY;
    uint32_t ids[513];
    float d[513];
    uint64_t n_visited = 0, n_dist = 0;
    while (nc > 0) {
        hnsw_pair cur = cand[0];
        if (cur.d > lower) break;
        cand_pop(cand, &nc);
        const uint32_t *rec = lc == 0 ? hnsw_l0(v, cur.id) : hnsw_upper(v, cur.id, lc);
        if (rec == NULL) continue;
        n_visited++;
        uint32_t cnt = LOAD_ACQ(&rec[0]);
        if (cnt > cap) cnt = cap;
        size_t nb = 0;
        for (uint32_t j = 0; j < cnt; j++) {
            uint32_t id = LOAD_RLX(&rec[1 + j]);
            if (id >= limit || tags[id] == epoch) continue;
            tags[id] = epoch;
            ids[nb++] = id;
            prefetch_vec(v, id);
        }
        if (nb == 0) continue;
        hnsw_dists(v, q, qinv, ids, nb, d);
        n_dist += nb;
        for (size_t j = 0; j < nb; j++) {
            if (!(d[j] < lower)) continue; /* also drops NaN */
            hnsw_pair x = {d[j], ids[j]};
            if (cand_offer(c, &cand, &nc, x) != VDB_OK) return SIZE_MAX;
            if (lc == 0) __builtin_prefetch(hnsw_l0(v, ids[j]));
            if (!filtered || eligible(allow, deny, ids[j])) {
                res_push(res, &nr, ef, x);
                if (nr == ef) lower = res[0].d;
            }
        }
        if (nc > 0 && lc == 0) __builtin_prefetch(hnsw_l0(v, cand[0].id));
    }
    if (count != NULL) {
        count->visited += n_visited;
        count->distances += n_dist;
    }
    return nr;
}

/* --- vdb_hnsw_search --- */

typedef struct search_job {
    hnsw_view view;    /* under codes a template: search_one prepares a copy per query */
    int simd;          /* codes: the SIMD level of quant_prepare */
    const vdb_quantizer *quant; /* codes: the checked quantizer; NULL for float rows */
    size_t scratch_bytes;       /* codes: quant_scratch_bytes(quant) */
    uint32_t ep;
    unsigned top;      /* level of ep to start from */
    const float *queries;
    size_t nq, k, ef;
    const uint64_t *allow, *deny;
    int route_all;     /* filtered, with a share outside the two-hop search's range */
    uint32_t seeds[HNSW_FILTER_SEEDS]; /* two-hop search: extra entry points */
    size_t n_seeds;
    int64_t *out_rows;
    float *out_dist;
    size_t next;       /* atomic: next query to claim */
    int err;           /* atomic: first error */
    int counting;      /* stats were asked for */
    hnsw_count count;  /* atomic: the workers' counts, added once per worker */
} search_job;

static int search_one(search_job *job, hnsw_ctx *c, size_t qi, hnsw_count *count) {
    const hnsw_view *v = &job->view;
    const float *q = job->queries + qi * v->dim;
    int64_t *rows = job->out_rows + qi * job->k;
    float *dist = job->out_dist + qi * job->k;
    size_t nr = 0;
    if (v->limit > 0) {
        hnsw_view qview; /* codes: the job's view with this query prepared */
        quant_query qq;
        double qinv = 0.0;
        if (job->quant != NULL) {
            quant_prepare(job->simd, job->quant, q, c->qscratch, &qq);
            qview = job->view;
            qview.qq = &qq;
            v = &qview;
        } else {
            qinv = hnsw_query_inv(v, q);
        }
        uint32_t cur = job->ep;
        float curd;
        hnsw_dists(v, q, qinv, &cur, 1, &curd);
        count->distances++;
        for (unsigned lc = job->top; lc >= 1; lc--)
            hnsw_greedy(v, q, qinv, lc, &cur, &curd, count);
        if (job->allow == NULL || job->route_all) {
            hnsw_pair ep = {curd, cur};
            nr = hnsw_search_layer(v, c, q, qinv, &ep, 1, 0, job->ef, job->allow, job->deny,
                                   count);
        } else { /* from the descent's node and the seeds (hnsw_filter.c) */
            hnsw_pair eps[1 + HNSW_FILTER_SEEDS];
            float sd[HNSW_FILTER_SEEDS];
            eps[0] = (hnsw_pair){curd, cur};
            hnsw_dists(v, q, qinv, job->seeds, job->n_seeds, sd);
            count->distances += job->n_seeds;
            for (size_t i = 0; i < job->n_seeds; i++)
                eps[1 + i] = (hnsw_pair){sd[i], job->seeds[i]};
            nr = hnsw_search_layer_filtered(v, c, q, qinv, eps, 1 + job->n_seeds, job->ef,
                                            job->allow, job->deny, count);
        }
        if (nr == SIZE_MAX) return VDB_ERR_NOMEM;
        hnsw_sort_pairs(c->res, nr);
    }
    for (size_t j = 0; j < job->k; j++) {
        rows[j] = j < nr ? (int64_t)c->res[j].id : -1;
        dist[j] = j < nr ? c->res[j].d : INFINITY;
    }
    return VDB_OK;
}

static void search_worker(void *arg, size_t task) {
    (void)task;
    search_job *job = arg;
    hnsw_ctx *c = hnsw_ctx_get(job->view.g, job->view.limit);
    if (c == NULL) {
        __atomic_store_n(&job->err, VDB_ERR_NOMEM, __ATOMIC_RELAXED);
        return;
    }
    if (job->quant != NULL && hnsw_ctx_scratch(c, job->scratch_bytes) != VDB_OK) {
        hnsw_ctx_put(job->view.g, c);
        __atomic_store_n(&job->err, VDB_ERR_NOMEM, __ATOMIC_RELAXED);
        return;
    }
    hnsw_count count = {0, 0};
    for (;;) {
        if (__atomic_load_n(&job->err, __ATOMIC_RELAXED) != VDB_OK) break;
        size_t qi = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (qi >= job->nq) break;
        int rc = search_one(job, c, qi, &count);
        if (rc != VDB_OK) __atomic_store_n(&job->err, rc, __ATOMIC_RELAXED);
    }
    hnsw_ctx_put(job->view.g, c);
    if (job->counting) {
        __atomic_fetch_add(&job->count.visited, count.visited, __ATOMIC_RELAXED);
        __atomic_fetch_add(&job->count.distances, count.distances, __ATOMIC_RELAXED);
    }
}

/* Common argument checks of vdb_hnsw_search and vdb_hnsw_search_codes (after the rows). */
static int check_search(const vdb_hnsw *g, const float *queries, size_t nq, size_t k,
                        int n_threads, const int64_t *out_rows, const float *out_dist) {
    if (n_threads < 0) return VDB_ERR_INVALID;
    if (nq > 0 && k > 0 && (queries == NULL || out_rows == NULL || out_dist == NULL))
        return VDB_ERR_INVALID;
    if (k != 0 && nq > SIZE_MAX / k) return VDB_ERR_INVALID;
    if (nq > SIZE_MAX / sizeof(float) / g->dim) return VDB_ERR_INVALID;
    return VDB_OK;
}

/* Runs the search of job (its view, queries and outputs set; ef, entry point and filter
 * plan still to be chosen here); VDB_OK or the first error. */
static int run_search(search_job *job, const vdb_hnsw *g, size_t k, size_t ef,
                      const uint64_t *allow, const uint64_t *deny, int n_threads,
                      vdb_search_stats *stats) {
    size_t nq = job->nq;
    job->k = k;
    job->ef = ef < k ? k : ef;
    if (job->ef > job->view.limit && job->view.limit > 0) job->ef = job->view.limit;
    if (job->ef < 1) job->ef = 1;
    job->allow = allow;
    job->deny = deny;
    job->counting = stats != NULL;
    uint64_t entry = LOAD_ACQ(&g->entry);
    if (entry == HNSW_NO_ENTRY) {
        job->view.limit = 0; /* empty graph: every slot unused */
    } else {
        job->ep = (uint32_t)entry;
        job->top = (unsigned)(entry >> 32);
        if (job->ep >= job->view.limit) { /* the entry is newer than the rows given */
            job->ep = 0;
            unsigned l0 = job->view.limit > 0 ? hnsw_level(&job->view, 0) : 0;
            if (l0 < job->top) job->top = l0;
        }
    }

    if (allow != NULL && job->view.limit > 0) { /* see hnsw_filter.c */
        double share = hnsw_filter_share(&job->view, allow, deny);
        if (share < HNSW_FILTER_MIN_SHARE || share >= HNSW_FILTER_MAX_SHARE) {
            job->route_all = 1;
        } else {
            if (share < HNSW_FILTER_WIDE_SHARE) {
                double f = HNSW_FILTER_WIDE_SHARE / share;
                size_t wide = (size_t)((double)job->ef * (f < 2.0 ? f : 2.0));
                job->ef = wide < job->view.limit ? wide : job->view.limit;
            }
            job->n_seeds = hnsw_filter_seeds(&job->view, allow, deny, job->seeds,
                                             HNSW_FILTER_SEEDS);
        }
    }

    unsigned threads = 1;
    if (nq > 1 && n_threads != 1) {
        threads = vdb_threads_resolve(n_threads);
        if (threads > nq) threads = (unsigned)nq;
    }
    if (threads > 1) {
        int rc = vdb_parallel_for(threads, threads, search_worker, job);
        if (rc != VDB_OK && rc != VDB_ERR_THREAD) return rc;
    }
    search_worker(job, 0); /* one thread, or what a failed thread start left over */
    if (job->err == VDB_OK && stats != NULL) {
        __atomic_fetch_add(&stats->visited, job->count.visited, __ATOMIC_RELAXED);
        __atomic_fetch_add(&stats->distances, job->count.distances, __ATOMIC_RELAXED);
    }
    return job->err;
}

int vdb_hnsw_search(const vdb_hnsw *g, const vdb_rows *rows, const float *queries,
                    size_t nq, size_t k, size_t ef, const uint64_t *allow,
                    const uint64_t *deny, int n_threads, int64_t *out_rows, float *out_dist,
                    vdb_search_stats *stats) {
    int rc = hnsw_check_rows(g, rows);
    if (rc != VDB_OK) return rc;
    rc = check_search(g, queries, nq, k, n_threads, out_rows, out_dist);
    if (rc != VDB_OK) return rc;
    if (nq == 0 || k == 0) return VDB_OK;

    search_job job = {0};
    hnsw_view_init(&job.view, g, rows);
    job.queries = queries;
    job.nq = nq;
    job.out_rows = out_rows;
    job.out_dist = out_dist;
    return run_search(&job, g, k, ef, allow, deny, n_threads, stats);
}

int vdb_hnsw_search_codes(const vdb_hnsw *g, int simd, const vdb_quantizer *q,
                          const vdb_code_rows *codes, const float *queries, size_t nq,
                          size_t k, size_t ef, const uint64_t *allow, const uint64_t *deny,
                          int n_threads, int64_t *out_rows, float *out_dist,
                          vdb_search_stats *stats) {
    if (g == NULL || q == NULL || codes == NULL) return VDB_ERR_INVALID;
    size_t code_size = 0;
    int rc = quant_check(simd, q, &code_size);
    if (rc != VDB_OK) return rc;
    if (q->dim != g->dim) return VDB_ERR_INVALID; /* metrics may differ: see vecdb.h */
    rc = hnsw_check_codes(g, codes, code_size);
    if (rc != VDB_OK) return rc;
    rc = check_search(g, queries, nq, k, n_threads, out_rows, out_dist);
    if (rc != VDB_OK) return rc;
    if (nq == 0 || k == 0) return VDB_OK;

    search_job job = {0};
    hnsw_view_init_codes(&job.view, g, codes);
    job.simd = simd;
    job.quant = q;
    job.scratch_bytes = quant_scratch_bytes(q);
    job.queries = queries;
    job.nq = nq;
    job.out_rows = out_rows;
    job.out_dist = out_dist;
    return run_search(&job, g, k, ef, allow, deny, n_threads, stats);
}
