/*
 * distance.c -- picks a kernel table for a SIMD level (vdb_kernels_for, vdb_simd_best) and
 * implements vdb_distances, one query against a contiguous block of rows.
 *
 * Invariants:
 *  1. The level is always the caller's choice; nothing here caches it. CPU features are read
 *     with __builtin_cpu_supports (x86-64 only), which libgcc fills in at load time and which
 *     reports avx2/avx512f only when the OS saves the matching register state.
 *  2. vdb_kernels_for(l) returns NULL for any l above vdb_simd_best, so a SIMD table the CPU
 *     cannot run is never handed out.
 */
#include <stddef.h>

#include "distance_int.h"
#include "vecdb.h"

static int cpu_best_level(void) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        if (__builtin_cpu_supports("avx512f")) return VDB_SIMD_AVX512;
        return VDB_SIMD_AVX2;
    }
#endif
    return VDB_SIMD_SCALAR;
}

int vdb_simd_best(int *level) {
    if (level == NULL) return VDB_ERR_INVALID;
    *level = cpu_best_level();
    return VDB_OK;
}

const vdb_kernels *vdb_kernels_for(int simd) {
    if (simd < VDB_SIMD_SCALAR || simd > cpu_best_level()) return NULL;
    switch (simd) {
#if defined(__x86_64__)
    case VDB_SIMD_AVX512:
        return &vdb_kernels_avx512;
    case VDB_SIMD_AVX2:
        return &vdb_kernels_avx2;
#endif
    case VDB_SIMD_SCALAR:
        return &vdb_kernels_scalar;
    default:
        return NULL;
    }
}

int vdb_distances(int simd, int metric, const float *q, const float *x, size_t n, size_t dim,
                  float *out) {
    if (metric != VDB_METRIC_L2 && metric != VDB_METRIC_IP && metric != VDB_METRIC_COSINE)
        return VDB_ERR_INVALID;
    if (dim == 0 || q == NULL || (n > 0 && (x == NULL || out == NULL))) return VDB_ERR_INVALID;
    if (simd < VDB_SIMD_SCALAR || simd > VDB_SIMD_AVX512) return VDB_ERR_INVALID;
    const vdb_kernels *kern = vdb_kernels_for(simd);
    if (kern == NULL) return VDB_ERR_UNSUPPORTED;

    /* every (q, row) pair goes through the 1x4 kernel (the last call repeats its last row), so
     * results equal vdb_flat_search's bit for bit (distance_int.h, invariant 5) */
    double qinv = metric == VDB_METRIC_COSINE ? vdb_inv_norm(kern->dot(q, q, dim)) : 0.0;
    for (size_t i = 0; i < n; i += 4) {
        size_t cnt = n - i < 4 ? n - i : 4;
        const float *rows[4];
        float d[4];
        for (size_t j = 0; j < 4; j++) rows[j] = x + (i + (j < cnt ? j : cnt - 1)) * dim;
        if (metric == VDB_METRIC_L2)
            kern->l2_1x4(q, rows, dim, d);
        else
            kern->dot_1x4(q, rows, dim, d);
        for (size_t j = 0; j < cnt; j++) {
            if (metric == VDB_METRIC_L2)
                out[i + j] = d[j];
            else if (metric == VDB_METRIC_IP)
                out[i + j] = vdb_ip_from_dot(d[j]);
            else
                out[i + j] = vdb_cosine_from_dot(d[j], qinv,
                                                 vdb_inv_norm(kern->dot(rows[j], rows[j], dim)));
        }
    }
    return VDB_OK;
}
