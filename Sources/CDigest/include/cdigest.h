#ifndef CDIGEST_H
#define CDIGEST_H

#include <stddef.h>
#include <stdint.h>

/// Runs the SHA-256 compression function over `blocks` 64-byte blocks of `data` into `state`
/// (a, b, ..., h) with the CPU's SHA extensions; returns 0, leaving `state` as it was, on a CPU
/// without them (the caller then compresses the blocks itself).
int gs_sha256_blocks(uint32_t state[8], const unsigned char *data, size_t blocks);

#endif
