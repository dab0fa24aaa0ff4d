/* uuid.c: UUID text forms and systemd-repart's seed-derived UUIDs. */
#include "nix-repart-image/uuid.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void nri_uuid_format(const nri_uuid *u, char out[NRI_UUID_STRING_MAX]) {
        static const char hex[] = "0123456789abcdef";
        size_t o = 0;

        for (size_t i = 0; i < 16; i++) {
                if (i == 4 || i == 6 || i == 8 || i == 10)
                        out[o++] = '-';
                out[o++] = hex[u->b[i] >> 4];
                out[o++] = hex[u->b[i] & 0xf];
        }
        out[o] = 0;
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -EINVAL;
}

int nri_uuid_parse(const char *s, nri_uuid *ret) {
        nri_uuid u;
        size_t len, i = 0;
        bool dashed;

        if (!s)
                return -EINVAL;
        /* Exactly the two forms sd_id128_from_string() takes: dashes either
         * at all four places of the 8-4-4-4-12 form or nowhere. */
        len = strlen(s);
        if (len == 36)
                dashed = true;
        else if (len == 32)
                dashed = false;
        else
                return -EINVAL;

        for (size_t n = 0; n < 16; n++) {
                int hi, lo;

                if (dashed && (i == 8 || i == 13 || i == 18 || i == 23)) {
                        if (s[i] != '-')
                                return -EINVAL;
                        i++;
                }
                hi = unhex(s[i++]);
                if (hi < 0)
                        return -EINVAL;
                lo = unhex(s[i++]);
                if (lo < 0)
                        return -EINVAL;
                u.b[n] = (uint8_t)(hi << 4 | lo);
        }

        *ret = u;
        return 0;
}

bool nri_uuid_is_null(const nri_uuid *u) {
        static const nri_uuid null;

        return memcmp(u->b, null.b, sizeof(u->b)) == 0;
}

bool nri_uuid_equal(const nri_uuid *a, const nri_uuid *b) {
        return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

nri_uuid nri_uuid_make_v4(const uint8_t bytes[16]) {
        nri_uuid u;

        memcpy(u.b, bytes, sizeof(u.b));
        u.b[6] = (u.b[6] & 0x0f) | 0x40; /* version 4 */
        u.b[8] = (u.b[8] & 0x3f) | 0x80; /* variant 1 (RFC 4122) */
        return u;
}

void nri_uuid_derive(const nri_uuid *key, const void *msg, size_t msg_len, nri_uuid *ret) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned md_len = 0;

        /* HMAC-SHA256 with a 16-byte key cannot fail short of a broken
         * libcrypto; a UUID derived from garbage would silently differ from
         * systemd-repart's, so stop instead. */
        if (!HMAC(EVP_sha256(), key->b, sizeof(key->b), msg, msg_len, md, &md_len) || md_len < 16) {
                fputs("nix-repart-image: HMAC-SHA256 failed in libcrypto\n", stderr);
                abort();
        }
        /* systemd-repart keeps the first half of the digest. */
        *ret = nri_uuid_make_v4(md);
}

void nri_uuid_partition(const nri_uuid *seed, const nri_uuid *type, uint64_t k, nri_uuid *ret) {
        uint8_t msg[16 + 8];

        /* The type GUID in printed byte order, then the instance counter as
         * little-endian 64 bits; systemd-repart leaves the counter out for
         * the first instance (k = 0), so that one must too. */
        memcpy(msg, type->b, 16);
        for (size_t i = 0; i < 8; i++)
                msg[16 + i] = (uint8_t)(k >> (8 * i));
        nri_uuid_derive(seed, msg, k == 0 ? 16 : sizeof(msg), ret);
}

void nri_uuid_disk(const nri_uuid *seed, nri_uuid *ret) {
        static const char token[] = "disk-uuid";

        nri_uuid_derive(seed, token, sizeof(token) - 1, ret);
}

void nri_uuid_file_system(const nri_uuid *partition, nri_uuid *ret) {
        static const char token[] = "file-system-uuid";

        nri_uuid_derive(partition, token, sizeof(token) - 1, ret);
}

uint32_t nri_uuid_vfat_volume_id(const nri_uuid *fs_uuid) {
        return (uint32_t)fs_uuid->b[0] << 24 | (uint32_t)fs_uuid->b[1] << 16 | (uint32_t)fs_uuid->b[2] << 8 |
               (uint32_t)fs_uuid->b[3];
}

int nri_uuid_random(nri_uuid *ret) {
        uint8_t bytes[16];
        size_t got = 0;

        while (got < sizeof(bytes)) {
                ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                got += (size_t)n;
        }

        *ret = nri_uuid_make_v4(bytes);
        return 0;
}
