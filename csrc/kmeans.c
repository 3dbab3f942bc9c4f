/*
 * kmeans.c -- vdb_kmeans and vdb_kmeans_assign: k-means under squared L2 (the coarse quantizer
 * of IVF, the PQ codebooks) and nearest-centroid assignment.
 *
 * Plan. k-means++ chooses the first centroids from a sample of min(n, 4k + 1000) points
 * (selection sampling: in index order); then each Lloyd iteration assigns every point to its
 * nearest centroid (km_assign, kmeans_assign.c) on several threads, and recomputes the
 * centroids as the means of their points on the calling thread. A cluster left empty is
 * re-seeded with the point farthest from its centre in the largest cluster that has a point
 * away from its centre. The loop stops after `iters` iterations or when no point changes
 * cluster.
 *
 * Invariants:
 *  1. Determinism: the result is a pure function of (x, k, iters, seed, SIMD level). Random
 *     choices come from a splitmix64 stream keyed by the seed, consumed only on the calling
 *     thread. Threads only compute per-point values (a point's nearest centroid is the same
 *     whichever thread or block computes it) into per-point slots, and per-task counts
 *     summed in task order. Centroid sums are accumulated in double, point by point in index
 *     order, on one thread.
 *  2. For dim <= KM_SMALL_DIM every score and distance (also in k-means++) is computed
 *     without FMA in d order, so the result is also the same on every SIMD level; above, the
 *     float kernels of each level round differently, and results are deterministic per level.
 *  3. The assignment of a point, its distance and the tie rule (smaller index) are the same
 *     in vdb_kmeans_assign, in k-means iterations and in PQ encoding (all use km_assign).
 *  4. Memory: every buffer is allocated and freed within one call (the repair buffers on
 *     the first repair, freed with the others at the end of km_train).
 *  5. Outputs are written only on success, and a worker thread that cannot start is no
 *     error (km_parallel re-runs the idempotent tasks on the calling thread).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distance_int.h"
#include "kmeans_int.h"
#include "threads_int.h"
#include "vecdb.h"

#define WORK_PER_THREAD ((size_t)1 << 22) /* multiply-adds that justify one more thread */
#define KPP_SAMPLE_PER_K 4              /* k-means++ runs on min(n, 4 k + 1000) points */
#define KPP_SAMPLE_EXTRA 1000
#define KPP_CHUNK 1024                  /* k-means++ distance update: points per task */
#define KPP_WORK_PER_THREAD ((size_t)1 << 19) /* ... multiply-adds per thread and centre */

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }
static size_t ceil_div(size_t a, size_t b) { return a / b + (a % b != 0); }

/* ---- random numbers (splitmix64; state on the caller's stack) --------------------------- */

