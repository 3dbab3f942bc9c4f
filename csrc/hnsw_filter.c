/*
 * hnsw_filter.c -- level-0 search of a filtered query (vdb_hnsw_search with an allow bitset):
 * best-first search over the eligible nodes, reached through up to two hops, in the manner
 * of ACORN-1 (Patel et al., SIGMOD 2024) on the unmodified graph.
 *
 * Why. Letting excluded nodes route the search (hnsw_search_layer) costs about ef / s node
 * expansions at selectivity s, each scoring every new neighbour: 20-40x an unfiltered search
 * at s = 3%. Here an expansion scores eligible nodes only:
 *  - the popped node's eligible neighbours;
 *  - then, reading the records of its excluded neighbours, their eligible neighbours (two
 *    hops), until m0 nodes are scored by this expansion.
 * Excluded nodes are scored and queued (as candidates, never as results: "routing") only
 *  - while no expansion has found an eligible node yet: the search starts in a region the
 *    filter excludes and walks out of it;
 *  - for the first HNSW_FILTER_ROUTE expansions of nodes closer to the query than every
 *    eligible result so far: the nearest eligible nodes may hang off excluded nodes next to
 *    the query that no two-hop path of the search passes.
 * Entry points: the node reached by the greedy descent, plus up to HNSW_FILTER_SEEDS eligible
 * rows spread evenly over the row range (hnsw_filter_seeds, once per call), so that a query
 * whose neighbourhood the filter excludes, or whose start lies in a small two-hop component
 * of eligible nodes, still has eligible starting points elsewhere in the graph.
 * The stopping rule is the unfiltered one: stop when the closest open candidate is farther
 * than the worst of ef eligible results (with fewer than ef, go on while candidates remain).
 *
 * Share of eligible rows (hnsw_filter_share, once per call). The two-hop search pays where
 * routing through excluded nodes is expensive and its own graph is still dense enough.
 * Measured on Gaussian mixtures (50k-200k rows, 128 and 384 dims) and MiniLM embeddings
 * (100k x 384) at recall@10 >= 0.95: from a 2% share recall held with ef 128 (from 5% with
 * ef 32-64), while at 1% some queries stay in the wrong part of the graph whatever the ef.
 * At 10% it needed 4-5x fewer distance computations than routing through every node (2.5x
 * less time at 384 dims, about the same at 128, where a link record read costs as much as
 * a distance); at 30% routing took as long for random allow sets and 2.6x longer for allow
 * sets correlated with the data (whole clusters: routing walks the excluded ones); at 50%
 * routing was faster (it wastes at most half its distances). So vdb_hnsw_search
 *  - below HNSW_FILTER_MIN_SHARE (2%) and from HNSW_FILTER_MAX_SHARE (50%) routes through
 *    every node (hnsw_search_layer; about ef / share expansions: at low shares an exact
 *    scan of the allowed rows is usually cheaper, and the planner uses one);
 *  - in between uses this search, with ef multiplied by 0.05 / share (at most 2) below
 *    HNSW_FILTER_WIDE_SHARE (5%).
 * benchmarks/planner_calibration.py measures where an exact scan of the allowed rows wins.
 *
 * Invariants:
 *  1. Reads the graph only through hnsw_int.h's accessors, with every count clamped and every
 *     id checked against the view's limit (as hnsw_search.c, invariant 1).
 *  2. Only eligible nodes (in allow, not in deny) enter the result heap.
 *  3. A node is scored at most once per query (the visited tags); an excluded node's record
 *     is read at most twice (for two hops, then expanded after routing).
 *  4. An expansion scores at most m0 eligible nodes plus, when it routes, at most m0 excluded
 *     ones: the scratch arrays hold 2 * HNSW_MAX_M0.
 *  5. Vectors are reached only through hnsw_dists and prefetch_vec, so the same search runs
 *     on float rows and on codes (vdb_hnsw_search_codes; hnsw_int.h, hnsw_view).
 */
#include <math.h>

#include "hnsw_heap.h"

double hnsw_filter_share(const hnsw_view *v, const uint64_t *allow, const uint64_t *deny) {
    const size_t limit = v->limit, words = (limit + 63) >> 6;
    const size_t n = words < HNSW_SHARE_WORDS ? words : HNSW_SHARE_WORDS;
    size_t bits = 0, seen = 0;
    for (size_t i = 0; i < n; i++) {
        size_t w = n == words ? i : (2 * i + 1) * words / (2 * n); /* middle of stratum i */
        uint64_t x = vdb_eligible_word(allow, deny, w);
        size_t valid = w == words - 1 && (limit & 63) != 0 ? limit & 63 : 64;
        if (valid < 64) x &= ((uint64_t)1 << valid) - 1; /* rows >= limit do not count */
        bits += (size_t)__builtin_popcountll(x);
        seen += valid;
    }
    return seen == 0 ? 0.0 : (double)bits / (double)seen;
}

