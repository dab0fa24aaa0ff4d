/* fat-fill-internal.h: the state of the FAT filler (fat-fill.h), shared by
 * fat-fill.c (names, slots, clusters) and fat-fill-write.c (what goes to
 * the disk).  Private to plugin/builder/. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fat-fill.h"
#include "fat-short.h"
#include "log.h"

#define ENTRY 32
#define ATTR_LFN 0x0f
#define ATTR_DIR 0x10
#define ATTR_ARCHIVE 0x20
#define LFN_CHARS 13
#define LFN_LAST 0x40

typedef struct dir {
        char *name;      /* NULL for the root */
        size_t parent;   /* for messages */
        uint32_t first;  /* first cluster; 0 for the root (as ".." names it) */
        uint32_t *chain; /* its clusters (none for a FAT12/16 root) */
        size_t n_chain, cap_chain;
        uint32_t base, used, capacity; /* slots: on disk before, in use, room */
        uint32_t pending;              /* clusters it grew by that mtools has not given out yet */
        /* mtools' cache of the directory (dirCache.c), as an mtools
         * program that reads it from the disk fills it: the hashes of its
         * names, and their bitmap (made when first needed). */
        uint32_t *hashes;
        size_t n_hashes, cap_hashes;
        uint32_t (*bitmap)[128];
        /* The program writing to it now: how many times it looked for a
         * place for a name (the first time, in a cache it has just made,
         * it reads the whole directory; later it trusts the bitmap), and
         * whether it wrote a name without a long one (whose long name its
         * cache then hashes as ""). */
        unsigned lookups;
        bool wrote_short_only;
        uint8_t *slots; /* slots [base, used), ENTRY bytes each */
        size_t cap_slots;
} dir;

/* A name a directory holds, or (MEMO) the short name a taken one led to. */
enum { KEY_LONG = 1, KEY_SHORT, KEY_MEMO };

typedef struct key {
        char *text; /* NULL: empty slot */
        uint64_t hash;
        size_t dir;
        int kind;
        size_t owner;     /* KEY_LONG, KEY_SHORT: whose (index into names) */
        uint8_t memo[11]; /* KEY_MEMO: the short name last chosen */
} key;

struct nri_fat_fill {
        nri_vfat_geometry g;
        const char *what;
        nri_fat_names *names_cp;
        uint8_t time[2], date[2]; /* mk_entry()'s timestamp */
        uint8_t label[11];        /* the root's volume label entry, if dirs[0].base */
        uint32_t per_cluster;     /* entries in a cluster */
        uint32_t first_free;      /* the first cluster this writer gives out */
        uint32_t next;            /* the next one */
        uint32_t *fat;            /* values of clusters [2, next) */
        size_t cap_fat;
        dir *dirs;
        size_t n_dirs, cap_dirs;
        key *keys;
        size_t n_keys, cap_keys;
        /* Every name written, for messages: its directory and name. */
        struct named {
                size_t dir;
                char *name;
        } * names;
        size_t n_names, cap_names;
};

/* An error about the file system being filled (f->what, log.h). */
#define fail(f, r, fmt, ...) log_error_errno((r), "%s: " fmt, (f)->what, ##__VA_ARGS__)

/* Little-endian fields of entries and FATs. */
static inline void put16(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
}

static inline void put32(uint8_t *p, uint32_t v) {
        put16(p, v);
        put16(p + 2, v >> 16);
}
