"""cffi build script: compiles csrc/*.c into the extension module ``vecdb._core``.

Run by setuptools through ``cffi_modules=["vecdb/_ffi_build.py:ffibuilder"]`` in setup.py (the
working directory is then the project root), or directly: ``python vecdb/_ffi_build.py``
(runs ``python setup.py build_ext --inplace``).

``CDEF`` is written by hand (the pynacl way) and must declare exactly what ``csrc/vecdb.h``
declares; tests/test_native.py compares the two. cffi also checks every ``#define`` value
against the header when it compiles the module.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cffi

CDEF = """
#define VDB_OK 0
#define VDB_ERR_INVALID -1
#define VDB_ERR_NOMEM -2
#define VDB_ERR_THREAD -3
#define VDB_ERR_UNSUPPORTED -4
#define VDB_ERR_CORRUPT -5
#define VDB_ERR_VERSION -6

#define VDB_METRIC_L2 0
#define VDB_METRIC_IP 1
#define VDB_METRIC_COSINE 2

#define VDB_SIMD_SCALAR 0
#define VDB_SIMD_AVX2 1
#define VDB_SIMD_AVX512 2

typedef struct vdb_rows {
    const float *const *segments;
    size_t n_segments;
    unsigned segment_shift;
    size_t n_rows;
    size_t dim;
} vdb_rows;

const char *vdb_strerror(int rc);

int vdb_simd_best(int *level);

int vdb_distances(int simd, int metric, const float *q, const float *x, size_t n, size_t dim,
                  float *out);

typedef struct vdb_search_stats {
    uint64_t visited;
    uint64_t distances;
} vdb_search_stats;

int vdb_flat_search(int simd, int metric, const vdb_rows *rows, const float *queries, size_t nq,
                    size_t k, const uint64_t *allow, const uint64_t *deny, int n_threads,
                    int64_t *out_rows, float *out_dist, vdb_search_stats *stats);

int vdb_bitset_count(const uint64_t *bits, size_t n_bits, size_t *count);

typedef struct vdb_hnsw vdb_hnsw;

typedef struct vdb_hnsw_params {
    uint32_t m;
    uint32_t ef_construction;
    uint64_t seed;
} vdb_hnsw_params;

int vdb_hnsw_new(const vdb_hnsw_params *params, size_t dim, int metric, int simd,
                 vdb_hnsw **out);

int vdb_hnsw_free(vdb_hnsw *graph);

int vdb_hnsw_add(vdb_hnsw *graph, const vdb_rows *rows, int n_threads);

int vdb_hnsw_search(const vdb_hnsw *graph, const vdb_rows *rows, const float *queries,
                    size_t nq, size_t k, size_t ef, const uint64_t *allow,
                    const uint64_t *deny, int n_threads, int64_t *out_rows, float *out_dist,
                    vdb_search_stats *stats);

int vdb_hnsw_info(const vdb_hnsw *graph, size_t *n_nodes, size_t *memory_bytes);

int vdb_hnsw_serialized_size(const vdb_hnsw *graph, size_t *size);
int vdb_hnsw_serialize(const vdb_hnsw *graph, void *buf, size_t size);

int vdb_hnsw_load(void *buf, size_t size, int simd, vdb_hnsw **out);

int vdb_hnsw_verify(const void *buf, size_t size);

int vdb_hnsw_image_info(const void *buf, size_t size, size_t *dim, int *metric,
                        vdb_hnsw_params *params, size_t *n_nodes);
int vdb_kmeans(int simd, const float *x, size_t n, size_t dim, size_t k, unsigned iters,
               uint64_t seed, int n_threads, float *centroids, float *inertia);

int vdb_kmeans_assign(int simd, const float *centroids, size_t k, size_t dim, const float *x,
                      size_t n, int n_threads, uint32_t *assign, float *dist);

#define VDB_QUANT_SQ8 1
#define VDB_QUANT_PQ 2

typedef struct vdb_quantizer {
    int kind;
    int metric;
    size_t dim;
    size_t m;
    const float *params;
} vdb_quantizer;

int vdb_quantizer_code_size(const vdb_quantizer *q, size_t *size);

int vdb_sq8_train(const float *x, size_t n, size_t dim, float *params);

int vdb_pq_train(int simd, const float *x, size_t n, size_t dim, size_t m, unsigned iters,
                 uint64_t seed, int n_threads, float *params);

int vdb_quantizer_encode(int simd, const vdb_quantizer *q, const float *x, size_t n,
                         int n_threads, uint8_t *codes, float *errors);

int vdb_quantizer_decode(const vdb_quantizer *q, const uint8_t *codes, size_t n, float *out);

int vdb_quantizer_distances(int simd, const vdb_quantizer *q, const float *query,
                            const uint8_t *codes, size_t n, float *out);

typedef struct vdb_code_rows {
    const uint8_t *const *segments;
    size_t n_segments;
    unsigned segment_shift;
    size_t n_rows;
    size_t code_size;
} vdb_code_rows;

int vdb_hnsw_search_codes(const vdb_hnsw *graph, int simd, const vdb_quantizer *q,
                          const vdb_code_rows *codes, const float *queries, size_t nq,
                          size_t k, size_t ef, const uint64_t *allow, const uint64_t *deny,
                          int n_threads, int64_t *out_rows, float *out_dist,
                          vdb_search_stats *stats);

int vdb_rescore(int simd, int metric, const vdb_rows *rows, const float *queries, size_t nq,
                const int64_t *cand, size_t n_cand, size_t k, int n_threads,
                int64_t *out_rows, float *out_dist);

typedef struct vdb_ivf_lists {
    size_t nlist;
    const float *centroids;
    const size_t *sizes;
    const uint32_t *const *rows;
    const uint8_t *const *codes;
    const float *const *norms;
} vdb_ivf_lists;

int vdb_ivfpq_search(int simd, const vdb_quantizer *q, const vdb_ivf_lists *lists,
                     size_t n_rows, const float *queries, size_t nq, size_t k, size_t nprobe,
                     const uint64_t *allow, const uint64_t *deny, int n_threads,
                     int64_t *out_rows, float *out_dist, vdb_search_stats *stats);
"""

_ROOT = Path(__file__).resolve().parent.parent
_CSRC = _ROOT / "csrc"


def _rel(path: Path) -> str:
    """A path relative to the working directory when possible (setuptools prefers those)."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)


SOURCES = sorted(_rel(p) for p in _CSRC.glob("*.c"))
HEADERS = sorted(_rel(p) for p in _CSRC.glob("*.h"))

EXTRA_COMPILE_ARGS = [
    "-O3",
    "-std=c11",
    "-pthread",
    "-fno-strict-aliasing",
    "-ffp-contract=off",  # no silent FMA fusion: kernels must round identically (distance_int.h)
    "-fvisibility=hidden",
    "-Wall",
    "-Wextra",
]
EXTRA_LINK_ARGS = ["-pthread"]

ffibuilder = cffi.FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "vecdb._core",
    '#include "vecdb.h"',
    sources=SOURCES,
    depends=HEADERS,
    include_dirs=[_rel(_CSRC)],
    extra_compile_args=EXTRA_COMPILE_ARGS,
    extra_link_args=EXTRA_LINK_ARGS,
    libraries=["m"] if sys.platform != "win32" else [],
)

if __name__ == "__main__":  # the in-place build of a checkout (cffi compiles from build/,
    # where this module's relative source paths do not resolve: let setuptools drive it)
    import subprocess

    sys.exit(subprocess.call([sys.executable, "setup.py", "build_ext", "--inplace"],
                             cwd=_ROOT))
