// The allocator policy of GateScope's executables (see cmalloc.h). A process-wide setting, so
// only executables call it, never the libraries.
#include "cmalloc.h"

#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

int gs_keep_freed_memory(void) {
#if defined(__GLIBC__)
    const char *tunables = getenv("GLIBC_TUNABLES");
    if ((tunables && strstr(tunables, "glibc.malloc.")) || getenv("MALLOC_MMAP_THRESHOLD_") || getenv("MALLOC_TRIM_THRESHOLD_"))
        return 0;
    // 32 MB is glibc's largest mmap threshold on 64-bit systems; setting it also stops glibc from
    // moving it by itself.
    return mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1;
#else
    return 0;
#endif
}
