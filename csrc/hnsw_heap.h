/*
 * hnsw_heap.h -- private inline helpers of the layer searches (hnsw_search.c, hnsw_filter.c):
 * the candidate and result heaps of (distance, node) pairs, the eligibility test and the
 * prefetch of a node's vector (float row, or code row when the view reads codes).
 *
 * Invariants:
 *  1. The candidate heap is a min-heap by distance; the result heap a max-heap by (d, id), so
 *     its root is the worst kept result and ties go to the smaller node.
 *  2. res_push never holds more than ef pairs; cand_push needs room for one more pair
 *     (cand_offer grows the storage first).
 */
#ifndef VECDB_HNSW_HEAP_H
#define VECDB_HNSW_HEAP_H

#include <stdlib.h>

#include "bitset_int.h"
#include "hnsw_int.h"

#define PREFETCH_LINES 2      /* cache lines of each float vector prefetched ahead of use */
#define PREFETCH_CODE_LINES 4 /* at most this many lines of a code row (its span) */

/* Prefetches the start of node id's vector, or the lines its code row spans (codes).
 * always_inline: GCC treats a function made only of prefetches as free of side effects
 * ("const"), so a call it did not inline early is deleted, and with it the prefetch. */
static inline __attribute__((always_inline)) void prefetch_vec(const hnsw_view *v,
                                                               uint32_t id) {
    if (v->code_segments != NULL) {
        const char *p = (const char *)hnsw_code(v, id);
        size_t first = (uintptr_t)p >> 6, last = ((uintptr_t)p + v->code_size - 1) >> 6;
        size_t n = last - first + 1;
        if (n > PREFETCH_CODE_LINES) n = PREFETCH_CODE_LINES;
        for (size_t i = 0; i < n; i++) __builtin_prefetch(p + 64 * i);
        return;
    }
    const char *p = (const char *)hnsw_vec(v, id);
    for (int i = 0; i < PREFETCH_LINES; i++) __builtin_prefetch(p + 64 * i);
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

static inline int eligible(const uint64_t *allow, const uint64_t *deny, uint32_t id) {
    if (allow != NULL && !vdb_bit_test(allow, id)) return 0;
    if (deny != NULL && vdb_bit_test(deny, id)) return 0;
    return 1;
}

/* Doubles the candidate storage of c; VDB_OK or VDB_ERR_NOMEM. */
static inline int grow_cand(hnsw_ctx *c) {
    size_t cap = c->cand_cap * 2;
    hnsw_pair *a = realloc(c->cand, cap * sizeof *a);
    if (a == NULL) return VDB_ERR_NOMEM;
    c->cand = a;
    c->cand_cap = cap;
    return VDB_OK;
}

/* Pushes x onto the candidate heap of c (*cand, *nc), growing the storage when full and
 * updating *cand; VDB_OK or VDB_ERR_NOMEM. */
static inline int cand_offer(hnsw_ctx *c, hnsw_pair **cand, size_t *nc, hnsw_pair x) {
    if (*nc == c->cand_cap) {
        if (grow_cand(c) != VDB_OK) return VDB_ERR_NOMEM;
        *cand = c->cand;
    }
    cand_push(*cand, nc, x);
    return VDB_OK;
}

/* Starts a layer search of c's current pass: marks the entry points visited, pushes them as
 * candidates and the eligible ones (allow / deny may be NULL) as results, kept to ef. */
static inline void seed_layer(const hnsw_view *v, hnsw_ctx *c, const hnsw_pair *eps,
                              size_t n_eps, size_t ef, const uint64_t *allow,
                              const uint64_t *deny, size_t *nc, size_t *nr) {
    for (size_t i = 0; i < n_eps; i++) {
        uint32_t id = eps[i].id;
        if (id >= v->limit || c->tags[id] == c->epoch) continue;
        c->tags[id] = c->epoch;
        cand_push(c->cand, nc, eps[i]);
        if (eligible(allow, deny, id)) res_push(c->res, nr, ef, eps[i]);
    }
}

#endif /* VECDB_HNSW_HEAP_H */
