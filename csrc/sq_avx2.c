/*
 * sq_avx2.c -- the SQ8 integer dot kernel for VDB_SIMD_AVX2: sum qi[d] * code[d] exactly.
 *
 * Compiled on x86-64 only, with a per-function target attribute (as distance_avx2.c: no
 * -march flag, the rest of the build stays baseline x86-64); sq8_dot_for (sq.c) hands it
 * out only for a level the caller asked for, which vdb_kernels_for has checked is runnable.
 *
 * Invariants (codec_int.h, sq.c invariant 2): the result equals sq8_dot_scalar's exactly.
 * Codes widen to int16 (cvtepu8_epi16, 0..255), madd_epi16 forms pairs of products in int32
 * (|pair| <= 2 * 16383 * 255 < 2^23); each int32 lane accumulates at most SQ8_BLOCK / 16
 * pairs (< 2^30 in all) across the two accumulators, then widens to int64.
 */
#include "codec_int.h"
#include "vecdb.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define VDB_AVX2 __attribute__((target("avx2")))

/* The eight int32 lanes of v summed as int64. */
VDB_AVX2 static inline int64_t hsum_epi32_wide(__m256i v) {
    __m256i lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v));
    __m256i hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1));
    __m256i s = _mm256_add_epi64(lo, hi);
    __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    return _mm_cvtsi128_si64(t) + _mm_extract_epi64(t, 1);
}

VDB_AVX2 int64_t sq8_dot_avx2(const int16_t *qi, const uint8_t *code, size_t dim) {
    int64_t total = 0;
    size_t d = 0;
    while (dim - d >= 16) {
        size_t end = d + ((dim - d < SQ8_BLOCK ? dim - d : SQ8_BLOCK) & ~(size_t)15);
        __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
        for (; d + 32 <= end; d += 32) {
            __m256i c0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(code + d)));
            __m256i c1 =
                _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(code + d + 16)));
            __m256i q0 = _mm256_loadu_si256((const __m256i *)(qi + d));
            __m256i q1 = _mm256_loadu_si256((const __m256i *)(qi + d + 16));
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(c0, q0));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(c1, q1));
        }
        if (d < end) { /* 16 more */
            __m256i c0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(code + d)));
            __m256i q0 = _mm256_loadu_si256((const __m256i *)(qi + d));
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(c0, q0));
            d += 16;
        }
        total += hsum_epi32_wide(_mm256_add_epi32(a0, a1));
    }
    for (; d < dim; d++) total += (int32_t)qi[d] * code[d];
    return total;
}

#endif /* __x86_64__ */
