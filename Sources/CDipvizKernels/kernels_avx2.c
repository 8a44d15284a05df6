// AVX2 + FMA: 256-bit vectors, fused multiply-add (Haswell, Zen and later).
#include "dipviz_kernels.h"

#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx,avx2,fma,f16c"))), apply_to = function)
#define DIPVIZ_VW 8
#define DIPVIZ_SUFFIX avx2
#define DIPVIZ_LEVEL DIPVIZ_ISA_AVX2
#define DIPVIZ_NAME "avx2"
#include "kernels_body.h"
#pragma clang attribute pop
#endif
