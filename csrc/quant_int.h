/*
 * quant_int.h -- private interface of the quantizers (quant.c, sq.c, pq.c) to the searches
 * that read codes (hnsw_search.c on codes, ivf.c). Not part of vecdb.h.
 *
 * A search prepares each query once (quant_prepare: SQ8 scales and rounds the query to
 * int16, PQ fills its ADC tables), then scores code rows through quant_dists. Preparation
 * writes into caller-owned scratch of quant_scratch_bytes(q) bytes (16-byte aligned), so a
 * search keeps one scratch buffer per thread and allocates nothing per query.
 *
 * Invariants:
 *  1. quant_dists gives exactly what vdb_quantizer_distances gives for the same query and
 *     code row (the public function is built on these two), on every SIMD level.
 *  2. A prepared query only points into its scratch and the quantizer's params: it stays
 *     valid while both do, and is read-only during quant_dists (threads share nothing).
 *  3. quant_check validates a vdb_quantizer once per public call; the functions below
 *     assume a checked quantizer and never fail.
 */
#ifndef VECDB_QUANT_INT_H
#define VECDB_QUANT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "vecdb.h"

/* A query prepared for ADC against one quantizer. */
typedef struct quant_query {
    const vdb_quantizer *q;
    size_t code_size;
    /* SQ8 */
    const int16_t *qi;      /* [dim] rounded, scaled query (in scratch) */
    double dot_scale;       /* max|w| / 16383: integer dot -> float dot */
    double dot_base;        /* q . vmin */
    double q_norm2;         /* |q|^2 */
    int64_t (*sq8_dot)(const int16_t *qi, const uint8_t *code, size_t dim); /* exact */
    /* PQ */
    const float *tables;    /* [m][256] (in scratch) */
    float pq_base;          /* added to the table sum (IVF under IP: -q.centroid) */
} quant_query;

/* VDB_OK if q is a usable quantizer under simd (kind, metric, dim, m, params), with its
 * code size in *code_size (nullable); VDB_ERR_INVALID or VDB_ERR_UNSUPPORTED otherwise. */
int quant_check(int simd, const vdb_quantizer *q, size_t *code_size);

/* Bytes of scratch quant_prepare needs for q. */
size_t quant_scratch_bytes(const vdb_quantizer *q);

/* Prepares query[dim] for ADC under the checked quantizer q, at SIMD level simd, into
 * scratch (quant_scratch_bytes(q) bytes, 16-byte aligned) and *out. */
void quant_prepare(int simd, const vdb_quantizer *q, const float *query, void *scratch,
                   quant_query *out);

/* PQ only: fills the ADC tables [m][256] of sub-vectors of v[dim] under metric (L2:
 * |v_j - c|^2; IP: -v_j . c) from q's codebooks. ivf.c uses it for the per-list tables of
 * (query - centroid) under L2. */
void quant_pq_tables(int simd, const vdb_quantizer *q, int metric, const float *v,
                     float *tables);

/* ADC distances of the prepared query to n code rows codes[i] (each code_size bytes), into
 * out[n]. */
void quant_dists(const quant_query *qq, const uint8_t *const *codes, size_t n, float *out);

/* The same for n code rows stored contiguously at codes (row i at codes + i * code_size). */
void quant_dists_contiguous(const quant_query *qq, const uint8_t *codes, size_t n, float *out);

#endif /* VECDB_QUANT_INT_H */
