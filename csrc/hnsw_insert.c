/*
 * hnsw_insert.c -- vdb_hnsw_add: inserting rows as graph nodes, in parallel.
 *
 * Per node q of level L (drawn from (seed, q), hnsw_random_level): greedy descent from the
 * entry point down to level L + 1; then, top-down for each level lc = min(L, max level) .. 0,
 * a best-first search with ef_construction from the previous level's results and selection
 * of m neighbours by the heuristic of Malkov & Yashunin (algorithm 4: a candidate is kept
 * only if it is closer to q than to every neighbour kept before it; when fewer than m
 * survive, the closest pruned candidates fill the list, "keepPrunedConnections"); then,
 * bottom-up for lc = 0 .. min(L, max level), q's own record written and a back link q added
 * to each selected neighbour; a full neighbour record (2m at level 0, m above) is
 * re-selected by the same heuristic over its links plus q.
 *
 * Phases of one call: (1) storage for the new nodes (hnsw_reserve), (2) each new node's
 * level and upper records, in node order, (3) insertion: the first node of an empty graph
 * alone, then the rest handed out in node order to n_threads workers. Phases 1-2 are the
 * only ones that allocate (besides per-worker scratch), so a failure leaves a graph that
 * covers a prefix of the rows.
 *
 * Invariants:
 *  1. Publication (hnsw_int.h, invariant 1): q's level and upper pointer are published in
 *     phase 2, before any worker starts; at each level q's record is written (ids, then the
 *     count with release) before q's id is stored into any neighbour's record, and the
 *     levels are linked bottom-up, so once q can be reached at a level its records at that
 *     level and all levels below are complete: a concurrent insert that descends onto q
 *     never searches lower levels from a q whose records there are still empty.
 *  2. q's record at a level is written by merging its selection with any back links that
 *     concurrent inserts added before (a node claimed after q lists q among its extra
 *     candidates, invariant 5), so no link is lost to a late overwrite.
 *  3. A worker holds at most one stripe lock at a time: q's while writing q's record, a
 *     neighbour's while appending to or re-selecting its record; the heuristic reads vectors
 *     only. The entry point changes under ep_lock, only to a node of a higher level; a node
 *     whose level is above the maximum holds ep_lock for its whole insertion (as hnswlib's
 *     addPoint does), so it takes stripe locks under ep_lock (order: ep_lock, then stripe)
 *     and two such nodes never both link their new top levels to nothing.
 *  4. Single-threaded insertion with the same seed gives the same graph (levels depend on
 *     (seed, node) only; ties in every ordering go to the smaller node).
 *  5. Nodes are claimed under claim_lock, which also records the node each worker is
 *     inserting; a node's level-0 candidates include the nodes the other workers were
 *     inserting when it was claimed. Of two inserts that overlap in time the later one thus
 *     always considers the earlier, as a single thread would (its layer search may miss a
 *     node not linked yet); without this, two (near-)duplicates inserted at once never link
 *     to each other and the heuristic prunes one of them out of every list.
 */
#include <stdlib.h>

#include "hnsw_int.h"
#include "threads_int.h"

#define KEEP_PRUNED_NEW 1    /* fill a new node's short list with pruned candidates */
#define KEEP_PRUNED_SHRINK 0 /* ... and a re-selected neighbour list (hnswlib: no) */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void lock_node(vdb_hnsw *g, uint32_t id) {
    unsigned char *l = &g->locks[id & (HNSW_N_LOCKS - 1)];
    while (__atomic_test_and_set(l, __ATOMIC_ACQUIRE))
        while (__atomic_load_n(l, __ATOMIC_RELAXED)) cpu_relax();
}

static void unlock_node(vdb_hnsw *g, uint32_t id) {
    __atomic_clear(&g->locks[id & (HNSW_N_LOCKS - 1)], __ATOMIC_RELEASE);
}

/* The heuristic over cands[0 .. n) (sorted by distance to the base node, closest first):
 * writes up to max_out chosen ids to out and returns their count. */
