// The body of every kernel, compiled once per instruction set: the including file defines
// DIPVIZ_VW (floats per vector), DIPVIZ_SUFFIX (name suffix), DIPVIZ_LEVEL, DIPVIZ_NAME and the
// target attributes (pragma) before including this file. Plain C with the compiler's vector
// extension: the same source becomes 512-, 256- or 128-bit code.

#define DIPVIZ_CAT2(a, b) a##_##b
#define DIPVIZ_CAT(a, b) DIPVIZ_CAT2(a, b)
#define K(name) DIPVIZ_CAT(name, DIPVIZ_SUFFIX)

typedef float K(vf) __attribute__((ext_vector_type(DIPVIZ_VW), aligned(4)));
#define VF K(vf)

static inline VF K(load)(const float *p) { return *(const VF *)p; }
static inline void K(store)(float *p, VF v) { *(VF *)p = v; }
static inline VF K(splat)(float x) { return (VF)(x); }
static inline float K(hsum)(VF v) {
    float s = 0;
    for (int i = 0; i < DIPVIZ_VW; i++) s += v[i];
    return s;
}

static void K(direct_forward)(const float *xp, long c, long row_stride, long plane_stride,
                              const float *packed, long m, long kh, long kw,
                              float *y, long oh, long ow, int accumulate, long begin, long end) {
    enum { CB = DIPVIZ_DIRECT_CHANNEL_BLOCK, PX = 2 * DIPVIZ_VW };
    const long blocks = (m + CB - 1) / CB, kk = kh * kw;
    for (long item = begin; item < end; item++) {
        const long oy = item / blocks, b = item % blocks;
        const float *wb = packed + b * c * kk * CB;
        for (long ox = 0; ox < ow; ox += PX) {
            VF a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0;
            VF b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0;
            for (long ch = 0; ch < c; ch++) {
                const float *plane = xp + ch * plane_stride + oy * row_stride + ox;
                const float *wc = wb + ch * kk * CB;
                for (long i = 0; i < kh; i++) {
                    const float *row = plane + i * row_stride;
                    const float *wr = wc + i * kw * CB;
                    for (long j = 0; j < kw; j++) {
                        const VF x0 = K(load)(row + j), x1 = K(load)(row + j + DIPVIZ_VW);
                        const float *wq = wr + j * CB;
                        VF w = K(splat)(wq[0]); a0 += w * x0; b0 += w * x1;
                        w = K(splat)(wq[1]); a1 += w * x0; b1 += w * x1;
                        w = K(splat)(wq[2]); a2 += w * x0; b2 += w * x1;
                        w = K(splat)(wq[3]); a3 += w * x0; b3 += w * x1;
                        w = K(splat)(wq[4]); a4 += w * x0; b4 += w * x1;
                        w = K(splat)(wq[5]); a5 += w * x0; b5 += w * x1;
                    }
                }
            }
            float tile[CB][PX];
            K(store)(tile[0], a0); K(store)(tile[0] + DIPVIZ_VW, b0);
            K(store)(tile[1], a1); K(store)(tile[1] + DIPVIZ_VW, b1);
            K(store)(tile[2], a2); K(store)(tile[2] + DIPVIZ_VW, b2);
            K(store)(tile[3], a3); K(store)(tile[3] + DIPVIZ_VW, b3);
            K(store)(tile[4], a4); K(store)(tile[4] + DIPVIZ_VW, b4);
            K(store)(tile[5], a5); K(store)(tile[5] + DIPVIZ_VW, b5);
            const long n = ow - ox < PX ? ow - ox : PX;
            for (long q = 0; q < CB && b * CB + q < m; q++) {
                float *dst = y + (b * CB + q) * oh * ow + oy * ow + ox;
                if (accumulate) { for (long t = 0; t < n; t++) dst[t] += tile[q][t]; }
                else { for (long t = 0; t < n; t++) dst[t] = tile[q][t]; }
            }
        }
    }
}

