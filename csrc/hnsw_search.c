/*
 * hnsw_search.c -- layer search (greedy descent, best-first search with ef) and
 * vdb_hnsw_search. Insertion (hnsw_insert.c) uses the same layer search.
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
 *  2. Excluded nodes (outside allow / inside deny) are visited and expanded like others but
 *     never enter the result heap; the search stops when the closest open candidate is
 *     farther than the worst of ef results (with fewer than ef eligible results it goes on).
 *  3. Results are sorted by (distance, node), so ties go to the smaller row as in flat search;
 *     distances equal vdb_flat_search's (same kernels, same finishing).
 *  4. On VDB_ERR_NOMEM some queries' output rows may have been written already.
 */
#include <math.h>
#include <stdlib.h>

#include "bitset_int.h"
#include "hnsw_int.h"
#include "threads_int.h"

#define PREFETCH_LINES 2 /* cache lines of each vector prefetched ahead of its distance */

static inline void prefetch_vec(const hnsw_view *v, uint32_t id) {
    const char *p = (const char *)hnsw_vec(v, id);
    for (int i = 0; i < PREFETCH_LINES; i++) __builtin_prefetch(p + 64 * i);
}

double hnsw_query_inv(const hnsw_view *v, const float *q) {
    return v->metric == VDB_METRIC_COSINE ? vdb_inv_norm(v->g->kern->dot(q, q, v->dim)) : 0.0;
}

