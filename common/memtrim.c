/* memtrim: see memtrim.h. */
#include "memtrim.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Kept below the caller's frame: the callees of the next iteration and a signal handler's frame. */
#define STACK_MARGIN (32 * 1024)

/* The [stack] mapping, the main thread's: 0 found. */
static int main_stack(uintptr_t *lo, uintptr_t *hi)
{
        FILE *f = fopen("/proc/self/maps", "re");
        if (!f)
                return -1;
        char line[512];
        int r = -1;
        while (r < 0 && fgets(line, sizeof(line), f))
                if (strstr(line, "[stack]") && sscanf(line, "%" SCNxPTR "-%" SCNxPTR, lo, hi) == 2)
                        r = 0;
        fclose(f);
        return r;
}

__attribute__((noinline)) void kv_memtrim(void)
{
        uintptr_t lo, hi, sp = (uintptr_t)__builtin_frame_address(0);
        int found = main_stack(&lo, &hi);
        malloc_trim(0);
        /* Not on the main thread's stack (another thread's): what lies below is not ours to drop. */
        if (found < 0 || sp < lo || sp >= hi)
                return;
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t end = (sp - STACK_MARGIN) & ~(page - 1);
        if (end > lo)
                madvise((void *)lo, end - lo, MADV_DONTNEED);
}