static void K(direct_weight_gradient)(const float *xp, long c, long row_stride, long plane_stride,
                                      const float *gy, long gy_row_stride, long m, long kh, long kw, long oh,
                                      float *dw, int accumulate, long begin, long end) {
    enum { V = DIPVIZ_VW };
    const long kk = kh * kw, gy_plane = oh * gy_row_stride;
    // Bands of output rows keep the four gradient planes' rows in the first-level cache.
    long band = 1024 / gy_row_stride;
    if (band < 1) band = 1;
    if (band > oh) band = oh;
    float sums[kk * 4];
    for (long item = begin; item < end; item++) {
        const long b = item / c, ch = item % c;
        for (long t = 0; t < kk * 4; t++) sums[t] = 0;
        const float *g0 = gy + (b * 4) * gy_plane, *g1 = g0 + gy_plane, *g2 = g1 + gy_plane, *g3 = g2 + gy_plane;
        const float *plane = xp + ch * plane_stride;
        for (long row0 = 0; row0 < oh; row0 += band) {
            const long rows = oh - row0 < band ? oh - row0 : band;
            for (long i = 0; i < kh; i++) {
                for (long j = 0; j < kw; j++) {
                    VF a0 = 0, a1 = 0, a2 = 0, a3 = 0, c0 = 0, c1 = 0, c2 = 0, c3 = 0;
                    for (long oy = row0; oy < row0 + rows; oy++) {
                        const float *xr = plane + (oy + i) * row_stride + j;
                        const long o = oy * gy_row_stride;
                        for (long ox = 0; ox < gy_row_stride; ox += 2 * V) {
                            const VF x0 = K(load)(xr + ox), x1 = K(load)(xr + ox + V);
                            const long p = o + ox;
                            a0 += K(load)(g0 + p) * x0; a1 += K(load)(g1 + p) * x0;
                            a2 += K(load)(g2 + p) * x0; a3 += K(load)(g3 + p) * x0;
                            c0 += K(load)(g0 + p + V) * x1; c1 += K(load)(g1 + p + V) * x1;
                            c2 += K(load)(g2 + p + V) * x1; c3 += K(load)(g3 + p + V) * x1;
                        }
                    }
                    const long t = (i * kw + j) * 4;
                    sums[t] += K(hsum)(a0 + c0); sums[t + 1] += K(hsum)(a1 + c1);
                    sums[t + 2] += K(hsum)(a2 + c2); sums[t + 3] += K(hsum)(a3 + c3);
                }
            }
        }
        for (long q = 0; q < 4 && b * 4 + q < m; q++) {
            float *dst = dw + ((b * 4 + q) * c + ch) * kk;
            for (long t = 0; t < kk; t++) {
                if (accumulate) dst[t] += sums[t * 4 + q]; else dst[t] = sums[t * 4 + q];
            }
        }
    }
}

// Winograd F(4x4, 3x3), Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks"
// (CVPR 2016), section 4.2 and eq. 8, interpolation points 0, 1, -1, 2, -2 and infinity.
// B^T rows applied to d0..d5 (input transform) and A^T rows to m0..m5 (output transform).
#define WINO_BT(d0, d1, d2, d3, d4, d5, r0, r1, r2, r3, r4, r5) \
    r0 = 4 * (d0) - 5 * (d2) + (d4);                            \
    r1 = -4 * (d1) - 4 * (d2) + (d3) + (d4);                    \
    r2 = 4 * (d1) - 4 * (d2) - (d3) + (d4);                     \
    r3 = -2 * (d1) - (d2) + 2 * (d3) + (d4);                    \
    r4 = 2 * (d1) - (d2) - 2 * (d3) + (d4);                     \
    r5 = 4 * (d1) - 5 * (d3) + (d5);

