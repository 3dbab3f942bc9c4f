/*
 * codec_int.h -- private interface between the quantizer files: sq.c / sq_avx2.c /
 * sq_avx512.c (SQ8) and pq.c (PQ) provide per-row coding and ADC scoring, quant.c dispatches
 * on the quantizer kind and runs the public vdb_quantizer_* and quant_int.h functions.
 * Everything here takes a quantizer already checked by quant_check and never fails, except
 * pq_encoder_init (allocation).
 */
#ifndef VECDB_CODEC_INT_H
#define VECDB_CODEC_INT_H

#include <stddef.h>
#include <stdint.h>

#include "distance_int.h"
#include "kmeans_int.h"
#include "quant_int.h"
#include "vecdb.h"

/* ---- SQ8 (sq.c) ---- */

#define SQ8_QMAX 16383 /* |qi_d| <= SQ8_QMAX */
#define SQ8_BLOCK 2048 /* dims summed in int32 before widening (no overflow below 4096) */

/* Exact sum qi[d] * code[d] over d < dim, one per ISA. The AVX-512 one needs AVX512BW. */
typedef int64_t (*sq8_dot_fn)(const int16_t *qi, const uint8_t *code, size_t dim);
int64_t sq8_dot_scalar(const int16_t *qi, const uint8_t *code, size_t dim);
#if defined(__x86_64__)
int64_t sq8_dot_avx2(const int16_t *qi, const uint8_t *code, size_t dim);   /* sq_avx2.c */
int64_t sq8_dot_avx512(const int16_t *qi, const uint8_t *code, size_t dim); /* sq_avx512.c */
#endif

/* The dot kernel for SIMD level simd (a runnable level). */
sq8_dot_fn sq8_dot_for(int simd);

/* Checks params: every vmin finite, every step finite and >= 0. */
int sq8_params_ok(const vdb_quantizer *q);

/* One row x[dim] -> code (code size bytes); *err (nullable) = |x - decoded|^2. */
void sq8_encode_row(const vdb_quantizer *q, const float *x, uint8_t *code, float *err);
void sq8_decode_row(const vdb_quantizer *q, const uint8_t *code, float *out);
void sq8_prepare(int simd, const vdb_quantizer *q, const float *query, void *scratch,
                 quant_query *out);
/* ADC of n rows: row i at rows[i] when rows != NULL, else at base + i * code_size. */
void sq8_dists(const quant_query *qq, const uint8_t *const *rows, const uint8_t *base,
               size_t n, float *out);

/* ---- PQ (pq.c) ---- */

#define PQ_K 256 /* centroids per sub-quantizer (8-bit codes) */

/* The m codebooks prepared for nearest-centroid search (owns its assigners). */
typedef struct pq_encoder {
    const vdb_quantizer *q;
    size_t dsub;
    km_assigner *as; /* [m] */
} pq_encoder;

int pq_encoder_init(pq_encoder *e, const vdb_kernels *kern, const vdb_quantizer *q);
void pq_encoder_free(pq_encoder *e);

/* n rows x[n][dim] (<= PQ_ENCODE_BLOCK) -> codes[n][m]; err (nullable) per row. */
#define PQ_ENCODE_BLOCK 256
void pq_encode_rows(const pq_encoder *e, const float *x, size_t n, uint8_t *codes,
                    float *err);
void pq_decode_row(const vdb_quantizer *q, const uint8_t *code, float *out);
void pq_prepare(int simd, const vdb_quantizer *q, const float *query, void *scratch,
                quant_query *out);
/* Table scan of n rows, addressed as in sq8_dists. */
void pq_dists(const quant_query *qq, const uint8_t *const *rows, const uint8_t *base, size_t n,
              float *out);

#endif /* VECDB_CODEC_INT_H */
