/*
 * sq_avx512.c -- the SQ8 integer dot kernel for VDB_SIMD_AVX512: sum qi[d] * code[d] exactly.
 *
 * Needs AVX512BW (madd_epi16 and the byte/word conversions on zmm), not only the AVX-512F of
 * VDB_SIMD_AVX512: sq8_dot_for (sq.c) selects it only when __builtin_cpu_supports reports
 * avx512bw, and keeps the AVX2 kernel otherwise. Compiled on x86-64 only with a per-function
 * target attribute (as distance_avx512.c). The development machine has no AVX-512, so this
 * kernel is compiled there but only exercised on AVX-512 machines (tests compare every level
 * the CPU supports with the scalar kernel).
 *
 * Invariants (codec_int.h, sq.c invariant 2): the result equals sq8_dot_scalar's exactly.
 * Pairs of products are int32 (< 2^23); each int32 lane accumulates at most SQ8_BLOCK / 32
 * pairs across the two accumulators (< 2^29), then widens to int64.
 */
#include "codec_int.h"
#include "vecdb.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define VDB_AVX512BW __attribute__((target("avx512f,avx512bw")))

VDB_AVX512BW static inline int64_t hsum_epi32_wide(__m512i v) {
    __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v));
    __m512i hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1));
    return _mm512_reduce_add_epi64(_mm512_add_epi64(lo, hi));
}

VDB_AVX512BW int64_t sq8_dot_avx512(const int16_t *qi, const uint8_t *code, size_t dim) {
    int64_t total = 0;
    size_t d = 0;
    while (dim - d >= 32) {
        size_t end = d + ((dim - d < SQ8_BLOCK ? dim - d : SQ8_BLOCK) & ~(size_t)31);
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        for (; d + 64 <= end; d += 64) {
            __m512i c0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(code + d)));
            __m512i c1 =
                _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(code + d + 32)));
            __m512i q0 = _mm512_loadu_si512((const void *)(qi + d));
            __m512i q1 = _mm512_loadu_si512((const void *)(qi + d + 32));
            a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(c0, q0));
            a1 = _mm512_add_epi32(a1, _mm512_madd_epi16(c1, q1));
        }
        if (d < end) { /* 32 more */
            __m512i c0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(code + d)));
            __m512i q0 = _mm512_loadu_si512((const void *)(qi + d));
            a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(c0, q0));
            d += 32;
        }
        total += hsum_epi32_wide(_mm512_add_epi32(a0, a1));
    }
    for (; d < dim; d++) total += (int32_t)qi[d] * code[d];
    return total;
}

#endif /* __x86_64__ */