// Winograd F(4x4, 3x3) weight transform U = G g G^T, G = [[1/4, 0, 0], [-1/6, -1/6, -1/6],
// [-1/6, 1/6, -1/6], [1/24, 1/12, 1/6], [1/24, -1/12, 1/6], [0, 0, 1]], a vector of input channels
// at a time (the lanes); the results are scattered to their layout one lane at a time.
static void K(winograd_weights)(const float *g, long m, long c, int flip_transpose, int packed, float *u,
                                long begin, long end) {
    enum { V = DIPVIZ_VW, P = DIPVIZ_PACKED_ROWS };
    static const float G[6][3] = {
        {1.0f / 4, 0, 0}, {-1.0f / 6, -1.0f / 6, -1.0f / 6}, {-1.0f / 6, 1.0f / 6, -1.0f / 6},
        {1.0f / 24, 1.0f / 12, 1.0f / 6}, {1.0f / 24, -1.0f / 12, 1.0f / 6}, {0, 0, 1}};
    // As a transposed convolution the roles swap: output channel ch of the result reads
    // input channel mm through the kernel turned by 180 degrees.
    const long rows = flip_transpose ? c : m, cols = flip_transpose ? m : c;
    const long position = packed ? (rows + P - 1) / P * P * cols : rows * cols;
    float taps[9][V], out[36][V];
    for (long mm = begin; mm < end; mm++) {
        for (long ch0 = 0; ch0 < c; ch0 += V) {
            const long lanes = c - ch0 < V ? c - ch0 : V;
            for (long l = 0; l < V; l++) {
                const float *k = g + (mm * c + ch0 + (l < lanes ? l : 0)) * 9;
                for (int e = 0; e < 9; e++) taps[e][l] = flip_transpose ? k[8 - e] : k[e];
            }
            VF f[3][3], t[6][3];
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++) f[i][j] = K(load)(taps[3 * i + j]);
            for (int a = 0; a < 6; a++)
                for (int j = 0; j < 3; j++) t[a][j] = G[a][0] * f[0][j] + G[a][1] * f[1][j] + G[a][2] * f[2][j];
            for (int a = 0; a < 6; a++)
                for (int b = 0; b < 6; b++) K(store)(out[a * 6 + b], t[a][0] * G[b][0] + t[a][1] * G[b][1] + t[a][2] * G[b][2]);
            for (long l = 0; l < lanes; l++) {
                const long ch = ch0 + l, r = flip_transpose ? ch : mm, q = flip_transpose ? mm : ch;
                float *dst = u + (packed ? (r / P * cols + q) * P + r % P : r * cols + q);
                for (int xi = 0; xi < 36; xi++) dst[xi * position] = out[xi][l];
            }
        }
    }
}

static void K(winograd_input)(const float *x, long h, long w, long pad_top, long pad_left,
                              long tile_row0, long tile_rows, long tw, float *v, long ld, long channels_total,
                              long begin, long end) {
    const long wp = 4 * tw + 2;          // columns the tiles of a row read
    // Tile rows transformed together: their tiles are consecutive in v, so B along the columns
    // runs over all of them at once (whole vectors even when a row has only a few tiles).
    long group = 128 / tw;
    if (group < 1) group = 1;
    if (group > tile_rows) group = tile_rows;
    // The columns of the input rows a tile reads, inside the plane: X in [xa, xb).
    long xa = pad_left < 0 ? 0 : pad_left, xb = pad_left + w;
    if (xa > wp) xa = wp;
    if (xb > wp) xb = wp;
    if (xb < xa) xb = xa;
    float rows[6][wp], t[6][wp], s[6][6][group * tw];
    for (long ch = begin; ch < end; ch++) {
        const float *plane = x + ch * h * w;
        for (long r0 = 0; r0 < tile_rows; r0 += group) {
            const long g = tile_rows - r0 < group ? tile_rows - r0 : group;
            for (long r = 0; r < g; r++) {
                const long ty = tile_row0 + r0 + r;
                // The six input rows of this tile row, zero outside the image.
                for (long i = 0; i < 6; i++) {
                    const long iy = 4 * ty - pad_top + i;
                    float *dst = rows[i];
                    if (iy < 0 || iy >= h) { for (long X = 0; X < wp; X++) dst[X] = 0; continue; }
                    const float *src = plane + iy * w - pad_left;
                    for (long X = 0; X < xa; X++) dst[X] = 0;
                    for (long X = xa; X < xb; X++) dst[X] = src[X];
                    for (long X = xb; X < wp; X++) dst[X] = 0;
                }
                // B^T along the rows, every column at once.
                for (long X = 0; X < wp; X++) {
                    WINO_BT(rows[0][X], rows[1][X], rows[2][X], rows[3][X], rows[4][X], rows[5][X],
                            t[0][X], t[1][X], t[2][X], t[3][X], t[4][X], t[5][X])
                }
                // The six columns 4 tx + j of each tile, tile-major, for B along the columns.
                for (long k = 0; k < 6; k++)
                    for (long j = 0; j < 6; j++)
                        for (long tx = 0; tx < tw; tx++) s[k][j][r * tw + tx] = t[k][4 * tx + j];
            }
            const long n = g * tw, t0 = r0 * tw;
            for (long k = 0; k < 6; k++) {
                float *o0 = v + ((k * 6 + 0) * channels_total + ch) * ld + t0;
                float *o1 = v + ((k * 6 + 1) * channels_total + ch) * ld + t0;
                float *o2 = v + ((k * 6 + 2) * channels_total + ch) * ld + t0;
                float *o3 = v + ((k * 6 + 3) * channels_total + ch) * ld + t0;
                float *o4 = v + ((k * 6 + 4) * channels_total + ch) * ld + t0;
                float *o5 = v + ((k * 6 + 5) * channels_total + ch) * ld + t0;
                const float *d0 = s[k][0], *d1 = s[k][1], *d2 = s[k][2], *d3 = s[k][3], *d4 = s[k][4], *d5 = s[k][5];
                for (long T = 0; T < n; T++) {
                    WINO_BT(d0[T], d1[T], d2[T], d3[T], d4[T], d5[T], o0[T], o1[T], o2[T], o3[T], o4[T], o5[T])
                }
            }
        }
    }
}