static size_t select_neighbours(const hnsw_view *v, const hnsw_pair *cands, size_t n,
                                size_t max_out, int keep_pruned, uint32_t *out) {
    hnsw_pair pruned[512 + 256];
    size_t n_out = 0, n_pruned = 0;
    float d[4];
    for (size_t i = 0; i < n && n_out < max_out; i++) {
        const float *e = hnsw_vec(v, cands[i].id);
        double einv = hnsw_query_inv(v, e);
        int good = 1;
        for (size_t j = 0; j < n_out && good; j += 4) {
            size_t cnt = n_out - j < 4 ? n_out - j : 4;
            hnsw_dists(v, e, einv, out + j, cnt, d);
            for (size_t t = 0; t < cnt; t++)
                if (d[t] < cands[i].d) good = 0;
        }
        if (good)
            out[n_out++] = cands[i].id;
        else if (n_pruned < max_out)
            pruned[n_pruned++] = cands[i];
    }
    if (keep_pruned)
        for (size_t i = 0; i < n_pruned && n_out < max_out; i++) out[n_out++] = pruned[i].id;
    return n_out;
}

static uint32_t *record(const hnsw_view *v, uint32_t id, unsigned lc) {
    return lc == 0 ? hnsw_l0(v, id) : hnsw_upper(v, id, lc);
}

/* Adds a link to q into node n's record at level lc (re-selecting when it is full). */
static void connect(const hnsw_view *v, uint32_t n, uint32_t q, unsigned lc) {
    vdb_hnsw *g = (vdb_hnsw *)v->g;
    size_t cap = lc == 0 ? g->m0 : g->m;
    uint32_t *rec = record(v, n, lc);
    if (rec == NULL) return; /* damaged image entry: leave it */
    lock_node(g, n);
    uint32_t cnt = LOAD_RLX(&rec[0]);
    if (cnt > cap) cnt = (uint32_t)cap;
    for (uint32_t j = 0; j < cnt; j++) {
        if (LOAD_RLX(&rec[1 + j]) == q) { /* a repeated insertion */
            unlock_node(g, n);
            return;
        }
    }
    if (cnt < cap) {
        STORE_RLX(&rec[1 + cnt], q);
        STORE_REL(&rec[0], cnt + 1);
    } else {
        uint32_t ids[513], sel[513];
        float d[513];
        size_t nt = 0;
        for (uint32_t j = 0; j < cnt; j++) {
            uint32_t id = LOAD_RLX(&rec[1 + j]);
            if (id < v->limit && id != n) ids[nt++] = id;
        }
        ids[nt++] = q;
        const float *x = hnsw_vec(v, n);
        hnsw_dists(v, x, hnsw_query_inv(v, x), ids, nt, d);
        hnsw_pair pairs[513];
        for (size_t j = 0; j < nt; j++) pairs[j].d = d[j], pairs[j].id = ids[j];
        hnsw_sort_pairs(pairs, nt);
        size_t ns = select_neighbours(v, pairs, nt, cap, KEEP_PRUNED_SHRINK, sel);
        for (size_t j = 0; j < ns; j++) STORE_RLX(&rec[1 + j], sel[j]);
        STORE_REL(&rec[0], (uint32_t)ns);
    }
    unlock_node(g, n);
}

/* Writes q's record at level lc: its selection sel[0 .. ns), merged with any back links
 * that concurrent inserts already added (they can reach q from a level above, where q is
 * linked already); a union larger than the record is re-selected by the heuristic. */
