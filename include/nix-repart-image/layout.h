/* layout.h: where each partition goes and how large it gets.
 *
 * Pure arithmetic, no I/O: systemd-repart 252's sizing and placement for a
 * fresh image (--empty=create), checked against the real program.  Given the
 * partitions' size constraints in definition order, it decides the image size
 * (for --size=auto), the first and last usable LBA the GPT header will hold,
 * which partitions are dropped by Priority= when a fixed size is too small,
 * and each partition's offset, size and padding (the free space left after
 * it).  All values are bytes unless the name says LBA. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "error.h"

/* "Unset", for sizes and for the image size (= --size=auto); the same value
 * as NRI_SIZE_UNSET in spec.h. */
#define NRI_LAYOUT_UNSET UINT64_MAX

/* systemd-repart's constants. */
#define NRI_LAYOUT_DEFAULT_MIN_SIZE (UINT64_C(10) * 1024 * 1024) /* SizeMinBytes= when unset */
#define NRI_LAYOUT_HARD_MIN_SIZE UINT64_C(4096)                  /* no partition is smaller */
#define NRI_LAYOUT_GPT_METADATA_SIZE (UINT64_C(1044) * 1024)     /* what --size=auto adds */
#define NRI_LAYOUT_DEFAULT_WEIGHT UINT32_C(1000)
/* The partition entries of the GPT libfdisk creates: at most this many
 * partitions. */
#define NRI_GPT_ENTRIES 128

typedef struct nri_layout_part {
        /* In.  SizeMinBytes=, SizeMaxBytes=, PaddingMinBytes=,
         * PaddingMaxBytes= as written or as already rounded (the rounding
         * systemd-repart applies when it parses them — minimums down, maximums
         * up, to 4096 — is applied here again, which changes nothing if it was
         * done before); NRI_LAYOUT_UNSET when not given. */
        uint64_t size_min, size_max, padding_min, padding_max;
        uint32_t weight, padding_weight; /* Weight= (default 1000), PaddingWeight= (default 0) */
        int32_t priority;                /* Priority=: > 0 may be dropped when space is short */
        /* The smallest size the file system and its content need, or 0: for a
         * formatted partition at least the format's minimum (ext4: 1 MiB in
         * 252), with Minimize= the measured or guessed size.  It raises the
         * partition's minimum like CopyBlocks= does in systemd-repart; more
         * than SizeMaxBytes= allows is an error. */
        uint64_t content_min;
        /* No 10 MiB default for an unset SizeMinBytes=: a minimized read-only
         * file system or hash tree cannot use more than its content (newer
         * systemd-repart's partition_min_size(); 252 had no Minimize=). */
        bool no_default_min;

        /* Out. */
        bool dropped; /* by Priority=: not in the table, not in the JSON */
        uint64_t offset, size, padding;
} nri_layout_part;

/* The disk as the GPT will describe it. */
typedef struct nri_layout_disk {
        uint32_t sector_size;
        uint64_t grain;      /* 4096: every offset and size is a multiple */
        uint64_t image_size; /* a multiple of the grain */
        /* First and last usable LBA as libfdisk writes them for a new GPT
         * with 128 entries (systemd-repart leaves them to libfdisk). */
        uint64_t first_lba, last_lba;
        /* The byte range partitions are placed in: the usable LBAs, inwards
         * to the grain.  Empty (start == end) when the image is too small. */
        uint64_t start, end;
} nri_layout_disk;

/* The geometry of a new GPT on an image of `image_size` bytes (a multiple of
 * the sector size).  0, or -EINVAL for a sector size that is not 512, 1024,
 * 2048 or 4096 (systemd-repart's) or an image too small for two GPTs. */
int nri_layout_disk_geometry(uint32_t sector_size, uint64_t image_size, nri_layout_disk *ret);

/* Lays out `parts` (definition order) on an image of `image_size` bytes,
 * rounded up to the grain as systemd-repart rounds --size=, or of the size
 * --size=auto gives when NRI_LAYOUT_UNSET.  Fills in each part's out fields
 * and *ret_disk.
 *
 * Returns 0; or -ENOSPC when a partition's content needs more than its
 * SizeMaxBytes= allows, or the partitions do not fit a fixed size even after
 * dropping by Priority=; -EINVAL for a bad sector size; -EOVERFLOW for sizes
 * past 2^64.  On failure *ret_failed is the index of the partition to blame
 * (SIZE_MAX when none is) and *err (when not NULL; its message allocated
 * from `a`) holds a sentence about it without its name ("needs … but …"),
 * for the caller to prefix; out fields and *ret_disk are then left
 * alone. */
int nri_layout_compute(nri_layout_part *parts, size_t n, uint32_t sector_size, uint64_t image_size,
                       nri_layout_disk *ret_disk, size_t *ret_failed, nri_arena *a, nri_error *err);
