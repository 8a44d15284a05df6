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
