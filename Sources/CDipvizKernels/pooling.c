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
            long ox = 0;
            while (ox < ow) {
                const long x0 = ox * sw - pad_left;
                // The first element in window order wins ties; NaN is kept only when first.
                // Selects instead of branches (the comparisons' outcomes are unpredictable), and
                // four windows at a time where they lie wholly inside the row: four independent
                // chains of selects instead of one.
                if (i0 < i1 && x0 >= 0 && ox + 4 <= ow && x0 + 3 * sw + (kw - 1) * dw < w) {
                    const long first = (y0 + i0 * dh) * w + x0;
                    long a0 = first, a1 = first + sw, a2 = first + 2 * sw, a3 = first + 3 * sw;
                    float b0 = src[a0], b1 = src[a1], b2 = src[a2], b3 = src[a3];
                    for (long i = i0; i < i1; i++) {
                        const long row = (y0 + i * dh) * w + x0;
                        for (long j = 0; j < kw; j++) {
                            const long k = row + j * dw;
                            const float v0 = src[k], v1 = src[k + sw], v2 = src[k + 2 * sw], v3 = src[k + 3 * sw];
                            const int g0 = v0 > b0, g1 = v1 > b1, g2 = v2 > b2, g3 = v3 > b3;
                            b0 = g0 ? v0 : b0; a0 = g0 ? k : a0;
                            b1 = g1 ? v1 : b1; a1 = g1 ? k + sw : a1;
                            b2 = g2 ? v2 : b2; a2 = g2 ? k + 2 * sw : a2;
                            b3 = g3 ? v3 : b3; a3 = g3 ? k + 3 * sw : a3;
                        }
                    }
                    float *d = dst + oy * ow + ox;
                    d[0] = b0; d[1] = b1; d[2] = b2; d[3] = b3;
                    if (at_out) {
                        int *q = at_out + oy * ow + ox;
                        q[0] = (int)a0; q[1] = (int)a1; q[2] = (int)a2; q[3] = (int)a3;
                    }
                    ox += 4;
                    continue;
                }
                long j0 = 0, j1 = kw;
                while (j0 < kw && x0 + j0 * dw < 0) j0++;
                while (j1 > j0 && x0 + (j1 - 1) * dw >= w) j1--;
                if (i0 >= i1 || j0 >= j1) {
                    dst[oy * ow + ox] = 0;
                    if (at_out) at_out[oy * ow + ox] = -1;
                    ox++;
                    continue;
                }
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
                ox++;
            }
        }
    }
}
