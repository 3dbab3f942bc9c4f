/*
 * kmeans_assign.c -- nearest-centroid search for k-means, vdb_kmeans_assign and PQ encoding
 * (kmeans_int.h: km_assigner, km_assign).
 *
 * Two paths, chosen by dim alone (and k, for the int32 indices of the small path):
 *  - small dims (dim <= KM_SMALL_DIM): centroids transposed into columns, scored many at a
 *    time in vector lanes by x.c - |c|^2 / 2 without FMA (the same bits on every level);
 *  - larger dims: the blocked dot_4x3 kernels of distance_int.h over tiles of points and
 *    centroids, ranked by |c|^2 - 2 x.c (the same bits for any grouping within a level).
 *
 * Invariants:
 *  1. The nearest centroid is the best score, ties to the smaller index, and a point's
 *     result depends only on the point, the centroids and the SIMD level: never on which
 *     block, task or thread computes it.
 *  2. The reported distance is the direct squared L2 of the point and its centroid (small
 *     path: the arithmetic of km_small_l2; large path: the pairwise l2 kernel).
 *  3. Memory: a km_assigner owns its transposed copy (small path) or its norms (large path)
 *     from km_assigner_init until km_assigner_free; km_assign allocates nothing.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distance_int.h"
#include "kmeans_int.h"
#include "vecdb.h"

#define BLOCK_BYTES ((size_t)96 * 1024) /* large path: points of a block, reused per tile */
#define TILE_BYTES ((size_t)96 * 1024)  /* large path: centroids of a tile (in L2) */
#define SMALL_CHUNK 256                 /* small path: points per task */
#define SMALL_MAX_K ((size_t)1 << 24)   /* the small path indexes centroids with int32 */

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* ---- small dims: many centroids per step over transposed centroids ------------------------ */

float km_small_l2(const float *a, const float *b, size_t dim) {
    float s = 0.0f;
    for (size_t d = 0; d < dim; d++) {
        float t = a[d] - b[d];
        s += t * t;
    }
    return s;
}

/*
 * Nearest of the kpad transposed centroids ct[dim][kpad] for n points: the largest score
 * x.c - |c|^2 / 2 (half of |x|^2 - |x - c|^2). A score starts from nh[c] = -|c|^2 / 2 and
 * adds x_d c_d in d order, a product then a sum, so every vector lane rounds exactly as
 * scalar code would. Eight accumulators per step cover the add latency; their scores meet in
 * a tree where the later (higher-index) operand wins only if strictly greater, then the
 * block's winner meets the lane's best so far the same way, and small_pick merges the lanes
 * by (score, index): the highest score, ties to the smaller index. (A NaN score, from
 * non-finite input, may hide others: such input gets an arbitrary but deterministic
 * centroid.)
 *
 * Two copies, with the same per-lane arithmetic and so the same results: 4-float vectors for
 * the baseline build (SSE2 / NEON registers; an 8-float vector type would live in memory
 * there), and 8-float vectors compiled for AVX2 (no FMA enabled).
 */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

/* The winner among `lanes` (best score, index) pairs: the greatest score, ties to the
 * smaller index. */
static int32_t small_pick(const float *best, const int32_t *bidx, int lanes) {
    float bv = best[0];
    int32_t bi = bidx[0];
    for (int l = 1; l < lanes; l++)
        if (best[l] > bv || (best[l] == bv && bidx[l] < bi)) bv = best[l], bi = bidx[l];
    return bi;
}

/* km_small_l2 of p and column c of the transposed centroids. */
static float small_dist(const float *p, const float *ct, size_t kpad, size_t dim, size_t c) {
    float s = 0.0f;
    for (size_t d = 0; d < dim; d++) {
        float t = p[d] - ct[d * kpad + c];
        s += t * t;
    }
    return s;
}

/* acc[a], idx[a] = the pair (a or b) with the greater score, a on ties (a < b). */
#define MERGE4(a, b)                                                                       \
    do {                                                                                   \
        v4i m_ = acc[b] > acc[a];                                                          \
        acc[a] = (v4f)(((v4i)acc[b] & m_) | ((v4i)acc[a] & ~m_));                          \
        idx[a] = (idx[b] & m_) | (idx[a] & ~m_);                                           \
    } while (0)

