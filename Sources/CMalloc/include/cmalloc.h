#ifndef GATESCOPE_CMALLOC_H
#define GATESCOPE_CMALLOC_H

/// For an executable's start: glibc's allocator keeps freed blocks of up to 32 MB for reuse (a
/// heap, not a mapping of their own) and returns free memory to the system only past 256 MB, so
/// that buffers freed and allocated again every batch are not fresh, zero-filled pages each time.
/// Leaves the allocator as it is where the user tuned it (GLIBC_TUNABLES with glibc.malloc, or
/// MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_), and off glibc. Returns 1 when it changed it.
int gs_keep_freed_memory(void);

#endif
