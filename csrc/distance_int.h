/*
 * distance_int.h -- private interface to the float32 distance kernels (not part of vecdb.h).
 *
 * Each SIMD level provides one vdb_kernels table of plain function pointers; callers fetch the
 * table once per call with vdb_kernels_for(level) and keep it on the stack, so no global
 * mutable state is involved (the tables themselves are static const).
 *
 * Invariants:
 *  1. Every kernel accepts any dim >= 1 (vector bodies plus a scalar tail) and any alignment.
 *  2. Kernels only read their inputs; they are pure functions of them.
 *  3. Kernels return raw sums: l2* give sum (a_i - b_i)^2, dot* give sum a_i b_i. Turning a dot
 *     into an IP or cosine distance is done by vdb_ip_from_dot / vdb_cosine_from_dot below,
 *     so every code path finishes a distance the same way.
 *  4. vdb_kernels_for never returns a table the running CPU cannot execute.
 *  5. Within one table, the 1x4 and 4x3 kernels give bit-identical results for the same
 *     (query, row) pair (same accumulator layout, reduction and tail), so search results do
 *     not depend on how queries were grouped. The pairwise l2/dot kernels use more
 *     accumulators and may differ in the last bits; they serve norms and single pairs only.
 *     The build compiles with -ffp-contract=off so the compiler cannot fuse differently in
 *     different kernels.
 */
#ifndef VECDB_DISTANCE_INT_H
#define VECDB_DISTANCE_INT_H

#include <math.h>
#include <stddef.h>

typedef struct vdb_kernels {
    int level; /* the VDB_SIMD_* level of this table */
    float (*l2)(const float *a, const float *b, size_t dim);
    float (*dot)(const float *a, const float *b, size_t dim);
    /* one query q against four rows x[0..3]: out[j] = f(q, x[j]) */
    void (*l2_1x4)(const float *q, const float *const *x, size_t dim, float *out);
    void (*dot_1x4)(const float *q, const float *const *x, size_t dim, float *out);
    /* four queries q[0..3] against three rows x[0..2]: out[3*i + j] = f(q[i], x[j]) */
    void (*l2_4x3)(const float *const *q, const float *const *x, size_t dim, float *out);
    void (*dot_4x3)(const float *const *q, const float *const *x, size_t dim, float *out);
} vdb_kernels;

/* The table for level simd, or NULL if simd is out of range or not runnable here. */
const vdb_kernels *vdb_kernels_for(int simd);

/* Per-level tables, defined in distance_scalar.c, distance_avx2.c, distance_avx512.c.
 * The SIMD ones exist only on x86-64 builds. */
extern const vdb_kernels vdb_kernels_scalar;
#if defined(__x86_64__)
extern const vdb_kernels vdb_kernels_avx2;
extern const vdb_kernels vdb_kernels_avx512;
#endif

static inline float vdb_ip_from_dot(float dot) { return -dot; }

/* 1 / |a| from the squared norm, in double; 0 stands for "zero norm" (or an infinite one). */
static inline double vdb_inv_norm(float norm2) {
    return norm2 > 0.0f ? 1.0 / sqrt((double)norm2) : 0.0;
}

/* 1 - dot / (|a| |b|) from dot and vdb_inv_norm of both; 1.0 if either norm is zero. */
static inline float vdb_cosine_from_dot(float dot, double inv_norm_a, double inv_norm_b) {
    if (inv_norm_a == 0.0 || inv_norm_b == 0.0) return 1.0f;
    return (float)(1.0 - (double)dot * inv_norm_a * inv_norm_b);
}

#endif /* VECDB_DISTANCE_INT_H */