static uint64_t rng_next(uint64_t *s) {
    *s += 0x9E3779B97F4A7C15ull;
    uint64_t z = *s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

static size_t rng_below(uint64_t *s, size_t n) { return (size_t)(rng_next(s) % n); }

/* Threads worth starting for `work` multiply-adds when each should get at least `per`, at
 * most `threads`. */
static unsigned useful_threads(unsigned threads, size_t work, size_t per) {
    size_t useful = work / per;
    if (useful < 2) return 1;
    return useful < threads ? (unsigned)useful : threads;
}

static size_t sat_mul(size_t a, size_t b) {
    return a != 0 && b > SIZE_MAX / a ? SIZE_MAX : a * b;
}

/* ---- parallel assignment ------------------------------------------------------------------- */

typedef struct assign_job {
    const km_assigner *as;
    const float *x;
    size_t n, chunk;
    const uint32_t *prev; /* previous assignment, compared (nullable) */
    uint32_t *assign;     /* new assignment */
    float *dist;
    size_t *changed;      /* [task] points whose assignment changed (when prev is given) */
} assign_job;

/* Idempotent (km_parallel): reads x and prev, writes its own slots of assign, dist, changed. */
static void assign_task(void *arg, size_t t) {
    const assign_job *job = arg;
    size_t lo = t * job->chunk, cnt = min_sz(job->chunk, job->n - lo), changed = 0;
    float *dist = job->dist != NULL ? job->dist + lo : NULL;
    km_assign(job->as, job->x + lo * job->as->dim, job->as->dim, cnt, job->assign + lo, dist);
    if (job->prev == NULL) return;
    for (size_t i = lo; i < lo + cnt; i++) changed += job->assign[i] != job->prev[i];
    job->changed[t] = changed;
}

/* Assigns x[n][dim] to the centroids of `as` on up to `threads` threads. With prev (nullable),
 * *changed receives the number of points whose assignment differs from prev; changed_buf
 * then holds ceil(n / assign_chunk) counts. */
static void parallel_assign(const km_assigner *as, const float *x, size_t n, unsigned threads,
                            const uint32_t *prev, uint32_t *assign, float *dist,
                            size_t *changed_buf, size_t *changed) {
    assign_job job = {as, x, n, km_chunk(as->dim, as->k), prev, assign, dist, changed_buf};
    size_t n_tasks = ceil_div(n, job.chunk);
    unsigned t = useful_threads(threads, sat_mul(sat_mul(n, as->k), as->dim), WORK_PER_THREAD);
    km_parallel(t, n_tasks, assign_task, &job);
    if (prev == NULL) return;
    size_t total = 0;
    for (size_t i = 0; i < n_tasks; i++) total += changed_buf[i];
    *changed = total;
}

/* ---- k-means++ initialisation --------------------------------------------------------------- */

typedef struct kpp_job {
    const vdb_kernels *kern;
    const float *xs;     /* sample [s][dim] */
    size_t s, dim;
    const float *centre; /* the newest centre */
    float *d2;           /* [s] squared distance to the nearest centre so far */
} kpp_job;

static void kpp_task(void *arg, size_t t) {
    const kpp_job *job = arg;
    size_t lo = t * KPP_CHUNK, hi = min_sz(job->s, lo + KPP_CHUNK), dim = job->dim;
    if (dim <= KM_SMALL_DIM) {
        for (size_t i = lo; i < hi; i++) {
            float d = km_small_l2(job->xs + i * dim, job->centre, dim);
            if (d < job->d2[i]) job->d2[i] = d;
        }
        return;
    }
    float d[4];
    for (size_t i = lo; i < hi; i += 4) {
        size_t cnt = min_sz(4, hi - i);
        const float *r[4];
        for (size_t j = 0; j < 4; j++) r[j] = job->xs + (i + min_sz(j, cnt - 1)) * dim;
        job->kern->l2_1x4(job->centre, r, dim, d);
        for (size_t j = 0; j < cnt; j++)
            if (d[j] < job->d2[i + j]) job->d2[i + j] = d[j];
    }
}

/* k-means++ (D^2 sampling) on a sample of min(n, 4k + 1000) points chosen by selection
 * sampling (Knuth's algorithm S, so the sample is in index order), into cent[k][dim]. When
 * every sample point already coincides with a centre, the remaining centres are drawn
 * uniformly (duplicates, re-seeded later by the empty-cluster repair). */
static int kpp_init(const vdb_kernels *kern, const float *x, size_t n, size_t dim, size_t k,
                    uint64_t *rng, unsigned threads, float *cent) {
    size_t s = k <= (SIZE_MAX - KPP_SAMPLE_EXTRA) / KPP_SAMPLE_PER_K
                   ? KPP_SAMPLE_PER_K * k + KPP_SAMPLE_EXTRA : SIZE_MAX;
    s = min_sz(s, n);
    const float *xs = x;
    float *copy = NULL, *d2 = malloc(s * sizeof(float)); /* freed below */
    if (d2 == NULL) return VDB_ERR_NOMEM;
    if (s < n) {
        copy = malloc(s * dim * sizeof(float)); /* freed below */
        if (copy == NULL) {
            free(d2);
            return VDB_ERR_NOMEM;
        }
        for (size_t i = 0, taken = 0; taken < s; i++) {
            if ((double)(n - i) * rng_unit(rng) < (double)(s - taken)) {
                memcpy(copy + taken * dim, x + i * dim, dim * sizeof(float));
                taken++;
            }
        }
        xs = copy;
    }
    for (size_t i = 0; i < s; i++) d2[i] = INFINITY;
    memcpy(cent, xs + rng_below(rng, s) * dim, dim * sizeof(float));

    kpp_job job = {kern, xs, s, dim, NULL, d2};
    size_t n_tasks = ceil_div(s, KPP_CHUNK);
    /* threads are started once per centre: worth it for large samples only */
    unsigned t = useful_threads(threads, sat_mul(s, dim), KPP_WORK_PER_THREAD);
    for (size_t c = 1; c < k; c++) {
        job.centre = cent + (c - 1) * dim;
        km_parallel(t, n_tasks, kpp_task, &job); /* idempotent: a min per point */
        double total = 0.0;
        for (size_t i = 0; i < s; i++) total += d2[i];
        size_t pick = SIZE_MAX;
        if (total > 0.0 && isfinite(total)) {
            double r = rng_unit(rng) * total, cum = 0.0;
            for (size_t i = 0; i < s; i++) {
                if (d2[i] <= 0.0f) continue;
                pick = i;
                cum += d2[i];
                if (cum > r) break;
            }
        }
        if (pick == SIZE_MAX) pick = rng_below(rng, s);
        memcpy(cent + c * dim, xs + pick * dim, dim * sizeof(float));
    }
    free(copy);
    free(d2);
    return VDB_OK;
}

/* ---- centroid update and empty-cluster repair ---------------------------------------------- */

/* Scratch of the update step, allocated once per km_train (owned by it). */
typedef struct km_update {
    double *sums;  /* [k][dim] */
    size_t *count; /* [k] */
    size_t *start; /* [k + 1] bucket starts (repair only) */
    size_t *order; /* [n] points grouped by cluster, index order within one (repair only) */
    float *far_d;  /* [k] largest distance in a cluster (repair only) */
    size_t *far_i; /* [k] its point, the smaller on ties */
} km_update;

/* The point of cluster c (still in it) farthest from its centre, the smaller on ties; the
 * first one when no distance compares (NaN from non-finite input). */
static void find_farthest(const km_update *u, const uint32_t *assign, const float *dist,
                          size_t c) {
    u->far_d[c] = -1.0f;
    u->far_i[c] = SIZE_MAX;
    for (size_t j = u->start[c]; j < u->start[c + 1]; j++) {
        size_t p = u->order[j];
        if (assign[p] != c) continue; /* moved to an empty cluster */
        if (u->far_i[c] == SIZE_MAX || dist[p] > u->far_d[c]) {
            u->far_i[c] = p;
            if (dist[p] > u->far_d[c]) u->far_d[c] = dist[p];
        }
    }
}

/* Re-seeds every empty cluster e (in increasing e) with the farthest point of a donor: the
 * cluster of at least two points that has a point away from its centre, largest first, the
 * smaller index on ties (any cluster of two or more when none has such a point). The point
 * moves to e: sums and counts follow, its distance becomes 0. */
static int repair_empty(km_update *u, const float *x, size_t n, size_t dim, size_t k,
                        uint32_t *assign, float *dist) {
    if (u->order == NULL) { /* first repair of this run: allocate (freed by km_train) */
        u->start = malloc((k + 1) * sizeof(size_t));
        u->order = malloc(n * sizeof(size_t));
        u->far_d = malloc(k * sizeof(float));
        u->far_i = malloc(k * sizeof(size_t));
        if (u->start == NULL || u->order == NULL || u->far_d == NULL || u->far_i == NULL)
            return VDB_ERR_NOMEM;
    }
    memset(u->start, 0, (k + 1) * sizeof(size_t));
    for (size_t i = 0; i < n; i++) u->start[assign[i] + 1]++;
    for (size_t c = 0; c < k; c++) u->start[c + 1] += u->start[c];
    for (size_t i = 0; i < n; i++) u->order[u->start[assign[i]]++] = i; /* start -> ends */
    for (size_t c = k; c > 0; c--) u->start[c] = u->start[c - 1];
    u->start[0] = 0;
    for (size_t c = 0; c < k; c++) find_farthest(u, assign, dist, c);

    for (size_t e = 0; e < k; e++) {
        if (u->count[e] != 0) continue;
        size_t donor = SIZE_MAX;
        for (size_t c = 0; c < k; c++) {
            if (u->count[c] < 2) continue;
            if (donor == SIZE_MAX) {
                donor = c;
                continue;
            }
            int away = u->far_d[c] > 0.0f, donor_away = u->far_d[donor] > 0.0f;
            if (away > donor_away || (away == donor_away && u->count[c] > u->count[donor]))
                donor = c;
        }
        size_t p = u->far_i[donor]; /* a donor has >= 2 points, so p exists */
        const float *row = x + p * dim;
        double *ds = u->sums + donor * dim, *es = u->sums + e * dim;
        for (size_t d = 0; d < dim; d++) ds[d] -= row[d], es[d] = row[d];
        u->count[donor]--;
        u->count[e] = 1;
        assign[p] = (uint32_t)e;
        dist[p] = 0.0f;
        find_farthest(u, assign, dist, donor);
    }
    return VDB_OK;
}

/* Means of the clusters of `assign` into cent, with empty clusters repaired. */
static int update_centroids(km_update *u, const float *x, size_t n, size_t dim, size_t k,
                            uint32_t *assign, float *dist, float *cent) {
    memset(u->sums, 0, k * dim * sizeof(double));
    memset(u->count, 0, k * sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        size_t c = assign[i];
        double *s = u->sums + c * dim;
        const float *row = x + i * dim;
        for (size_t d = 0; d < dim; d++) s[d] += row[d];
        u->count[c]++;
    }
    size_t empty = 0;
    for (size_t c = 0; c < k; c++) empty += u->count[c] == 0;
    if (empty > 0) {
        int rc = repair_empty(u, x, n, dim, k, assign, dist);
        if (rc != VDB_OK) return rc;
    }
    for (size_t c = 0; c < k; c++)
        for (size_t d = 0; d < dim; d++)
            cent[c * dim + d] = (float)(u->sums[c * dim + d] / (double)u->count[c]);
    return VDB_OK;
}

/* ---- the driver ----------------------------------------------------------------------------- */

int km_train(const vdb_kernels *kern, const float *x, size_t n, size_t dim, size_t k,
             unsigned iters, uint64_t seed, unsigned threads, float *centroids,
             float *inertia) {
    uint64_t rng = km_mix(seed, 0);
    km_update u = {0};
    km_assigner as;
    size_t chunk = km_chunk(dim, k);
    /* all freed at `done` */
    float *cent = malloc(k * dim * sizeof(float)); /* copied to centroids on success */
    uint32_t *assign = malloc(n * sizeof(uint32_t)), *prev = malloc(n * sizeof(uint32_t));
    float *dist = malloc(n * sizeof(float));
    size_t *changed_buf = malloc(ceil_div(n, chunk) * sizeof(size_t));
    u.sums = malloc(k * dim * sizeof(double));
    u.count = malloc(k * sizeof(size_t));
    int rc = VDB_ERR_NOMEM, converged = 0;
    float mean = 0.0f;
    if (cent == NULL || assign == NULL || prev == NULL || dist == NULL || changed_buf == NULL ||
        u.sums == NULL || u.count == NULL)
        goto done;
    rc = kpp_init(kern, x, n, dim, k, &rng, threads, cent);
    if (rc != VDB_OK) goto done;
    for (size_t i = 0; i < n; i++) assign[i] = UINT32_MAX;

    for (unsigned it = 0; it < iters; it++) {
        size_t changed = 0;
        uint32_t *swap = prev;
        prev = assign, assign = swap;
        rc = km_assigner_init(&as, kern, cent, k, dim);
        if (rc != VDB_OK) goto done;
        parallel_assign(&as, x, n, threads, prev, assign, dist, changed_buf, &changed);
        km_assigner_free(&as);
        if (changed == 0) { /* the centroids are already the means of this assignment */
            converged = 1;
            break;
        }
        rc = update_centroids(&u, x, n, dim, k, assign, dist, cent);
        if (rc != VDB_OK) goto done;
    }
    if (inertia != NULL) {
        if (!converged) {
            rc = km_assigner_init(&as, kern, cent, k, dim);
            if (rc != VDB_OK) goto done;
            parallel_assign(&as, x, n, threads, NULL, assign, dist, NULL, NULL);
            km_assigner_free(&as);
        }
        double total = 0.0;
        for (size_t i = 0; i < n; i++) total += dist[i];
        mean = (float)(total / (double)n);
    }
    memcpy(centroids, cent, k * dim * sizeof(float));
    if (inertia != NULL) *inertia = mean;
    rc = VDB_OK;
done:
    free(cent);
    free(assign);
    free(prev);
    free(dist);
    free(changed_buf);
    free(u.sums);
    free(u.count);
    free(u.start);
    free(u.order);
    free(u.far_d);
    free(u.far_i);
    return rc;
}

/* ---- public functions ----------------------------------------------------------------------- */

/* Common checks: sizes whose float arrays fit in memory, and a runnable SIMD level. */
static int check_common(int simd, size_t n, size_t dim, size_t k, int n_threads,
                        const vdb_kernels **kern) {
    if (dim == 0 || k == 0 || k > UINT32_MAX || n_threads < 0) return VDB_ERR_INVALID;
    if (n > SIZE_MAX / sizeof(double) / dim || k > SIZE_MAX / sizeof(double) / dim)
        return VDB_ERR_INVALID;
    if (simd < VDB_SIMD_SCALAR || simd > VDB_SIMD_AVX512) return VDB_ERR_INVALID;
    *kern = vdb_kernels_for(simd);
    return *kern == NULL ? VDB_ERR_UNSUPPORTED : VDB_OK;
}

int vdb_kmeans(int simd, const float *x, size_t n, size_t dim, size_t k, unsigned iters,
               uint64_t seed, int n_threads, float *centroids, float *inertia) {
    const vdb_kernels *kern;
    if (x == NULL || centroids == NULL || k > n) return VDB_ERR_INVALID;
    int rc = check_common(simd, n, dim, k, n_threads, &kern);
    if (rc != VDB_OK) return rc;
    return km_train(kern, x, n, dim, k, iters, seed, vdb_threads_resolve(n_threads), centroids,
                    inertia);
}

int vdb_kmeans_assign(int simd, const float *centroids, size_t k, size_t dim, const float *x,
                      size_t n, int n_threads, uint32_t *assign, float *dist) {
    const vdb_kernels *kern;
    if (centroids == NULL || (n > 0 && (x == NULL || assign == NULL))) return VDB_ERR_INVALID;
    int rc = check_common(simd, n, dim, k, n_threads, &kern);
    if (rc != VDB_OK || n == 0) return rc;
    km_assigner as;
    rc = km_assigner_init(&as, kern, centroids, k, dim);
    if (rc != VDB_OK) return rc; /* nothing written yet; below, nothing can fail */
    parallel_assign(&as, x, n, vdb_threads_resolve(n_threads), NULL, assign, dist, NULL, NULL);
    km_assigner_free(&as);
    return VDB_OK;
}