static void K(winograd_output)(const float *mm, long ld, long channels_total, long tile_row0, long tile_rows,
                               long tw, float *y, long oh, long ow, const float *bias, int relu, int accumulate,
                               long begin, long end) {
    // Tile rows transformed together (their tiles are consecutive in mm), so that both passes
    // of A^T run over whole vectors even when a row has only a few tiles.
    long group = 128 / tw;
    if (group < 1) group = 1;
    if (group > tile_rows) group = tile_rows;
    float q[4][6][group * tw], e[4][4][group * tw];
    for (long ch = begin; ch < end; ch++) {
        const float b = bias ? bias[ch] : 0;
        float *plane = y + ch * oh * ow;
        for (long r0 = 0; r0 < tile_rows; r0 += group) {
            const long g = tile_rows - r0 < group ? tile_rows - r0 : group;
            const long n = g * tw, t0 = r0 * tw;
            // A^T down the six rows of each tile (k), for each column l, over all tiles.
            for (long l = 0; l < 6; l++) {
                const float *m0 = mm + ((0 * 6 + l) * channels_total + ch) * ld + t0;
                const float *m1 = mm + ((1 * 6 + l) * channels_total + ch) * ld + t0;
                const float *m2 = mm + ((2 * 6 + l) * channels_total + ch) * ld + t0;
                const float *m3 = mm + ((3 * 6 + l) * channels_total + ch) * ld + t0;
                const float *m4 = mm + ((4 * 6 + l) * channels_total + ch) * ld + t0;
                const float *m5 = mm + ((5 * 6 + l) * channels_total + ch) * ld + t0;
                for (long T = 0; T < n; T++) {
                    const float a = m1[T] + m2[T], d = m1[T] - m2[T];
                    const float f3 = m3[T] + m4[T], f = m3[T] - m4[T];
                    q[0][l][T] = m0[T] + a + f3;
                    q[1][l][T] = d + 2 * f;
                    q[2][l][T] = a + 4 * f3;
                    q[3][l][T] = d + 8 * f + m5[T];
                }
            }
            // A^T along the columns: e[i][j][T] is output pixel (4 ty + i, 4 tx + j) of tile T.
            for (long i = 0; i < 4; i++) {
                const float *n0 = q[i][0], *n1 = q[i][1], *n2 = q[i][2], *n3 = q[i][3], *n4 = q[i][4], *n5 = q[i][5];
                for (long T = 0; T < n; T++) {
                    const float a = n1[T] + n2[T], d = n1[T] - n2[T];
                    const float f3 = n3[T] + n4[T], f = n3[T] - n4[T];
                    e[i][0][T] = n0[T] + a + f3;
                    e[i][1][T] = d + 2 * f;
                    e[i][2][T] = a + 4 * f3;
                    e[i][3][T] = d + 8 * f + n5[T];
                }
            }
            // Interleaved back into image order.
            for (long r = 0; r < g; r++) {
                for (long i = 0; i < 4; i++) {
                    const long oy = 4 * (tile_row0 + r0 + r) + i;
                    if (oy >= oh) break;
                    float *dst = plane + oy * ow;
                    for (long tx = 0; tx < tw; tx++) {
                        const long T = r * tw + tx;
                        for (long j = 0; j < 4; j++) {
                            const long X = 4 * tx + j;
                            if (X >= ow) break;
                            const float z = e[i][j][T] + b;
                            if (accumulate) dst[X] += z;
                            else if (relu) dst[X] = z > 0 ? z : 0;
                            else dst[X] = z;
                        }
                    }
                }
            }
        }
    }
}

