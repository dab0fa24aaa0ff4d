/* vfat-geometry.h: the layout of a FAT file system of a given size — pure
 * arithmetic, no I/O (vfat-geometry.c; fuzzed by tests/fuzz/fuzz-vfat.c).
 *
 * systemd-repart 252 formats a vfat with `mkfs.vfat -F 32` on a loop
 * device; the writer (vfat.h) has mformat make exactly that layout, which
 * is worked out here as mkfs.fat 4.2 works it out. */
#pragma once

#include <stdint.h>

#include "plan.h"

/* The layout mkfs.fat 4.2 chooses for `mkfs.vfat -F 32` on a device of
 * `size` bytes with `sector_size`-byte sectors that reports no geometry and
 * no partition start, as systemd-repart's loop device does; where mformat
 * cannot make that, the layout of `mkfs.vfat` without -F (and, for a FAT16
 * of 4087 to 4095 clusters, with -s of half its cluster size). */
typedef struct nri_vfat_geometry {
        uint32_t sector_size;
        uint32_t total_sectors; /* the partition's sectors, rounded down to a whole track */
        uint32_t sectors_per_track, heads;
        uint32_t hidden_sectors; /* 0 */
        uint32_t fat_bits;       /* 12, 16 or 32 */
        uint32_t sectors_per_cluster;
        uint32_t reserved_sectors; /* before the first FAT, incl. the boot sector */
        uint32_t fats;             /* 2 */
        uint32_t fat_sectors;      /* the length of one FAT */
        uint32_t root_dir_sectors; /* FAT12/16: the fixed root directory; FAT32: 0 */
        uint32_t clusters;         /* data clusters */
        uint8_t media;             /* 0xf8; a floppy's for 360K, 720K, 1200K, 1440K, 2880K */
} nri_vfat_geometry;

/* Returns 0, or -EINVAL (sector size not 512…4096 or not a power of two) or
 * -ERANGE (too small or too large for any FAT). */
int nri_vfat_geometry_for(uint64_t size, uint32_t sector_size, nri_vfat_geometry *ret);

/* Minimize=guess for a vfat partition (systemd-repart 252 has no Minimize=;
 * this follows the rule the ext4 writer uses: what the content occupies,
 * plus half).  The content's clusters are bounded from the stats — each
 * file rounded up to 4 KiB, which covers the 512 B to 4 KiB clusters of
 * every FAT up to 8 GiB, or by a whole cluster per file above — plus its
 * directories (one cluster each, and per name its entry and long-name
 * entries); half of that is added, the result rounded up to 4096, and then
 * grown until the FAT that nri_vfat_geometry_for() lays out for that size
 * holds the content.  The plan should be measured with ignore_hardlinks
 * set: FAT stores every name's data.  A FAT12/16 must also hold the root's
 * names in its fixed root directory.  `sector_size` as in nri_vfat_options
 * (0 means 512).  0, -ERANGE (more than any FAT holds). */
int nri_vfat_min_size(const nri_plan_stats *st, uint32_t sector_size, uint64_t *ret);
