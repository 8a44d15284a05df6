#ifndef DIPVIZ_KERNELS_H
#define DIPVIZ_KERNELS_H

#include <stdint.h>

// The engine's vector kernels, compiled once per instruction set and chosen at run time.
// Every kernel works on a range [begin, end) of independent items, so the caller spreads the
// items over its own threads.

/// Instruction-set levels, lowest first.
enum {
    DIPVIZ_ISA_PORTABLE = 0, // what the compiler's baseline target runs (SSE2 on x86-64, NEON on arm64)
    DIPVIZ_ISA_AVX2 = 1,     // AVX2 + FMA (256-bit vectors)
    DIPVIZ_ISA_AVX512 = 2,   // AVX-512 F/DQ/BW/VL (512-bit vectors)
};

/// Output channels per register tile of the direct forward kernel; the packed weights come in
/// blocks of this many channels on every path.
#define DIPVIZ_DIRECT_CHANNEL_BLOCK 6
/// Readable floats the direct kernels need past each row's last output (twice the widest vector).
#define DIPVIZ_DIRECT_ROW_SLACK 32
/// Rows of A per block of packed_gemm's layout, the same on every path (12 rows x 16 columns
/// of accumulators: 12 vectors with 512 bits, 6 x 2 with 256, 3 x 4 with 128).
#define DIPVIZ_PACKED_ROWS 12

typedef struct {
    const char *name;      // "portable", "avx2", "avx512"
    int level;             // DIPVIZ_ISA_*
    int vector_floats;     // floats per vector register of this path

    /// Direct convolution, unit stride, on zero-padded planes (`row_stride` floats a row,
    /// `plane_stride` a plane, DIPVIZ_DIRECT_ROW_SLACK readable floats past each row's last
    /// output). Items are (output row, channel block): item = oy * blocks + block.
    /// y[m, oy, ox] (+)= sum_{c,i,j} w[m,c,i,j] * xp[c, oy+i, ox+j], with the weights packed
    /// as [blocks][c][kh][kw][DIPVIZ_DIRECT_CHANNEL_BLOCK].
    void (*direct_forward)(const float *xp, long c, long row_stride, long plane_stride,
                           const float *packed, long m, long kh, long kw,
                           float *y, long oh, long ow, int accumulate, long begin, long end);

    /// dw[m, c, i, j] (+)= sum_{oy,ox} gy[m, oy, ox] * xp[c, oy+i, ox+j]; gy comes as planes of
    /// `oh` rows of `gy_row_stride` floats (a multiple of 2 * vector_floats, zero past the
    /// row's outputs) and a plane count that is a multiple of 4 (zero planes past m).
    /// Items are (block of 4 output channels, input channel): item = block * c + ch.
    void (*direct_weight_gradient)(const float *xp, long c, long row_stride, long plane_stride,
                                   const float *gy, long gy_row_stride, long m, long kh, long kw, long oh,
                                   float *dw, int accumulate, long begin, long end);

    /// Winograd F(4x4, 3x3) weight transform (U = G g G^T) of an m x c x 3 x 3 kernel into
    /// u[xi][row][col], xi = 6 k + l over the 36 positions: rows = m, cols = c; with
    /// flip_transpose set, the kernel of the transposed convolution (input gradient) instead:
    /// rows = c, cols = m, each 3 x 3 turned by 180 degrees. Transforms the kernels of output
    /// channels [begin, end) of g. With `packed` set each position's rows x cols matrix is
    /// written in packed_gemm's layout instead of row-major:
    /// ceil(rows / DIPVIZ_PACKED_ROWS) * DIPVIZ_PACKED_ROWS * cols floats per position.
    void (*winograd_weights)(const float *g, long m, long c, int flip_transpose, int packed, float *u,
                             long begin, long end);

    /// Winograd F(4x4, 3x3) input transform (Lavin & Gray 2016, eq. 8: V = B^T d B) of channels
    /// [begin, end) for tile rows [tile_row0, tile_row0 + tile_rows): v[xi][ch][t] for the 36
    /// positions xi, t = tile index within the band (row-major over tw tiles a row), `ld` floats
    /// per (xi, ch) row. Tile (ty, tx) reads input rows 4ty - pad_top .. +5 and columns
    /// 4tx - pad_left .. +5, zero outside the h x w plane.
    void (*winograd_input)(const float *x, long h, long w, long pad_top, long pad_left,
                           long tile_row0, long tile_rows, long tw, float *v, long ld, long channels_total,
                           long begin, long end);

    /// Winograd F(4x4, 3x3) output transform (Y = A^T M A) of output channels [begin, end) from
    /// m[xi][ch][t] (`ld` floats a row, `channels_total` rows per xi) into y (oh x ow planes),
    /// adding bias[ch] when bias is non-null, clamping at zero when relu is set and adding to
    /// what y holds when accumulate is set.
    void (*winograd_output)(const float *m, long ld, long channels_total, long tile_row0, long tile_rows,
                            long tw, float *y, long oh, long ow, const float *bias, int relu, int accumulate,
                            long begin, long end);

    /// C = A B (row-major, m x k times k x n) for narrow B: n a multiple of 16, every row of B
    /// and C `n` floats wide in memory, A packed as [ceil(m / DIPVIZ_PACKED_ROWS)][k][DIPVIZ_PACKED_ROWS]
    /// (the slots past row m of the last block are never read). No packing on the call: the
    /// Winograd weight transform writes this layout, so the products of small images (few tiles
    /// per transformed weight) stream the weights once, contiguously.
    void (*packed_gemm)(long m, long n, long k, const float *a, const float *b, long ldb, float *c, long ldc);

    /// (sum of x, sum of x^2) over n floats, float lanes added into doubles every 2048 floats.
    void (*sum_and_squares)(const float *x, long n, double *sum, double *squares);
    /// (sum of g, sum of g * (x - shift)) over n floats.
    void (*sum_and_centred_dot)(const float *g, const float *x, float shift, long n, double *sum, double *dot);
} dipviz_kernels;