static void K(packed_gemm)(long m, long n, long k, const float *a, const float *b, long ldb, float *c, long ldc) {
    // Register tile: RB rows x NV vectors (16 columns) = 12 accumulators on every path.
    enum { V = DIPVIZ_VW, NV = 16 / DIPVIZ_VW, RB = DIPVIZ_PACKED_ROWS / NV, P = DIPVIZ_PACKED_ROWS };
    for (long j = 0; j < n; j += NV * V) {
        for (long blk = 0; blk * P < m; blk++) {
            const float *ab = a + blk * k * P;
            const long rows = m - blk * P < P ? m - blk * P : P;
            if (rows == P) {
                for (long r0 = 0; r0 < P; r0 += RB) {
                    VF acc[RB][NV];
                    for (int r = 0; r < RB; r++) for (int v = 0; v < NV; v++) acc[r][v] = 0;
                    for (long p = 0; p < k; p++) {
                        VF bv[NV];
                        for (int v = 0; v < NV; v++) bv[v] = K(load)(b + p * ldb + j + v * V);
                        const float *q = ab + p * P + r0;
                        for (int r = 0; r < RB; r++) {
                            const VF s = K(splat)(q[r]);
                            for (int v = 0; v < NV; v++) acc[r][v] += s * bv[v];
                        }
                    }
                    for (int r = 0; r < RB; r++)
                        for (int v = 0; v < NV; v++) K(store)(c + (blk * P + r0 + r) * ldc + j + v * V, acc[r][v]);
                }
            } else {
                // The last, partial block: its unused slots are never read.
                for (long r = 0; r < rows; r++) {
                    VF acc[NV];
                    for (int v = 0; v < NV; v++) acc[v] = 0;
                    for (long p = 0; p < k; p++) {
                        const VF s = K(splat)(ab[p * P + r]);
                        for (int v = 0; v < NV; v++) acc[v] += s * K(load)(b + p * ldb + j + v * V);
                    }
                    for (int v = 0; v < NV; v++) K(store)(c + (blk * P + r) * ldc + j + v * V, acc[v]);
                }
            }
        }
    }
}

static void K(sum_and_squares)(const float *x, long n, double *sum, double *squares) {
    double total = 0, sq = 0;
    for (long start = 0; start < n; start += 2048) {
        const long len = n - start < 2048 ? n - start : 2048;
        const float *p = x + start;
        VF s0 = 0, s1 = 0, q0 = 0, q1 = 0;
        long i = 0;
        for (; i + 2 * DIPVIZ_VW <= len; i += 2 * DIPVIZ_VW) {
            const VF a = K(load)(p + i), b = K(load)(p + i + DIPVIZ_VW);
            s0 += a; s1 += b; q0 += a * a; q1 += b * b;
        }
        float s = K(hsum)(s0 + s1), q = K(hsum)(q0 + q1);
        for (; i < len; i++) { s += p[i]; q += p[i] * p[i]; }
        total += s; sq += q;
    }
    *sum = total; *squares = sq;
}

static void K(sum_and_centred_dot)(const float *g, const float *x, float shift, long n, double *sum, double *dot) {
    double total = 0, dt = 0;
    const VF c = K(splat)(shift);
    for (long start = 0; start < n; start += 2048) {
        const long len = n - start < 2048 ? n - start : 2048;
        const float *pg = g + start, *px = x + start;
        VF s0 = 0, s1 = 0, d0 = 0, d1 = 0;
        long i = 0;
        for (; i + 2 * DIPVIZ_VW <= len; i += 2 * DIPVIZ_VW) {
            const VF a = K(load)(pg + i), b = K(load)(pg + i + DIPVIZ_VW);
            s0 += a; s1 += b;
            d0 += a * (K(load)(px + i) - c); d1 += b * (K(load)(px + i + DIPVIZ_VW) - c);
        }
        float s = K(hsum)(s0 + s1), d = K(hsum)(d0 + d1);
        for (; i < len; i++) { s += pg[i]; d += pg[i] * (px[i] - shift); }
        total += s; dt += d;
    }
    *sum = total; *dot = dt;
}

const dipviz_kernels K(dipviz_kernels) = {
    .name = DIPVIZ_NAME,
    .level = DIPVIZ_LEVEL,
    .vector_floats = DIPVIZ_VW,
    .direct_forward = K(direct_forward),
    .direct_weight_gradient = K(direct_weight_gradient),
    .winograd_weights = K(winograd_weights),
    .winograd_input = K(winograd_input),
    .winograd_output = K(winograd_output),
    .packed_gemm = K(packed_gemm),
    .sum_and_squares = K(sum_and_squares),
    .sum_and_centred_dot = K(sum_and_centred_dot),
};
