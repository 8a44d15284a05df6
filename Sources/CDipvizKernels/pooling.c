#include "dipviz_kernels.h"

void dipviz_max_pool(const float *x, long h, long w, float *y, int *argmax, long oh, long ow,
                     long kh, long kw, long sh, long sw, long pad_top, long pad_left, long dh, long dw,
                     long plane_begin, long plane_end) {
    for (long plane = plane_begin; plane < plane_end; plane++) {
        const float *src = x + plane * h * w;
        float *dst = y + plane * oh * ow;
        int *at_out = argmax ? argmax + plane * oh * ow : 0;
        for (long oy = 0; oy < oh; oy++) {
            // The window rows inside the image: ki in [i0, i1).
            const long y0 = oy * sh - pad_top;
            long i0 = 0, i1 = kh;
            while (i0 < kh && y0 + i0 * dh < 0) i0++;
            while (i1 > i0 && y0 + (i1 - 1) * dh >= h) i1--;
            for (long ox = 0; ox < ow; ox++) {
                const long x0 = ox * sw - pad_left;
                long j0 = 0, j1 = kw;
                while (j0 < kw && x0 + j0 * dw < 0) j0++;
                while (j1 > j0 && x0 + (j1 - 1) * dw >= w) j1--;
                if (i0 >= i1 || j0 >= j1) {
                    dst[oy * ow + ox] = 0;
                    if (at_out) at_out[oy * ow + ox] = -1;
                    continue;
                }
                // The first element in window order wins ties; NaN is kept only when first.
                // Selects instead of branches: the comparisons' outcomes are unpredictable.
                long at = (y0 + i0 * dh) * w + x0 + j0 * dw;
                float best = src[at];
                for (long i = i0; i < i1; i++) {
                    const long row = (y0 + i * dh) * w;
                    for (long j = j0; j < j1; j++) {
                        const long k = row + x0 + j * dw;
                        const float v = src[k];
                        const int greater = v > best;
                        best = greater ? v : best;
                        at = greater ? k : at;
                    }
                }
                dst[oy * ow + ox] = best;
                if (at_out) at_out[oy * ow + ox] = (int)at;
            }
        }
    }
}