/// The kernels of one level, or null when this build has none for it (non-x86 builds have
/// only the portable level). Does not check the processor: the caller does (CPUID, XCR0).
const dipviz_kernels *dipviz_kernels_for_level(int level);

/// Products of bfloat16 values with single-precision sums (AVX-512 BF16's VDPBF16PS), for
/// the Winograd GEMMs of constant weights. Both operands hold pairs along the inner dimension:
/// a 32-bit word has element 2q in its low half and 2q + 1 in its high half (zero past an odd k).
/// Values are rounded to the nearest bf16, ties to even.
typedef struct {
    /// A packed as packed_gemm reads it ([ceil(m / DIPVIZ_PACKED_ROWS)][k][DIPVIZ_PACKED_ROWS]
    /// floats) into [ceil(m / DIPVIZ_PACKED_ROWS)][ceil(k / 2)][DIPVIZ_PACKED_ROWS] words.
    void (*pack_weights)(const float *a, long m, long k, uint32_t *out);
    /// Row-major k x n floats (`ldb` a row, n a multiple of 16) into ceil(k / 2) rows of n
    /// words (`ldo` words a row).
    void (*pack_columns)(const float *b, long k, long n, long ldb, uint32_t *out, long ldo);
    /// C = A B (m x k times k x n, n a multiple of 16, C row-major with `ldc` floats a row) from
    /// A as pack_weights writes it and B as pack_columns writes it (`ldb` words a row).
    void (*gemm)(long m, long n, long k, const uint32_t *a, const uint32_t *b, long ldb, float *c, long ldc);
} dipviz_bf16_kernels;

/// The bf16 kernels, or null when this build has none (non-x86 builds). Does not check the
/// processor: the caller does (CPUID.(EAX=7, ECX=1):EAX bit 5, with the AVX-512 state in XCR0).
const dipviz_bf16_kernels *dipviz_bf16_kernels_table(void);



/// Max pooling of planes [plane_begin, plane_end) (NCHW planes of h x w into oh x ow), window
/// kh x kw with strides, leading padding and dilations; padding never wins, a window entirely
/// in the padding gives 0. When argmax is non-null it receives each maximum's in-plane index
/// (-1 for a window entirely in the padding). Ties go to the first element in window order.
void dipviz_max_pool(const float *x, long h, long w, float *y, int *argmax, long oh, long ow,
                     long kh, long kw, long sh, long sw, long pad_top, long pad_left, long dh, long dw,
                     long plane_begin, long plane_end);
#endif
