// zlib, for reading rotated logs compressed with gzip (logrotate's `compress`). Debian's zlib1g-dev.
// And CRC-32C for the spool's records: zlib's CRC-32 costs about a quarter of a spooled sender's CPU at
// 64-byte lines (measured with perf), where CRC-32C has an instruction of its own (SSE 4.2).
#ifndef CLINGER_ZLIB_H
#define CLINGER_ZLIB_H
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

/// CRC-32C (Castagnoli, as iSCSI and ext4 use it) of `length` bytes, continuing from `crc` (0 to start).
/// Uses the SSE 4.2 instruction where the CPU has it, a table otherwise; both give the same value.
uint32_t linger_crc32c(uint32_t crc, const void *bytes, size_t length);

/// The table-driven CRC-32C, always: for tests that check the fast path against it.
uint32_t linger_crc32c_portable(uint32_t crc, const void *bytes, size_t length);
#endif
