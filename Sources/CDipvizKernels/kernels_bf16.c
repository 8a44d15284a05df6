// bfloat16 products with single-precision sums (AVX-512 BF16, VDPBF16PS: Cooper Lake, Sapphire
// Rapids, Zen 4 and later) for the Winograd GEMMs of constant weights. Each instruction adds the
// products of a pair of bf16 values into one float lane, so both operands come as pairs along
// the inner dimension: a 32-bit word holds elements 2q (low half) and 2q + 1 (high half).
#include "dipviz_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define BF16_TARGET __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl,avx512dq")))
enum { P = DIPVIZ_PACKED_ROWS };

// 16 floats of `lo` and of `hi` rounded to bf16 (nearest even) and interleaved into 16 words
// (lo[i] in the low half of word i, hi[i] in the high half).
BF16_TARGET static inline __m512i pairs(__m512 lo, __m512 hi) {
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                                23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    // cvtne2ps: the second operand's 16 values in elements 0..15, the first's in 16..31.
    const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
    return _mm512_permutexvar_epi16(interleave, both);
}

BF16_TARGET static void pack_weights(const float *a, long m, long k, uint32_t *out) {
    const long blocks = (m + P - 1) / P, kp = (k + 1) / 2;
    const __mmask16 rows = (1u << P) - 1;
    for (long blk = 0; blk < blocks; blk++) {
        const float *ab = a + blk * k * P;
        uint32_t *ob = out + blk * kp * P;
        for (long q = 0; q < kp; q++) {
            const __m512 lo = _mm512_maskz_loadu_ps(rows, ab + 2 * q * P);
            const __m512 hi = 2 * q + 1 < k ? _mm512_maskz_loadu_ps(rows, ab + (2 * q + 1) * P) : _mm512_setzero_ps();
            _mm512_mask_storeu_epi32(ob + q * P, rows, pairs(lo, hi));
        }
    }
}

BF16_TARGET static void pack_columns(const float *b, long k, long n, long ldb, uint32_t *out, long ldo) {
    const long kp = (k + 1) / 2;
    for (long q = 0; q < kp; q++) {
        const float *r0 = b + 2 * q * ldb, *r1 = r0 + ldb;
        const int odd = 2 * q + 1 >= k;
        for (long j = 0; j < n; j += 16) {
            const __m512 hi = odd ? _mm512_setzero_ps() : _mm512_loadu_ps(r1 + j);
            _mm512_storeu_si512(out + q * ldo + j, pairs(_mm512_loadu_ps(r0 + j), hi));
        }
    }
}

// One full block of P rows times NV x 16 columns: P x NV accumulators (24 of 32 registers with
// NV = 2), a broadcast pair of A and NV pairs-vectors of B per step of two inner elements.
#define DIPVIZ_BF16_TILE(NV)                                                                      \
    BF16_TARGET static inline __attribute__((always_inline)) void tile##NV(                       \
        long kp, const uint32_t *ab, const uint32_t *b, long ldb, float *c, long ldc) {          \
        __m512 acc[P][NV];                                                                        \
        for (int r = 0; r < P; r++)                                                               \
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();                         \
        for (long q = 0; q < kp; q++) {                                                           \
            __m512bh bv[NV];                                                                      \
            for (int v = 0; v < NV; v++) bv[v] = (__m512bh)_mm512_loadu_si512(b + q * ldb + 16 * v); \
            const uint32_t *aq = ab + q * P;                                                      \
            for (int r = 0; r < P; r++) {                                                         \
                const __m512bh s = (__m512bh)_mm512_set1_epi32((int)aq[r]);                       \
                for (int v = 0; v < NV; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], s, bv[v]);   \
            }                                                                                     \
        }                                                                                         \
        for (int r = 0; r < P; r++)                                                               \
            for (int v = 0; v < NV; v++) _mm512_storeu_ps(c + r * ldc + 16 * v, acc[r][v]);       \
    }
DIPVIZ_BF16_TILE(1)
DIPVIZ_BF16_TILE(2)

BF16_TARGET static void gemm(long m, long n, long k, const uint32_t *a, const uint32_t *b, long ldb, float *c, long ldc) {
    const long kp = (k + 1) / 2;
    for (long j = 0; j < n; j += 32) {
        const int wide = n - j >= 32;
        for (long blk = 0; blk * P < m; blk++) {
            const uint32_t *ab = a + blk * kp * P;
            const long rows = m - blk * P < P ? m - blk * P : P;
            float *cb = c + blk * P * ldc + j;
            if (rows == P) {
                if (wide) tile2(kp, ab, b + j, ldb, cb, ldc);
                else tile1(kp, ab, b + j, ldb, cb, ldc);
                continue;
            }
            // The last, partial block: its unused slots are never read.
            for (long r = 0; r < rows; r++) {
                __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
                for (long q = 0; q < kp; q++) {
                    const __m512bh s = (__m512bh)_mm512_set1_epi32((int)ab[q * P + r]);
                    acc0 = _mm512_dpbf16_ps(acc0, s, (__m512bh)_mm512_loadu_si512(b + q * ldb + j));
                    if (wide) acc1 = _mm512_dpbf16_ps(acc1, s, (__m512bh)_mm512_loadu_si512(b + q * ldb + j + 16));
                }
                _mm512_storeu_ps(cb + r * ldc, acc0);
                if (wide) _mm512_storeu_ps(cb + r * ldc + 16, acc1);
            }
        }
    }
}

static const dipviz_bf16_kernels kernels = {
    .pack_weights = pack_weights,
    .pack_columns = pack_columns,
    .gemm = gemm,
};

const dipviz_bf16_kernels *dipviz_bf16_kernels_table(void) { return &kernels; }
#else
const dipviz_bf16_kernels *dipviz_bf16_kernels_table(void) { return 0; }
#endif
