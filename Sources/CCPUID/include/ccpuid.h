#ifndef DIPVIZ_CCPUID_H
#define DIPVIZ_CCPUID_H

#include <stdint.h>

/// What CPUID and XGETBV say about the processor dipviz runs on. Every flag is 1 only when the
/// processor has the instructions and the operating system saves their registers on a context
/// switch (XCR0), so that code using them cannot fault.
typedef struct {
    int is_x86;                  // 0 elsewhere: every other field is zero
    char vendor[13];             // "GenuineIntel", "AuthenticAMD", ...
    char brand[49];              // "Intel(R) Xeon(R) Processor", from the extended leaves
    uint32_t family, model, stepping; // display family and model (base + extended)
    int sse3, ssse3, sse4_1, sse4_2;
    int avx, avx2, fma, f16c;
    int avx512f, avx512dq, avx512bw, avx512vl, avx512cd;
    int avx512_bf16, avx512_fp16, avx512_vnni, amx_tile;
    int os_avx;                  // XCR0 has SSE and AVX state
    int os_avx512;               // XCR0 has opmask and both halves of the ZMM state too
} dipviz_cpu_info;

/// Fills `info` from CPUID (zeroes on other architectures).
void dipviz_cpu_read(dipviz_cpu_info *info);

/// Runs `body(context)` in a forked child and waits at most `timeout_ms` for it: returns the
/// child's exit status (0..255), -signal when a signal ended it (SIGILL, SIGSEGV), -1000 when it
/// ran out of time (it is then killed) and -1001 when no child could be made. The child runs
/// with the default action for fault signals and leaves with _exit, so it flushes no buffers
/// and runs no exit handlers of the parent.
int dipviz_run_in_child(int (*body)(void *context), void *context, int timeout_ms);

/// The number of processors this process may run on (its CPU affinity: a Slurm task's grant,
/// taskset), or 0 when the system does not say.
int dipviz_allowed_cpus(void);

#endif
