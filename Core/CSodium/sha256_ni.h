#ifndef CSODIUM_SHA256_NI_H
#define CSODIUM_SHA256_NI_H
/* HMAC-SHA256 with the x86 SHA extensions (SHA-NI), for the runner HMAC over large bodies: a log
 * chunk is ~87 KB, and libsodium's portable SHA-256 spends ~55 instructions a byte on it (4.8 M of a
 * ~10 M-instruction request); the SHA-NI rounds take a fraction of that. Used by
 * Sodium.hmacSHA256 only when CPUID says the CPU has them (csodium_has_sha_ni), libsodium's
 * crypto_auth_hmacsha256 otherwise; the unit tests compare the two on every length up to a few
 * blocks and on large inputs (Tests/DravenCoreTests/JobLogTests.swift, LogFastPathTests).
 *
 * The block function follows the well-known public-domain SHA-NI sequence (Intel's white paper
 * "Intel SHA Extensions", 2013; as in OpenSSL, the Linux kernel and libsodium's successors): state
 * kept as ABEF/CDGH, two rounds per sha256rnds2, the schedule from sha256msg1/msg2. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

/* Whether the CPU has the SHA extensions (CPUID leaf 7, EBX bit 29) and SSE4.1. */
static inline int csodium_has_sha_ni(void) {
#if defined(__x86_64__)
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 19))) return 0;   /* SSE4.1 */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 29) & 1;
#else
    return 0;
#endif
}

#if defined(__x86_64__)
static const uint32_t csodium_sha256_k[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* SHA-256's compression of `blocks` 64-byte blocks into `state` (a, b, … h). */
__attribute__((target("sha,sse4.1,ssse3")))
static inline void csodium_sha256_ni_blocks(uint32_t state[8], const uint8_t *data, size_t blocks) {
    const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i state1 = _mm_loadu_si128((const __m128i *)&state[4]);
    tmp = _mm_shuffle_epi32(tmp, 0xB1);          /* CDAB */
    state1 = _mm_shuffle_epi32(state1, 0x1B);    /* EFGH */
    __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);  /* ABEF */
    state1 = _mm_blend_epi16(state1, tmp, 0xF0);       /* CDGH */
    while (blocks--) {
        const __m128i abef = state0, cdgh = state1;
        __m128i w[4];
        for (int j = 0; j < 4; j++) w[j] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * j)), mask);
        for (int i = 0; i < 16; i++) {
            __m128i msg = _mm_add_epi32(w[i & 3], _mm_load_si128((const __m128i *)&csodium_sha256_k[4 * i]));
            state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
            msg = _mm_shuffle_epi32(msg, 0x0E);
            state0 = _mm_sha256rnds2_epu32(state0, state1, msg);
            if (i < 12) {
                /* W[i+4] from W[i] … W[i+3]: σ0 terms (msg1), the words 9 back (alignr), σ1 terms (msg2). */
                __m128i next = _mm_sha256msg1_epu32(w[i & 3], w[(i + 1) & 3]);
                next = _mm_add_epi32(next, _mm_alignr_epi8(w[(i + 3) & 3], w[(i + 2) & 3], 4));
                w[i & 3] = _mm_sha256msg2_epu32(next, w[(i + 3) & 3]);
            }
        }
        state0 = _mm_add_epi32(state0, abef);
        state1 = _mm_add_epi32(state1, cdgh);
        data += 64;
    }
    tmp = _mm_shuffle_epi32(state0, 0x1B);       /* FEBA */
    state1 = _mm_shuffle_epi32(state1, 0xB1);    /* DCHG */
    state0 = _mm_blend_epi16(tmp, state1, 0xF0); /* DCBA */
    state1 = _mm_alignr_epi8(state1, tmp, 8);    /* HGFE */
    _mm_storeu_si128((__m128i *)&state[0], state0);
    _mm_storeu_si128((__m128i *)&state[4], state1);
}

typedef struct {
    uint32_t state[8];
    uint64_t length;         /* bytes hashed so far */
    uint8_t buffer[64];
    size_t buffered;
} csodium_sha256_ni_ctx;

static inline void csodium_sha256_ni_init(csodium_sha256_ni_ctx *c) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->state, iv, sizeof iv);
    c->length = 0;
    c->buffered = 0;
}

static inline void csodium_sha256_ni_update(csodium_sha256_ni_ctx *c, const uint8_t *p, size_t n) {
    c->length += n;
    if (c->buffered) {
        size_t take = 64 - c->buffered < n ? 64 - c->buffered : n;
        memcpy(c->buffer + c->buffered, p, take);
        c->buffered += take;
        p += take;
        n -= take;
        if (c->buffered < 64) return;
        csodium_sha256_ni_blocks(c->state, c->buffer, 1);
        c->buffered = 0;
    }
    if (n >= 64) {
        csodium_sha256_ni_blocks(c->state, p, n / 64);
        p += n / 64 * 64;
        n %= 64;
    }
    memcpy(c->buffer, p, n);
    c->buffered = n;
}

static inline void csodium_sha256_ni_final(csodium_sha256_ni_ctx *c, uint8_t out[32]) {
    uint64_t bits = c->length * 8;
    uint8_t pad[72] = {0x80};
    size_t padding = (c->buffered < 56 ? 56 : 120) - c->buffered;
    uint8_t length[8];
    for (int i = 0; i < 8; i++) length[i] = (uint8_t)(bits >> (56 - 8 * i));
    csodium_sha256_ni_update(c, pad, padding);
    csodium_sha256_ni_update(c, length, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->state[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->state[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->state[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->state[i];
    }
}

/* HMAC-SHA256 (RFC 2104) of the concatenation of `a` and `b` under `key`; call only when
 * csodium_has_sha_ni(). The key's pads and the inner state are wiped before returning. */
static inline void csodium_hmac_sha256_ni(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
                                          const uint8_t *b, size_t b_len, uint8_t out[32]) {
    uint8_t block[64], inner[32];
    csodium_sha256_ni_ctx c;
    memset(block, 0, sizeof block);
    if (key_len > 64) {
        csodium_sha256_ni_init(&c);
        csodium_sha256_ni_update(&c, key, key_len);
        csodium_sha256_ni_final(&c, block);
    } else if (key_len) {
        memcpy(block, key, key_len);
    }
    for (int i = 0; i < 64; i++) block[i] ^= 0x36;
    csodium_sha256_ni_init(&c);
    csodium_sha256_ni_update(&c, block, 64);
    if (a_len) csodium_sha256_ni_update(&c, a, a_len);
    if (b_len) csodium_sha256_ni_update(&c, b, b_len);
    csodium_sha256_ni_final(&c, inner);
    for (int i = 0; i < 64; i++) block[i] ^= 0x36 ^ 0x5c;
    csodium_sha256_ni_init(&c);
    csodium_sha256_ni_update(&c, block, 64);
    csodium_sha256_ni_update(&c, inner, 32);
    csodium_sha256_ni_final(&c, out);
    sodium_memzero(block, sizeof block);
    sodium_memzero(inner, sizeof inner);
    sodium_memzero(&c, sizeof c);
}
#endif
#endif
