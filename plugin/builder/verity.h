/* verity.h: a dm-verity hash tree, in veritysetup's on-disk format.
 *
 * nri_verity_write() reads a data region (a byte range of a file: the data
 * partition in the image) and writes into a hash region what
 * systemd-repart's partition_format_verity_hash() has libcryptsetup write
 * for Verity=hash: crypt_format(CRYPT_VERITY) with hash_type 1, SHA-256,
 * the data and hash block sizes, the whole data partition as data
 * (data_size 0 = the device), the hash area at offset 0 of the hash
 * partition, a superblock, and the salt and superblock UUID that
 * systemd-repart derives from the seed.  It returns the root hash.
 *
 * The semantics followed are those of systemd's main branch as the search
 * tools hold it (src/repart/repart.c with SupplementFor=, El Torito and
 * EncryptKDF=, i.e. v258 and later): they have not changed since
 * systemd-repart 253 added Verity=/Minimize=:
 *   - salt: HMAC-SHA256(key = seed, "verity-salt"), all 32 bytes
 *     (derive_salt(); nri_verity_derive());
 *   - superblock UUID: v4(HMAC-SHA256(seed, "verity-uuid")) (derive_uuid());
 *     the same salt and UUID for every hash partition of an image;
 *   - the data partition's UUID is the root hash's first 16 bytes and the
 *     hash partition's its last 16 bytes, copied as they are, not marked
 *     as v4 (nri_verity_partition_uuids()), unless UUID= is set; the
 *     data partition's file-system UUID still derives from the seed-derived
 *     partition UUID, so it is known at evaluation time and the partition
 *     UUIDs are not;
 *   - `roothash` in repart-output.json: the root hash in lower-case hex;
 *   - Minimize= on the hash partition: the size of what libcryptsetup writes
 *     (nri_verity_hash_size(), the superblock block and every tree block);
 *     without Minimize=, the partition's configured size (which must hold
 *     that much);
 *   - VerityDataBlockSizeBytes=/VerityHashBlockSizeBytes=: powers of two
 *     from 512 to 4096 (the kernel refuses data blocks larger than a page).
 *
 * On-disk format (cryptsetup lib/verity, "format 1"): a 512-byte superblock
 * ("verity\0\0", version 1, hash type 1, UUID, "sha256", block sizes, data
 * block count, salt) at the start of the hash region, the tree from the
 * next hash block on, its levels stored top (the single block the root hash
 * covers) first and the level of data block hashes last; each hash is
 * SHA-256(salt || block); unused bytes are zeros.
 *
 * For issue 13's file-system ops table (the hash partition, Verity=hash):
 *   read-only:      yes (nothing writes a hash tree after it is made)
 *   holds:          no files: CopyFiles=, MakeDirectories=, Format= are an
 *                   error with Verity=hash, as systemd-repart refuses them
 *   minimum size:   nri_verity_hash_size() of the data partition's size
 *   Minimize=:      best and guess both give nri_verity_hash_size() (exact;
 *                   systemd-repart measures the file libcryptsetup writes)
 *   reserved names: none */
#pragma once

#include <stdint.h>

#include "nix-repart-image/uuid.h"

#define NRI_VERITY_SALT_SIZE 32      /* systemd-repart's salt: a SHA-256 HMAC */
#define NRI_VERITY_ROOT_HASH_SIZE 32 /* SHA-256 */
#define NRI_VERITY_BLOCK_SIZE 4096   /* systemd-repart's default block sizes */

typedef struct nri_verity_options {
        nri_uuid uuid;                      /* the superblock's UUID */
        uint8_t salt[NRI_VERITY_SALT_SIZE]; /* hashed before every block */
        uint32_t data_block_size;           /* 512 … 4096, a power of two; 0: 4096 */
        uint32_t hash_block_size;           /* 512 … 4096, a power of two; 0: 4096 */
        const char *what;                   /* for messages (NULL: "verity") */
} nri_verity_options;

/* systemd-repart's salt and superblock UUID for the hash partitions of an
 * image made with `seed`: sets o->salt and o->uuid, nothing else. */
void nri_verity_derive(const nri_uuid *seed, nri_verity_options *o);

/* The UUIDs systemd-repart gives the data partition (the root hash's first
 * half) and the hash partition (its second half). */
void nri_verity_partition_uuids(const uint8_t root_hash[NRI_VERITY_ROOT_HASH_SIZE], nri_uuid *ret_data,
                                nri_uuid *ret_hash);

/* Bytes the hash region needs for `data_size` bytes of data (a positive
 * multiple of the data block size): the superblock's block and every block
 * of the tree.  0, or -EINVAL (bad block sizes, a data size that is 0 or no
 * multiple of the data block size). */
int nri_verity_hash_size(uint64_t data_size, const nri_verity_options *o, uint64_t *ret);

/* Hashes bytes [data_offset, data_offset + data_size) of `data_path` and
 * writes the superblock and tree over bytes [hash_offset, hash_offset +
 * hash_size) of `hash_path` (which may be the same file; the two ranges
 * must not overlap); the rest of the hash range is zeros.  The root hash
 * goes to ret_root_hash.  Holes in the data are read as the zeros they are
 * without reading them.
 *
 * 0, -ENOSPC (hash_size < nri_verity_hash_size()), -EINVAL (bad options,
 * sizes or overlapping ranges, a range beyond its file) or the errno of
 * the I/O; every error is logged to stderr. */
int nri_verity_write(const char *data_path, uint64_t data_offset, uint64_t data_size, const char *hash_path,
                     uint64_t hash_offset, uint64_t hash_size, const nri_verity_options *o,
                     uint8_t ret_root_hash[NRI_VERITY_ROOT_HASH_SIZE]);
