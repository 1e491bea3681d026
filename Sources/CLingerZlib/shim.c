// The target exposes zlib's header, links libz, and computes CRC-32C (see CLingerZlib.h).
#include "CLingerZlib.h"
#include <string.h>

static uint32_t crc32c_table[256];
static int crc32c_table_ready;

static void crc32c_make_table(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc32c_table[n] = c;
    }
    __atomic_store_n(&crc32c_table_ready, 1, __ATOMIC_RELEASE);
}

uint32_t linger_crc32c_portable(uint32_t crc, const void *bytes, size_t length) {
    // Building the table twice from two threads writes the same values: harmless.
    if (!__atomic_load_n(&crc32c_table_ready, __ATOMIC_ACQUIRE)) crc32c_make_table();
    const uint8_t *p = bytes;
    crc = ~crc;
    while (length--) crc = crc32c_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>

__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const void *bytes, size_t length) {
    const uint8_t *p = bytes;
    uint64_t c = ~crc;
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = _mm_crc32_u64(c, word);
        p += 8;
        length -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (length--) c32 = _mm_crc32_u8(c32, *p++);
    return ~c32;
}

uint32_t linger_crc32c(uint32_t crc, const void *bytes, size_t length) {
    // cpuid rather than __builtin_cpu_supports: no runtime library needed, also in the static build.
    static int sse42 = -1;
    int known = __atomic_load_n(&sse42, __ATOMIC_RELAXED);
    if (known < 0) {
        unsigned a = 0, b = 0, c = 0, d = 0;
        known = (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2)) ? 1 : 0;
        __atomic_store_n(&sse42, known, __ATOMIC_RELAXED);
    }
    return known ? crc32c_sse42(crc, bytes, length) : linger_crc32c_portable(crc, bytes, length);
}
#else
uint32_t linger_crc32c(uint32_t crc, const void *bytes, size_t length) {
    return linger_crc32c_portable(crc, bytes, length);
}
#endif