void hnsw_dists(const hnsw_view *v, const float *q, double qinv, const uint32_t *ids, size_t n,
                float *out) {
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

/* --- heaps of (d, id): candidates min by d, results max by (d, id) --- */

static inline int worse(hnsw_pair a, hnsw_pair b) { /* a after b in (d, id) order */
    return a.d > b.d || (a.d == b.d && a.id > b.id);
}

static inline void cand_push(hnsw_pair *h, size_t *n, hnsw_pair x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) >> 1;
        if (h[p].d <= x.d) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static inline void cand_pop(hnsw_pair *h, size_t *n) {
    size_t len = --(*n);
    if (len == 0) return;
    hnsw_pair x = h[len];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= len) break;
        if (c + 1 < len && h[c + 1].d < h[c].d) c++;
        if (x.d <= h[c].d) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static inline void res_sift_down(hnsw_pair *h, size_t len, size_t i) {
    hnsw_pair x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= len) break;
        if (c + 1 < len && worse(h[c + 1], h[c])) c++;
        if (!worse(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* Offers x to the bounded max-heap h (capacity ef). */
static inline void res_push(hnsw_pair *h, size_t *n, size_t ef, hnsw_pair x) {
    if (*n == ef) {
        if (!worse(h[0], x)) return;
        h[0] = x;
        res_sift_down(h, ef, 0);
        return;
    }
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) >> 1;
        if (!worse(x, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
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

static inline int eligible(const uint64_t *allow, const uint64_t *deny, uint32_t id) {
    if (allow != NULL && !vdb_bit_test(allow, id)) return 0;
    if (deny != NULL && vdb_bit_test(deny, id)) return 0;
    return 1;
}

void hnsw_greedy(const hnsw_view *v, const float *q, double qinv, unsigned lc, uint32_t *cur,
                 float *curd) {
    uint32_t ids[256];
    float d[256];
    for (int moved = 1; moved;) {
        moved = 0;
        const uint32_t *rec = hnsw_upper(v, *cur, lc);
        if (rec == NULL) return;
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
        for (size_t j = 0; j < nb; j++) {
            if (d[j] < *curd) {
                *curd = d[j];
                *cur = ids[j];
                moved = 1;
            }
        }
    }
}

static int grow_cand(hnsw_ctx *c) {
    size_t cap = c->cand_cap * 2;
    hnsw_pair *a = realloc(c->cand, cap * sizeof *a);
    if (a == NULL) return VDB_ERR_NOMEM;
    c->cand = a;
    c->cand_cap = cap;
    return VDB_OK;
}

size_t hnsw_search_layer(const hnsw_view *v, hnsw_ctx *c, const float *q, double qinv,
                         const hnsw_pair *eps, size_t n_eps, unsigned lc, size_t ef,
                         const uint64_t *allow, const uint64_t *deny) {
    if (hnsw_ctx_reserve(c, ef + n_eps + 1) != VDB_OK) return SIZE_MAX;
    hnsw_ctx_new_pass(c);
    const int filtered = allow != NULL || deny != NULL;
    const uint16_t epoch = c->epoch;
    uint16_t *tags = c->tags;
    const size_t limit = v->limit;
    const uint32_t cap = lc == 0 ? v->g->m0 : v->g->m;
    hnsw_pair *cand = c->cand, *res = c->res;
    size_t nc = 0, nr = 0;
    for (size_t i = 0; i < n_eps; i++) {
        uint32_t id = eps[i].id;
        if (id >= limit || tags[id] == epoch) continue;
        tags[id] = epoch;
        cand_push(cand, &nc, eps[i]);
        if (!filtered || eligible(allow, deny, id)) res_push(res, &nr, ef, eps[i]);
    }
    float lower = nr == ef ? res[0].d : INFINITY;
    uint32_t ids[513];
    float d[513];
    while (nc > 0) {
        hnsw_pair cur = cand[0];
        if (cur.d > lower) break;
        cand_pop(cand, &nc);
        const uint32_t *rec = lc == 0 ? hnsw_l0(v, cur.id) : hnsw_upper(v, cur.id, lc);
        if (rec == NULL) continue;
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
        for (size_t j = 0; j < nb; j++) {
            if (!(d[j] < lower)) continue; /* also drops NaN */
            if (nc == c->cand_cap) {
                if (grow_cand(c) != VDB_OK) return SIZE_MAX;
                cand = c->cand;
            }
            hnsw_pair x = {d[j], ids[j]};
            cand_push(cand, &nc, x);
            if (lc == 0) __builtin_prefetch(hnsw_l0(v, ids[j]));
            if (!filtered || eligible(allow, deny, ids[j])) {
                res_push(res, &nr, ef, x);
                if (nr == ef) lower = res[0].d;
            }
        }
        if (nc > 0 && lc == 0) __builtin_prefetch(hnsw_l0(v, cand[0].id));
    }
    return nr;
}

/* --- vdb_hnsw_search --- */

typedef struct search_job {
    hnsw_view view;
    uint32_t ep;
    unsigned top;      /* level of ep to start from */
    const float *queries;
    size_t nq, k, ef;
    const uint64_t *allow, *deny;
    int64_t *out_rows;
    float *out_dist;
    size_t next;       /* atomic: next query to claim */
    int err;           /* atomic: first error */
} search_job;

static int search_one(search_job *job, hnsw_ctx *c, size_t qi) {
    const hnsw_view *v = &job->view;
    const float *q = job->queries + qi * v->dim;
    int64_t *rows = job->out_rows + qi * job->k;
    float *dist = job->out_dist + qi * job->k;
    size_t nr = 0;
    if (v->limit > 0) {
        double qinv = hnsw_query_inv(v, q);
        uint32_t cur = job->ep;
        float curd;
        hnsw_dists(v, q, qinv, &cur, 1, &curd);
        for (unsigned lc = job->top; lc >= 1; lc--) hnsw_greedy(v, q, qinv, lc, &cur, &curd);
        hnsw_pair ep = {curd, cur};
        nr = hnsw_search_layer(v, c, q, qinv, &ep, 1, 0, job->ef, job->allow, job->deny);
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
    for (;;) {
        if (__atomic_load_n(&job->err, __ATOMIC_RELAXED) != VDB_OK) break;
        size_t qi = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (qi >= job->nq) break;
        int rc = search_one(job, c, qi);
        if (rc != VDB_OK) __atomic_store_n(&job->err, rc, __ATOMIC_RELAXED);
    }
    hnsw_ctx_put(job->view.g, c);
}

int vdb_hnsw_search(const vdb_hnsw *g, const vdb_rows *rows, const float *queries,
                    size_t nq, size_t k, size_t ef, const uint64_t *allow,
                    const uint64_t *deny, int n_threads, int64_t *out_rows, float *out_dist) {
    int rc = hnsw_check_rows(g, rows);
    if (rc != VDB_OK) return rc;
    if (n_threads < 0) return VDB_ERR_INVALID;
    if (nq > 0 && k > 0 && (queries == NULL || out_rows == NULL || out_dist == NULL))
        return VDB_ERR_INVALID;
    if (k != 0 && nq > SIZE_MAX / k) return VDB_ERR_INVALID;
    if (nq == 0 || k == 0) return VDB_OK;

    search_job job = {0};
    hnsw_view_init(&job.view, g, rows);
    job.queries = queries;
    job.nq = nq;
    job.k = k;
    job.ef = ef < k ? k : ef;
    if (job.ef > job.view.limit && job.view.limit > 0) job.ef = job.view.limit;
    if (job.ef < 1) job.ef = 1;
    job.allow = allow;
    job.deny = deny;
    job.out_rows = out_rows;
    job.out_dist = out_dist;
    uint64_t entry = LOAD_ACQ(&g->entry);
    if (entry == HNSW_NO_ENTRY) {
        job.view.limit = 0; /* empty graph: every slot unused */
    } else {
        job.ep = (uint32_t)entry;
        job.top = (unsigned)(entry >> 32);
        if (job.ep >= job.view.limit) { /* the entry is newer than the rows given */
            job.ep = 0;
            unsigned l0 = job.view.limit > 0 ? hnsw_level(&job.view, 0) : 0;
            if (l0 < job.top) job.top = l0;
        }
    }

    unsigned threads = 1;
    if (nq > 1 && n_threads != 1) {
        threads = vdb_threads_resolve(n_threads);
        if (threads > nq) threads = (unsigned)nq;
    }
    if (threads > 1) {
        rc = vdb_parallel_for(threads, threads, search_worker, &job);
        if (rc != VDB_OK && rc != VDB_ERR_THREAD) return rc;
    }
    search_worker(&job, 0); /* one thread, or what a failed thread start left over */
    return job.err;
}