static void write_own(const hnsw_view *v, uint32_t q, unsigned lc, uint32_t *rec,
                      const float *x, double xinv, const uint32_t *sel, size_t ns) {
    vdb_hnsw *g = (vdb_hnsw *)v->g;
    size_t cap = lc == 0 ? g->m0 : g->m;
    lock_node(g, q);
    uint32_t cnt = LOAD_RLX(&rec[0]);
    if (cnt > cap) cnt = (uint32_t)cap;
    uint32_t ids[513 + 256];
    size_t nt = 0;
    for (size_t j = 0; j < ns; j++) ids[nt++] = sel[j];
    for (uint32_t j = 0; j < cnt; j++) {
        uint32_t id = LOAD_RLX(&rec[1 + j]);
        int dup = id >= v->limit || id == q;
        for (size_t t = 0; t < ns && !dup; t++) dup = sel[t] == id;
        if (!dup) ids[nt++] = id;
    }
    if (nt > cap) {
        float d[513 + 256];
        hnsw_pair pairs[513 + 256];
        hnsw_dists(v, x, xinv, ids, nt, d);
        for (size_t j = 0; j < nt; j++) pairs[j].d = d[j], pairs[j].id = ids[j];
        hnsw_sort_pairs(pairs, nt);
        nt = select_neighbours(v, pairs, nt, cap, KEEP_PRUNED_SHRINK, ids);
    }
    for (size_t j = 0; j < nt; j++) STORE_RLX(&rec[1 + j], ids[j]);
    STORE_REL(&rec[0], (uint32_t)nt);
    unlock_node(g, q);
}

/* Adds to eps[0 .. n) the nodes extra[0 .. n_extra) (other than q, < limit) it lacks, with
 * their distances to x; returns the new count. */
static size_t add_extra(const hnsw_view *v, const float *x, double xinv, uint32_t q,
                        const uint32_t *extra, size_t n_extra, hnsw_pair *eps, size_t n) {
    for (size_t i = 0; i < n_extra; i++) {
        uint32_t id = extra[i];
        int have = id == q || id >= v->limit;
        for (size_t j = 0; j < n && !have; j++) have = eps[j].id == id;
        if (have) continue;
        eps[n].id = id;
        hnsw_dists(v, x, xinv, &id, 1, &eps[n].d);
        n++;
    }
    return n;
}

/* Inserts node q. Two passes: top-down, the layer searches and q's selection at every level
 * it joins (q itself is dropped from the results); then bottom-up, q's record and its back
 * links level by level. So when q becomes reachable at an upper level, its records at that
 * level and every level below are complete: a concurrent insert whose greedy descent ends on
 * q never starts its level-0 search from a q whose level-0 record is still empty (that left
 * the new node with a one-link list, q's back link to it easily pruned away later: an
 * unreachable node). extra[0 .. n_extra) are the nodes other workers were inserting when q
 * was claimed (invariant 5): they join q's level-0 candidates only, so the one way q's
 * level-0 record can be reached before q writes it is through a level-0 list, where an
 * empty record is one dead end among ef candidates. A node whose level is above the
 * current maximum holds ep_lock for its whole insertion (invariant 3). */
