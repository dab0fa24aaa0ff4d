/* uuid.h: 128-bit identifiers and systemd-repart's derivation of them.
 *
 * Bytes are kept in printed order (as sd_id128_t does, and as a GPT stores
 * them only after the mixed-endian swap that libfdisk does for us). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nri_uuid {
        uint8_t b[16];
} nri_uuid;

#define NRI_UUID_STRING_MAX 37 /* 36 characters and the NUL */

/* Lower case, 8-4-4-4-12. */
void nri_uuid_format(const nri_uuid *u, char out[NRI_UUID_STRING_MAX]);
/* Accepts 8-4-4-4-12 or 32 plain hex digits, either case (as
 * sd_id128_from_string does).  0 or -EINVAL. */
int nri_uuid_parse(const char *s, nri_uuid *ret);
bool nri_uuid_is_null(const nri_uuid *u);
bool nri_uuid_equal(const nri_uuid *a, const nri_uuid *b);

/* Marks the first 16 bytes of `bytes` as a version-4, variant-1 UUID. */
nri_uuid nri_uuid_make_v4(const uint8_t bytes[16]);

/* v4(HMAC-SHA256(key, msg)). */
void nri_uuid_derive(const nri_uuid *key, const void *msg, size_t msg_len, nri_uuid *ret);

/* systemd-repart: the partition UUID of the k-th (0-based) partition of type
 * `type`: HMAC message is the type GUID, followed by le64(k) when k > 0. */
void nri_uuid_partition(const nri_uuid *seed, const nri_uuid *type, uint64_t k, nri_uuid *ret);
/* systemd-repart: HMAC(seed, "disk-uuid"). */
void nri_uuid_disk(const nri_uuid *seed, nri_uuid *ret);
/* systemd-repart: HMAC(partition UUID, "file-system-uuid"). */
void nri_uuid_file_system(const nri_uuid *partition, nri_uuid *ret);
/* The vfat volume id: the file-system UUID's first four bytes, big-endian. */
uint32_t nri_uuid_vfat_volume_id(const nri_uuid *fs_uuid);

/* A random v4 UUID from getrandom(); 0 or a negative errno. */
int nri_uuid_random(nri_uuid *ret);
