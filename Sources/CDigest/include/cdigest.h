#ifndef CDIGEST_H
#define CDIGEST_H

#include <stddef.h>
#include <stdint.h>

/// Runs the SHA-256 compression function over `blocks` 64-byte blocks of `data` into `state`
/// (a, b, ..., h): with the CPU's SHA extensions when `hardware` is set and the CPU has them
/// (returns 1), else in portable C (returns 0). Both give the same state.
int gs_sha256_blocks(int hardware, uint32_t state[8], const unsigned char *data, size_t blocks);

#endif