static int insert(const hnsw_view *v, hnsw_ctx *c, uint32_t q, const uint32_t *extra,
                  size_t n_extra) {
    vdb_hnsw *g = (vdb_hnsw *)v->g;
    unsigned level = hnsw_level(v, q);
    uint64_t entry = LOAD_ACQ(&g->entry);
    int ep_held = 0;
    if (entry == HNSW_NO_ENTRY || level > (unsigned)(entry >> 32)) {
        pthread_mutex_lock(&g->ep_lock);
        entry = g->entry;
        if (entry == HNSW_NO_ENTRY) {
            STORE_REL(&g->entry, (uint64_t)level << 32 | q);
            pthread_mutex_unlock(&g->ep_lock);
            return VDB_OK;
        }
        if (level > (unsigned)(entry >> 32))
            ep_held = 1; /* released after q is published as the entry */
        else
            pthread_mutex_unlock(&g->ep_lock);
    }
    int rc = VDB_OK;
    size_t ef = g->ef_construction, m = g->m;
    uint32_t cur = (uint32_t)entry;
    unsigned top = (unsigned)(entry >> 32);
    unsigned hi = level < top ? level : top, lo = hi;
    size_t ns[HNSW_MAX_LEVEL + 1];
    if (hnsw_ctx_reserve(c, 2 * ef + g->m0 + 2 + n_extra) != VDB_OK) {
        rc = VDB_ERR_NOMEM;
        goto out;
    }
    if (c->sel_cap < (hi + 1) * m) {
        uint32_t *p = realloc(c->sel, (HNSW_MAX_LEVEL + 1) * m * sizeof *p);
        if (p == NULL) {
            rc = VDB_ERR_NOMEM;
            goto out;
        }
        c->sel = p;
        c->sel_cap = (HNSW_MAX_LEVEL + 1) * m;
    }
    const float *x = hnsw_vec(v, q);
    double xinv = hnsw_query_inv(v, x);
    float curd;
    hnsw_dists(v, x, xinv, &cur, 1, &curd);
    for (unsigned lc = top; lc > level; lc--) hnsw_greedy(v, x, xinv, lc, &cur, &curd, NULL);

    hnsw_pair *eps = c->aux; /* not reallocated below: reserved above */
    eps[0].d = curd, eps[0].id = cur;
    size_t n_eps = 1;
    for (unsigned lc = hi;; lc--) { /* pass 1: searches and selections, top-down */
        size_t nr = hnsw_search_layer(v, c, x, xinv, eps, n_eps, lc, ef, NULL, NULL, NULL);
        if (nr == SIZE_MAX) {
            rc = VDB_ERR_NOMEM;
            goto out;
        }
        n_eps = 0;
        for (size_t i = 0; i < nr; i++)
            if (c->res[i].id != q) eps[n_eps++] = c->res[i];
        if (lc == 0) n_eps = add_extra(v, x, xinv, q, extra, n_extra, eps, n_eps);
        hnsw_sort_pairs(eps, n_eps);
        ns[lc] = select_neighbours(v, eps, n_eps, m, KEEP_PRUNED_NEW, c->sel + lc * m);
        lo = lc;
        if (lc == 0 || n_eps == 0) break;
    }
    for (unsigned lc = lo; lc <= hi; lc++) { /* pass 2: links, bottom-up */
        uint32_t *rec = record(v, q, lc);
        if (rec == NULL) continue;
        const uint32_t *sel = c->sel + lc * m;
        write_own(v, q, lc, rec, x, xinv, sel, ns[lc]);
        for (size_t j = 0; j < ns[lc]; j++) connect(v, sel[j], q, lc);
    }
    if (ep_held) STORE_REL(&g->entry, (uint64_t)level << 32 | q);
out:
    if (ep_held) pthread_mutex_unlock(&g->ep_lock);
    return rc;
}

#define NO_NODE UINT32_MAX /* an idle worker's busy slot (never a node id) */

typedef struct add_job {
    hnsw_view view;
    size_t next, end;   /* next: the next node to claim (under claim_lock) */
    int err;            /* atomic: first error */
    unsigned char claim_lock;
    size_t n_busy;      /* slots in use: one per task */
    uint32_t busy[VDB_MAX_THREADS]; /* under claim_lock: the node task t is inserting */
} add_job;

/* Claims the next node for task t (NO_NODE when none is left) and lists in extra the nodes
 * the other tasks are inserting at that moment (claimed before it, not finished). Claims
 * and the busy slots change together under claim_lock, so of two nodes whose insertions
 * overlap the later one always lists the earlier. */
static uint32_t claim(add_job *job, size_t t, uint32_t *extra, size_t *n_extra) {
    while (__atomic_test_and_set(&job->claim_lock, __ATOMIC_ACQUIRE))
        while (__atomic_load_n(&job->claim_lock, __ATOMIC_RELAXED)) cpu_relax();
    uint32_t id = NO_NODE;
    size_t ne = 0;
    if (__atomic_load_n(&job->err, __ATOMIC_RELAXED) == VDB_OK && job->next < job->end) {
        id = (uint32_t)job->next++;
        for (size_t u = 0; u < job->n_busy; u++)
            if (u != t && job->busy[u] != NO_NODE) extra[ne++] = job->busy[u];
    }
    job->busy[t] = id;
    __atomic_clear(&job->claim_lock, __ATOMIC_RELEASE);
    *n_extra = ne;
    return id;
}

