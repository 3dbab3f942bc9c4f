/*
 * topk.h -- a bounded max-heap of (distance, row) pairs that keeps the k best (smallest).
 *
 * Order: (d1, r1) is better than (d2, r2) iff d1 < d2, or d1 == d2 and r1 < r2, so ties go to
 * the smaller row. The heap root is the worst kept pair, so a candidate that is not better
 * than the root is rejected with one comparison (the common case once the heap is full).
 *
 * Invariants:
 *  1. 0 <= n <= cap, cap >= 1; items[0 .. n) is a max-heap under the order above
 *     (until vdb_topk_sort, after which items[0 .. n) is sorted best first).
 *  2. NaN distances are never kept (they have no place in the order).
 *  3. The heap does not own its storage; the caller provides cap items.
 */
#ifndef VECDB_TOPK_H
#define VECDB_TOPK_H

#include <stddef.h>
#include <stdint.h>

typedef struct vdb_hit {
    float dist;
    int64_t row;
} vdb_hit;

typedef struct vdb_topk {
    vdb_hit *items;
    size_t n;
    size_t cap;
} vdb_topk;

/* 1 iff a is strictly better (closer, or equally close with a smaller row) than b. */
static inline int vdb_hit_better(float da, int64_t ra, float db, int64_t rb) {
    return da < db || (da == db && ra < rb);
}

static inline void vdb_topk_init(vdb_topk *h, vdb_hit *storage, size_t cap) {
    h->items = storage;
    h->n = 0;
    h->cap = cap;
}

/* Restores the heap below position i of items[0 .. n). */
static inline void vdb_topk_sift_down(vdb_hit *items, size_t n, size_t i) {
    vdb_hit x = items[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && vdb_hit_better(items[c].dist, items[c].row, items[c + 1].dist,
                                        items[c + 1].row))
            c++; /* the worse child */
        if (!vdb_hit_better(x.dist, x.row, items[c].dist, items[c].row)) break;
        items[i] = items[c];
        i = c;
    }
    items[i] = x;
}

/* Offers (d, row); keeps it iff it is among the cap best seen so far. */
static inline void vdb_topk_push(vdb_topk *h, float d, int64_t row) {
    vdb_hit *it = h->items;
    if (h->n == h->cap) {
        if (!vdb_hit_better(d, row, it[0].dist, it[0].row)) return; /* also rejects NaN */
        it[0].dist = d;
        it[0].row = row;
        vdb_topk_sift_down(it, h->n, 0);
        return;
    }
    if (d != d) return; /* NaN */
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!vdb_hit_better(it[p].dist, it[p].row, d, row)) break; /* parent is worse: swap */
        it[i] = it[p];
        i = p;
    }
    it[i].dist = d;
    it[i].row = row;
}

/* Sorts items[0 .. n) best first (heapsort in place); the heap is no longer a heap after. */
static inline void vdb_topk_sort(vdb_topk *h) {
    for (size_t end = h->n; end > 1; end--) {
        vdb_hit top = h->items[0];
        h->items[0] = h->items[end - 1];
        h->items[end - 1] = top;
        vdb_topk_sift_down(h->items, end - 1, 0);
    }
}

#endif /* VECDB_TOPK_H */
