/* plan-dedup.h: files of the same content, for nri_plan.dedup_dir
 * (plan-dedup.c).  Private to plan.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum { NRI_CONTENT_HASH_SIZE = 32 }; /* SHA-256 */

/* ext4's limit of names for one inode (EXT4_LINK_MAX): a content seen
 * more often starts a new inode. */
#define NRI_CONTENT_MAX_LINKS 65000

typedef struct content_slot {
        uint64_t size;
        mode_t perm; /* the permission bits: the executable bit is part of the key */
        uint8_t hash[NRI_CONTENT_HASH_SIZE];
        char *target; /* owned, the first name; NULL: empty */
        size_t id;
        uint32_t links;
} content_slot;

/* The first file of each (size, perm): only a file whose size and
 * permission bits another one has is read to hash it (and the first one
 * then too, opened again by its source path), so a closure of distinct
 * sizes costs no read at all. */
typedef struct size_slot {
        uint64_t size;
        mode_t perm;
        dev_t dev;
        ino_t ino;
        char *source; /* owned; NULL: empty */
        char *target; /* owned */
        size_t id;
        bool hashed; /* its content is in the content map */
} size_slot;

typedef struct content_map {
        content_slot *slots;
        size_t n, cap;
        size_slot *sizes;
        size_t n_sizes, cap_sizes;
        unsigned char *buf; /* the read buffer of content_hash() */
} content_map;

/* The SHA-256 of the `size` bytes of the file open as `fd`, read with
 * pread() (its offset stays where it is). */
int content_hash(content_map *m, int fd, uint64_t size, uint8_t ret[NRI_CONTENT_HASH_SIZE]);

/* (size, perm, hash) -> the first target with that content; *ret its slot
 * (target == NULL when new). */
int content_lookup(content_map *m, uint64_t size, mode_t perm, const uint8_t hash[NRI_CONTENT_HASH_SIZE],
                   content_slot **ret);
/* (size, perm) -> the first file of them; *ret its slot (source == NULL
 * when new). */
int size_lookup(content_map *m, uint64_t size, mode_t perm, size_slot **ret);
void content_map_free(content_map *m);
