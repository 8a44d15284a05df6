#include "dipviz_kernels.h"

extern const dipviz_kernels dipviz_kernels_portable;
#if defined(__x86_64__)
extern const dipviz_kernels dipviz_kernels_avx2;
extern const dipviz_kernels dipviz_kernels_avx512;
#endif

const dipviz_kernels *dipviz_kernels_for_level(int level) {
    switch (level) {
    case DIPVIZ_ISA_PORTABLE: return &dipviz_kernels_portable;
#if defined(__x86_64__)
    case DIPVIZ_ISA_AVX2: return &dipviz_kernels_avx2;
    case DIPVIZ_ISA_AVX512: return &dipviz_kernels_avx512;
#endif
    default: return 0;
    }
}

void dipviz_winograd_weights(const float *g, long m, long c, int flip_transpose, float *u, long begin, long end,
                             int packed) {
    // G = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6], [1/24, 1/12, 1/6], [1/24, -1/12, 1/6], [0, 0, 1]]
    static const float G[6][3] = {
        {1.0f / 4, 0, 0}, {-1.0f / 6, -1.0f / 6, -1.0f / 6}, {-1.0f / 6, 1.0f / 6, -1.0f / 6},
        {1.0f / 24, 1.0f / 12, 1.0f / 6}, {1.0f / 24, -1.0f / 12, 1.0f / 6}, {0, 0, 1}};
    // As a transposed convolution the roles swap: output channel ch of the result reads
    // input channel mm through the kernel turned by 180 degrees.
    const long rows = flip_transpose ? c : m, cols = flip_transpose ? m : c;
    const long P = DIPVIZ_PACKED_ROWS;
    const long position = packed ? (rows + P - 1) / P * P * cols : rows * cols;
    for (long mm = begin; mm < end; mm++) {
        for (long ch = 0; ch < c; ch++) {
            const float *k = g + (mm * c + ch) * 9;
            float f[3][3];
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++) f[i][j] = flip_transpose ? k[(2 - i) * 3 + (2 - j)] : k[i * 3 + j];
            float t[6][3];
            for (int a = 0; a < 6; a++)
                for (int j = 0; j < 3; j++) t[a][j] = G[a][0] * f[0][j] + G[a][1] * f[1][j] + G[a][2] * f[2][j];
            const long r = flip_transpose ? ch : mm, q = flip_transpose ? mm : ch;
            for (int a = 0; a < 6; a++)
                for (int b = 0; b < 6; b++)
                    u[(a * 6 + b) * position + (packed ? (r / P * cols + q) * P + r % P : r * cols + q)] =
                        t[a][0] * G[b][0] + t[a][1] * G[b][1] + t[a][2] * G[b][2];
        }
    }
}