static void small_assign_base(const float *ct, const float *nh, size_t kpad, size_t dim,
                              const float *x, size_t stride, size_t n, uint32_t *assign,
                              float *dist) {
    const v4i lane = {0, 1, 2, 3};
    for (size_t i = 0; i < n; i++) {
        const float *p = x + i * stride;
        v4f best = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
        v4i bidx = {0, 0, 0, 0};
        for (size_t cb = 0; cb < kpad; cb += 32) {
            v4f acc[8];
            for (int j = 0; j < 8; j++) acc[j] = *(const v4f *)(nh + cb + 4 * j);
            const float *col = ct + cb;
            for (size_t d = 0; d < dim; d++, col += kpad) {
                float v = p[d];
                v4f xv = {v, v, v, v};
                for (int j = 0; j < 8; j++) acc[j] += xv * *(const v4f *)(col + 4 * j);
            }
            v4i idx[8];
            for (int j = 0; j < 8; j++) idx[j] = lane + 4 * j;
            /* tree (written out so that it stays in registers): the later operand wins only
             * if greater */
            MERGE4(0, 1);
            MERGE4(2, 3);
            MERGE4(4, 5);
            MERGE4(6, 7);
            MERGE4(0, 2);
            MERGE4(4, 6);
            MERGE4(0, 4);
            v4i m = acc[0] > best;
            best = (v4f)(((v4i)acc[0] & m) | ((v4i)best & ~m));
            bidx = ((idx[0] + (int32_t)cb) & m) | (bidx & ~m);
        }
        float bl[4];
        int32_t il[4];
        memcpy(bl, &best, sizeof bl);
        memcpy(il, &bidx, sizeof il);
        int32_t bi = small_pick(bl, il, 4);
        assign[i] = (uint32_t)bi;
        if (dist != NULL) dist[i] = small_dist(p, ct, kpad, dim, (size_t)bi);
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

#define MERGE8(a, b)                                                                       \
    do {                                                                                   \
        v8i m_ = acc[b] > acc[a];                                                          \
        acc[a] = (v8f)(((v8i)acc[b] & m_) | ((v8i)acc[a] & ~m_));                          \
        idx[a] = (idx[b] & m_) | (idx[a] & ~m_);                                           \
    } while (0)

__attribute__((target("avx2"))) static void small_assign_avx2(
    const float *ct, const float *nh, size_t kpad, size_t dim, const float *x, size_t stride,
    size_t n, uint32_t *assign, float *dist) {
    const v8i lane = {0, 1, 2, 3, 4, 5, 6, 7};
    for (size_t i = 0; i < n; i++) {
        const float *p = x + i * stride;
        v8f best = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,
                    -INFINITY, -INFINITY, -INFINITY, -INFINITY};
        v8i bidx = {0, 0, 0, 0, 0, 0, 0, 0};
        for (size_t cb = 0; cb < kpad; cb += 64) {
            v8f acc[8];
            for (int j = 0; j < 8; j++) acc[j] = *(const v8f *)(nh + cb + 8 * j);
            const float *col = ct + cb;
            for (size_t d = 0; d < dim; d++, col += kpad) {
                float v = p[d];
                v8f xv = {v, v, v, v, v, v, v, v};
                for (int j = 0; j < 8; j++) acc[j] += xv * *(const v8f *)(col + 8 * j);
            }
            v8i idx[8];
            for (int j = 0; j < 8; j++) idx[j] = lane + 8 * j;
            /* tree (written out so that it stays in registers): the later operand wins only
             * if greater */
            MERGE8(0, 1);
            MERGE8(2, 3);
            MERGE8(4, 5);
            MERGE8(6, 7);
            MERGE8(0, 2);
            MERGE8(4, 6);
            MERGE8(0, 4);
            v8i m = acc[0] > best;
            best = (v8f)(((v8i)acc[0] & m) | ((v8i)best & ~m));
            bidx = ((idx[0] + (int32_t)cb) & m) | (bidx & ~m);
        }
        /* small_pick's merge without branches: the greatest score, then the smallest index
         * among the lanes holding it (the same winner for finite scores) */
        __m256 b = (__m256)best, mx;
        mx = _mm256_max_ps(b, _mm256_permute2f128_ps(b, b, 1));
        mx = _mm256_max_ps(mx, _mm256_permute_ps(mx, 0x4E));
        mx = _mm256_max_ps(mx, _mm256_permute_ps(mx, 0xB1));
        __m256i eq = _mm256_castps_si256(_mm256_cmp_ps(b, mx, _CMP_EQ_OQ));
        __m256i cand = _mm256_blendv_epi8(_mm256_set1_epi32(INT32_MAX), (__m256i)bidx, eq);
        cand = _mm256_min_epi32(cand, _mm256_permute2x128_si256(cand, cand, 1));
        cand = _mm256_min_epi32(cand, _mm256_shuffle_epi32(cand, 0x4E));
        cand = _mm256_min_epi32(cand, _mm256_shuffle_epi32(cand, 0xB1));
        int32_t bi = _mm256_cvtsi256_si32(cand);
        if (bi == INT32_MAX) bi = 0; /* every score NaN */
        assign[i] = (uint32_t)bi;
        if (dist != NULL) dist[i] = small_dist(p, ct, kpad, dim, (size_t)bi);
    }
}
#endif

/* ---- larger dims: 4 points x 3 centroids per kernel call, tiled ----------------------------- */

static size_t large_block(size_t dim) {
    size_t b = BLOCK_BYTES / (dim * sizeof(float));
    b = b < 4 ? 4 : b > KM_CHUNK_MAX ? KM_CHUNK_MAX : b & ~(size_t)3;
    return b;
}

/* The nearest centroid minimises |c|^2 - 2 x.c (|x|^2 is the same for all): one dot product
 * (an FMA per element) instead of a difference and an FMA. The distance reported for the
 * winner is then computed directly (no cancellation), with the pairwise l2 kernel. */
static void large_assign(const km_assigner *a, const float *x, size_t stride, size_t n,
                         uint32_t *assign, float *dist) {
    size_t dim = a->dim, k = a->k, block = large_block(dim);
    size_t tile = TILE_BYTES / (dim * sizeof(float));
    tile = tile < 3 ? 3 : tile - tile % 3;
    float bestd[KM_CHUNK_MAX], out[12];
    uint32_t besti[KM_CHUNK_MAX];
    for (size_t b0 = 0; b0 < n; b0 += block) {
        size_t bn = min_sz(block, n - b0);
        for (size_t i = 0; i < bn; i++) bestd[i] = INFINITY, besti[i] = 0;
        for (size_t c0 = 0; c0 < k; c0 += tile) {
            size_t c1 = min_sz(k, c0 + tile);
            for (size_t g = 0; g < bn; g += 4) {
                size_t gn = min_sz(4, bn - g);
                const float *q[4];
                for (size_t j = 0; j < 4; j++) q[j] = x + (b0 + g + min_sz(j, gn - 1)) * stride;
                for (size_t c = c0; c < c1; c += 3) {
                    size_t cnt = min_sz(3, c1 - c);
                    const float *r[3] = {a->c + c * dim, a->c + (c + min_sz(1, cnt - 1)) * dim,
                                         a->c + (c + cnt - 1) * dim};
                    a->kern->dot_4x3(q, r, dim, out);
                    for (size_t i = 0; i < gn; i++) {
                        for (size_t j = 0; j < cnt; j++) {
                            float v = a->cn[c + j] - 2.0f * out[3 * i + j];
                            if (v < bestd[g + i])
                                bestd[g + i] = v, besti[g + i] = (uint32_t)(c + j);
                        }
                    }
                }
            }
        }
        for (size_t i = 0; i < bn; i++) {
            assign[b0 + i] = besti[i];
            if (dist != NULL)
                dist[b0 + i] = a->kern->l2(x + (b0 + i) * stride, a->c + besti[i] * dim, dim);
        }
    }
}

/* ---- the assigner ------------------------------------------------------------------------ */

int km_assigner_init(km_assigner *a, const vdb_kernels *kern, const float *c, size_t k,
                     size_t dim) {
    a->kern = kern;
    a->c = c;
    a->k = k;
    a->dim = dim;
    a->ct = NULL;
    a->nh = NULL;
    a->kpad = 0;
    a->cn = NULL;
    a->avx2 = kern->level >= VDB_SIMD_AVX2;
    if (dim > KM_SMALL_DIM || k > SMALL_MAX_K) {
        float *cn = malloc(k * sizeof(float)); /* owned by a: km_assigner_free */
        if (cn == NULL) return VDB_ERR_NOMEM;
        for (size_t j = 0; j < k; j++) cn[j] = kern->dot(c + j * dim, c + j * dim, dim);
        a->cn = cn;
        return VDB_OK;
    }
    size_t kpad = (k + 63) & ~(size_t)63;
    /* 32-byte aligned, and kpad is a multiple of 64: every 8-float group the loop loads is
     * aligned (owned by a: km_assigner_free) */
    float *ct = aligned_alloc(32, (kpad * dim + kpad) * sizeof(float));
    if (ct == NULL) return VDB_ERR_NOMEM;
    float *nh = ct + kpad * dim;
    for (size_t j = 0; j < kpad; j++) {
        const float *cj = c + min_sz(j, k - 1) * dim;
        float s = 0.0f;
        for (size_t d = 0; d < dim; d++) ct[d * kpad + j] = cj[d], s += cj[d] * cj[d];
        nh[j] = -0.5f * s;
    }
    a->ct = ct;
    a->nh = nh;
    a->kpad = kpad;
    return VDB_OK;
}

void km_assigner_free(km_assigner *a) {
    free(a->ct);
    free(a->cn);
    a->ct = NULL;
    a->nh = NULL;
    a->cn = NULL;
}

void km_assign(const km_assigner *a, const float *x, size_t stride, size_t n, uint32_t *assign,
               float *dist) {
    if (a->ct == NULL) {
        large_assign(a, x, stride, n, assign, dist);
        return;
    }
#if defined(__x86_64__)
    if (a->avx2) {
        small_assign_avx2(a->ct, a->nh, a->kpad, a->dim, x, stride, n, assign, dist);
        return;
    }
#endif
    small_assign_base(a->ct, a->nh, a->kpad, a->dim, x, stride, n, assign, dist);
}

size_t km_chunk(size_t dim, size_t k) {
    return dim <= KM_SMALL_DIM && k <= SMALL_MAX_K ? SMALL_CHUNK : large_block(dim);
}