static void add_worker(void *arg, size_t task) {
    add_job *job = arg;
    hnsw_ctx *c = NULL;
    uint32_t extra[VDB_MAX_THREADS];
    size_t n_extra;
    for (;;) {
        uint32_t id = claim(job, task, extra, &n_extra);
        if (id == NO_NODE) break;
        if (c == NULL && (c = hnsw_ctx_get(job->view.g, job->view.limit)) == NULL) {
            __atomic_store_n(&job->err, VDB_ERR_NOMEM, __ATOMIC_RELAXED);
            continue; /* the next claim clears the busy slot and stops */
        }
        int rc = insert(&job->view, c, id, extra, n_extra);
        if (rc != VDB_OK) __atomic_store_n(&job->err, rc, __ATOMIC_RELAXED);
    }
    if (c != NULL) hnsw_ctx_put(job->view.g, c);
}

/* Phase 2: levels and upper records of nodes [n0, n); returns the end of the prefix done. */
static size_t prepare_nodes(vdb_hnsw *g, const hnsw_view *v, size_t n0, size_t n, int *rc) {
    size_t w = HNSW_UP_WORDS(g->m);
    for (size_t i = n0; i < n; i++) {
        unsigned level = hnsw_random_level(g, i);
        size_t slot = i >> HNSW_CHUNK_SHIFT, off = i & HNSW_CHUNK_MASK;
        if (level > 0) {
            uint32_t *up = calloc(level * w, sizeof(uint32_t));
            if (up == NULL) {
                *rc = VDB_ERR_NOMEM;
                return i;
            }
            hnsw_add_mem(g, level * w * sizeof(uint32_t));
            STORE_REL(&v->table->upper[slot][off], up);
        }
        STORE_REL(&v->table->levels[slot][off], (uint8_t)level);
    }
    return n;
}

int vdb_hnsw_add(vdb_hnsw *g, const vdb_rows *rows, int n_threads) {
    int rc = hnsw_check_rows(g, rows);
    if (rc != VDB_OK) return rc;
    if (n_threads < 0) return VDB_ERR_INVALID;
    size_t n0 = g->n_nodes, n = rows->n_rows;
    if (n < n0) return VDB_ERR_INVALID; /* the rows must cover every node */
    if (n == n0) return VDB_OK;
    rc = hnsw_reserve(g, n);
    if (rc != VDB_OK) return rc;

    add_job job = {0};
    hnsw_view_init(&job.view, g, rows);
    int prep_rc = VDB_OK;
    job.end = prepare_nodes(g, &job.view, n0, n, &prep_rc);
    job.next = n0;
    for (size_t t = 0; t < VDB_MAX_THREADS; t++) job.busy[t] = NO_NODE;
    job.n_busy = 1;
    if (job.next < job.end && LOAD_ACQ(&g->entry) == HNSW_NO_ENTRY) { /* first node alone */
        hnsw_ctx *c = hnsw_ctx_get(g, job.view.limit);
        if (c == NULL) return VDB_ERR_NOMEM;
        job.err = insert(&job.view, c, (uint32_t)job.next++, NULL, 0);
        hnsw_ctx_put(g, c);
    }
    rc = job.err;
    if (rc == VDB_OK && job.next < job.end) {
        unsigned threads = vdb_threads_resolve(n_threads);
        size_t todo = job.end - job.next;
        if (threads > todo / 16) threads = (unsigned)(todo / 16);
        if (threads > 1) {
            job.n_busy = threads;
            rc = vdb_parallel_for(threads, threads, add_worker, &job);
            if (rc != VDB_OK && rc != VDB_ERR_THREAD) return rc;
        }
        add_worker(&job, 0); /* one thread, or what a failed thread start left over */
        rc = job.err;
    }
    /* on a worker error (out of memory for scratch) n_nodes stays: the next add inserts
     * the same nodes again, which is harmless (records are rewritten, back links are not
     * duplicated) */
    if (rc == VDB_OK) {
        STORE_REL(&g->n_nodes, job.end);
        return prep_rc;
    }
    return rc;
}
