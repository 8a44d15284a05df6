#define _GNU_SOURCE
#include "ccpuid.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t read_xcr0(void) {
    uint32_t eax, edx;
    // xgetbv with ECX = 0; spelled as bytes so that no -mxsave flag is needed.
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

void dipviz_cpu_read(dipviz_cpu_info *info) {
    memset(info, 0, sizeof *info);
    info->is_x86 = 1;
    unsigned int a, b, c, d;
    unsigned int max_leaf = __get_cpuid_max(0, 0);
    if (max_leaf == 0) return;
    __cpuid(0, a, b, c, d);
    memcpy(info->vendor, &b, 4);
    memcpy(info->vendor + 4, &d, 4);
    memcpy(info->vendor + 8, &c, 4);

    __cpuid(1, a, b, c, d);
    uint32_t base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
    info->stepping = a & 0xf;
    info->family = base_family == 0xf ? base_family + ((a >> 20) & 0xff) : base_family;
    info->model = (base_family == 0x6 || base_family == 0xf) ? (((a >> 16) & 0xf) << 4) + base_model : base_model;
    info->sse3 = (c >> 0) & 1;
    info->ssse3 = (c >> 9) & 1;
    info->sse4_1 = (c >> 19) & 1;
    info->sse4_2 = (c >> 20) & 1;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;

    uint64_t xcr0 = osxsave ? read_xcr0() : 0;
    int os_avx = (xcr0 & 0x6) == 0x6;          // SSE and AVX (YMM upper halves)
    int os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0; // opmask, ZMM_Hi256, Hi16_ZMM
    info->os_avx = os_avx;
    info->os_avx512 = os_avx512;
    info->avx = avx && os_avx;
    info->fma = fma && os_avx;
    info->f16c = f16c && os_avx;

    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        unsigned int subleaves = a;
        info->avx2 = ((b >> 5) & 1) && os_avx;
        info->avx512f = ((b >> 16) & 1) && os_avx512;
        info->avx512dq = ((b >> 17) & 1) && os_avx512;
        info->avx512cd = ((b >> 28) & 1) && os_avx512;
        info->avx512bw = ((b >> 30) & 1) && os_avx512;
        info->avx512vl = ((b >> 31) & 1) && os_avx512;
        info->avx512_vnni = ((c >> 11) & 1) && os_avx512;
        info->avx512_fp16 = ((d >> 23) & 1) && os_avx512;
        info->amx_tile = (d >> 24) & 1;
        if (subleaves >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            info->avx512_bf16 = ((a >> 5) & 1) && os_avx512;
        }
    }

    __cpuid(0x80000000, a, b, c, d);
    if (a >= 0x80000004) {
        unsigned int regs[12];
        for (unsigned int i = 0; i < 3; i++)
            __cpuid(0x80000002 + i, regs[4 * i], regs[4 * i + 1], regs[4 * i + 2], regs[4 * i + 3]);
        memcpy(info->brand, regs, 48);
        info->brand[48] = 0;
    }
}
#else
void dipviz_cpu_read(dipviz_cpu_info *info) { memset(info, 0, sizeof *info); }
#endif

int dipviz_run_in_child(int (*body)(void *context), void *context, int timeout_ms) {
    pid_t pid = fork();
    if (pid < 0) return -1001;
    if (pid == 0) {
        // A fault must end the child quietly, not start the parent's crash reporter in it.
        const int faults[] = {SIGILL, SIGSEGV, SIGBUS, SIGFPE, SIGABRT, SIGTRAP};
        for (unsigned i = 0; i < sizeof faults / sizeof faults[0]; i++) signal(faults[i], SIG_DFL);
        _exit(body(context) & 0xff);
    }
    struct timespec pause = {0, 200000}; // 0.2 ms between polls: the probe takes about a millisecond
    long waited_ns = 0;
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(status)) return WEXITSTATUS(status);
            if (WIFSIGNALED(status)) return -WTERMSIG(status);
            return -1001;
        }
        if (r < 0 && errno != EINTR) return -1001;
        if (waited_ns >= (long)timeout_ms * 1000000L) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
            return -1000;
        }
        nanosleep(&pause, 0);
        waited_ns += pause.tv_nsec;
    }
}

#include <sched.h>

int dipviz_allowed_cpus(void) {
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
    return CPU_COUNT(&set);
#else
    return 0;
#endif
}