size_t hnsw_filter_seeds(const hnsw_view *v, const uint64_t *allow, const uint64_t *deny,
                         uint32_t *out, size_t n) {
    const size_t limit = v->limit, words = (limit + 63) >> 6;
    size_t found = 0, next = 0; /* next: first row not yet scanned */
    for (size_t i = 0; i < n && next < limit; i++) {
        size_t r = (2 * i + 1) * limit / (2 * n); /* the middle of stratum i */
        if (r < next) continue; /* rows [r, next - 1) are not eligible: next - 1 again */
        size_t w = r >> 6;
        uint64_t bits = vdb_eligible_word(allow, deny, w) & (~(uint64_t)0 << (r & 63));
        while (bits == 0 && ++w < words) bits = vdb_eligible_word(allow, deny, w);
        if (bits == 0) break; /* no eligible row at or after r */
        size_t id = (w << 6) + (size_t)__builtin_ctzll(bits);
        if (id >= limit) break;
        out[found++] = (uint32_t)id;
        next = id + 1;
    }
    return found;
}

size_t hnsw_search_layer_filtered(const hnsw_view *v, hnsw_ctx *c, const float *q, double qinv,
                                  const hnsw_pair *eps, size_t n_eps, size_t ef,
                                  const uint64_t *allow, const uint64_t *deny,
                                  hnsw_count *count) {
    if (hnsw_ctx_reserve(c, ef + n_eps + 1) != VDB_OK) return SIZE_MAX;
    hnsw_ctx_new_pass(c);
    const uint16_t epoch = c->epoch;
    uint16_t *tags = c->tags;
    const size_t limit = v->limit;
    const uint32_t cap = v->g->m0; /* also the number of nodes one expansion may score */
    hnsw_pair *cand = c->cand, *res = c->res;
    size_t nc = 0, nr = 0;
    seed_layer(v, c, eps, n_eps, ef, allow, deny, &nc, &nr);
    float lower = nr == ef ? res[0].d : INFINITY;
    float best = INFINITY; /* distance of the closest eligible result */
    for (size_t i = 0; i < nr; i++)
        if (res[i].d < best) best = res[i].d;
    int found = 0;         /* an expansion has scored an eligible node */
    size_t n_routed = 0;   /* expansions that routed */
    uint32_t ids[2 * HNSW_MAX_M0], hop[HNSW_MAX_M0]; /* scored: <= m0 eligible + m0 routed */
    float d[2 * HNSW_MAX_M0];
    uint64_t n_visited = 0, n_dist = 0;
    while (nc > 0) {
        hnsw_pair cur = cand[0];
        if (cur.d > lower) break;
        cand_pop(cand, &nc);
        const uint32_t *rec = hnsw_l0(v, cur.id);
        n_visited++;
        uint32_t cnt = LOAD_ACQ(&rec[0]);
        if (cnt > cap) cnt = cap;
        /* one hop: eligible neighbours are scored, excluded ones kept for the second hop */
        size_t nb = 0, nh = 0;
        for (uint32_t j = 0; j < cnt; j++) {
            uint32_t id = LOAD_RLX(&rec[1 + j]);
            if (id >= limit || tags[id] == epoch) continue;
            if (eligible(allow, deny, id)) {
                tags[id] = epoch;
                ids[nb++] = id;
                prefetch_vec(v, id);
            } else {
                hop[nh++] = id;
                __builtin_prefetch(hnsw_l0(v, id));
            }
        }
        /* two hops: eligible neighbours of excluded neighbours, up to cap scored in all;
         * an excluded neighbour not read here stays untagged and may be read later */
        for (size_t h = 0; h < nh && nb < cap; h++) {
            const uint32_t *rec2 = hnsw_l0(v, hop[h]);
            tags[hop[h]] = epoch;
            n_visited++;
            uint32_t cnt2 = LOAD_ACQ(&rec2[0]);
            if (cnt2 > cap) cnt2 = cap;
            for (uint32_t j = 0; j < cnt2 && nb < cap; j++) {
                uint32_t w = LOAD_RLX(&rec2[1 + j]);
                if (w >= limit || tags[w] == epoch || !eligible(allow, deny, w)) continue;
                tags[w] = epoch;
                ids[nb++] = w;
                prefetch_vec(v, w);
            }
        }
        size_t n_ok = nb; /* ids[0 .. n_ok) are eligible */
        if (nb > 0) found = 1;
        /* route: score the excluded neighbours and queue them (never as results) */
        int route = (nb == 0 && !found) || (cur.d < best && n_routed < HNSW_FILTER_ROUTE);
        n_routed += route;
        if (route) {
            for (size_t h = 0; h < nh; h++) {
                tags[hop[h]] = epoch;
                ids[nb++] = hop[h];
                prefetch_vec(v, hop[h]);
            }
        }
        if (nb == 0) continue;
        hnsw_dists(v, q, qinv, ids, nb, d);
        n_dist += nb;
        for (size_t j = 0; j < nb; j++) {
            if (!(d[j] < lower)) continue; /* also drops NaN */
            hnsw_pair x = {d[j], ids[j]};
            if (cand_offer(c, &cand, &nc, x) != VDB_OK) return SIZE_MAX;
            __builtin_prefetch(hnsw_l0(v, ids[j]));
            if (j < n_ok) {
                res_push(res, &nr, ef, x);
                if (nr == ef) lower = res[0].d;
                if (x.d < best) best = x.d;
            }
        }
        if (nc > 0) __builtin_prefetch(hnsw_l0(v, cand[0].id));
    }
    if (count != NULL) {
        count->visited += n_visited;
        count->distances += n_dist;
    }
    return nr;
}
