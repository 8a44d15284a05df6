// AVX-512 F/DQ/BW/VL: 512-bit vectors (Skylake-SP, Ice Lake, Sapphire Rapids, Zen 4 and later).
#include "dipviz_kernels.h"

#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx,avx2,fma,f16c,avx512f,avx512dq,avx512bw,avx512vl"))), apply_to = function)
#define DIPVIZ_VW 16
#define DIPVIZ_SUFFIX avx512
#define DIPVIZ_LEVEL DIPVIZ_ISA_AVX512
#define DIPVIZ_NAME "avx512"
#include "kernels_body.h"
#pragma clang attribute pop
#endif
