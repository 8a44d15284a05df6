// The fallback every processor runs: the compiler's baseline vectors (SSE2 on x86-64, NEON on arm64).
#include "dipviz_kernels.h"

#define DIPVIZ_VW 4
#define DIPVIZ_SUFFIX portable
#define DIPVIZ_LEVEL DIPVIZ_ISA_PORTABLE
#define DIPVIZ_NAME "portable"
#include "kernels_body.h"
