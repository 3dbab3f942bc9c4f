/*
 * kmeans_int.h -- private interface of kmeans.c / kmeans_assign.c to each other and to the
 * quantizers (pq.c, quant.c): the nearest-centroid search used by k-means, PQ training and
 * PQ encoding, and the k-means driver without the public argument checks.
 *
 * Two assignment paths, chosen by dim alone (never by thread count or data):
 *  - small dims (dim <= KM_SMALL_DIM, PQ sub-vectors): the centroids are transposed into
 *    columns and 32 or 64 centroids are scored per step by x.c - |c|^2 / 2, float sums in d
 *    order without FMA, so the result is the same on every SIMD level;
 *  - larger dims: the register-blocked dot_4x3 kernels of distance_int.h over tiles of
 *    points and centroids, ranking by |c|^2 - 2 x.c; bit-identical for any grouping within
 *    one SIMD level (distance_int.h, invariant 5), but the float sums differ between levels.
 * Either way, the nearest centroid is the smallest distance, ties to the smaller index, so
 * the assignment of a point does not depend on which thread or block computed it.
 */
#ifndef VECDB_KMEANS_INT_H
#define VECDB_KMEANS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "distance_int.h"
#include "threads_int.h"
#include "vecdb.h"

#define KM_SMALL_DIM 48

/* A set of centroids prepared for nearest-centroid queries. Owns `ct` (small path only),
 * released by km_assigner_free; reads `c` (caller-owned) while in use. */
typedef struct km_assigner {
    const vdb_kernels *kern;
    const float *c; /* [k][dim] */
    size_t k, dim;
    float *ct;      /* small path: [dim][kpad] transposed, padded with the last centroid,
                       then nh (same allocation) */
    const float *nh; /* small path: [kpad] -|c|^2 / 2 */
    size_t kpad;    /* k rounded up to a multiple of 64 (small path) */
    float *cn;      /* large path: [k] squared norms |c|^2 */
    int avx2;       /* small path: use the AVX2-compiled copy of the loop */
} km_assigner;

/* Prepares c[k][dim] (k >= 1, dim >= 1). VDB_OK or VDB_ERR_NOMEM (nothing to free then). */
int km_assigner_init(km_assigner *a, const vdb_kernels *kern, const float *c, size_t k,
                     size_t dim);
void km_assigner_free(km_assigner *a);

/* Nearest centroid of n points, point i at x + i * stride (floats): assign[i], dist[i]
 * (dist nullable). Pure function of its inputs and the SIMD level of the assigner. */
void km_assign(const km_assigner *a, const float *x, size_t stride, size_t n,
               uint32_t *assign, float *dist);

/* Points per assignment task for (dim, k): a fixed function of them (never of the thread
 * count), at most KM_CHUNK_MAX. */
#define KM_CHUNK_MAX 256
size_t km_chunk(size_t dim, size_t k);

/* The squared L2 of the small path for one pair: float, d order, a product then a sum (the
 * build has -ffp-contract=off: no fusion), as every lane of the small path computes it. */
float km_small_l2(const float *a, const float *b, size_t dim);

/* k-means of x[n][dim] as vdb_kmeans documents, on `threads` threads (>= 1), without the
 * argument checks (1 <= k <= n, k <= UINT32_MAX, n * dim fits). */
int km_train(const vdb_kernels *kern, const float *x, size_t n, size_t dim, size_t k,
             unsigned iters, uint64_t seed, unsigned threads, float *centroids,
             float *inertia);

/* vdb_parallel_for that cannot fail: if a worker thread cannot start, every task is run again
 * on the calling thread. Tasks must therefore be idempotent (write only their own outputs,
 * computed from inputs no task writes). */
static inline int km_parallel(unsigned threads, size_t n_tasks, vdb_task_fn fn, void *ctx) {
    if (vdb_parallel_for(threads, n_tasks, fn, ctx) == VDB_OK) return VDB_OK;
    for (size_t t = 0; t < n_tasks; t++) fn(ctx, t);
    return VDB_OK;
}

/* splitmix64 finaliser: the seed of stream `i` derived from `seed`. */
static inline uint64_t km_mix(uint64_t seed, uint64_t i) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#endif /* VECDB_KMEANS_INT_H */
