#ifndef GATESCOPE_CHECKSUM_VFS_H
#define GATESCOPE_CHECKSUM_VFS_H

#include <stddef.h>
#include <stdint.h>

/// The VFS name that gatescope opens its databases with.
#define GATESCOPE_CHECKSUM_VFS_NAME "gatescope-cksum"

/// The bytes at the end of every page that hold its checksum (the database's reserve bytes).
#define GATESCOPE_CHECKSUM_BYTES 8

/// Registers the checksum VFS (not as the default VFS) once; returns an SQLite result code.
/// Thread-safe and idempotent.
int gatescope_checksum_vfs_register(void);

/// Writes the checksum of page[0 ..< size-8] into page[size-8 ..< size].
void gatescope_page_checksum_store(unsigned char *page, size_t size);

/// 1 if the last 8 bytes of the page hold the checksum of the rest, else 0.
int gatescope_page_checksum_ok(const unsigned char *page, size_t size);

#endif
