/* vfat-geometry.c: a FAT's layout as mkfs.fat 4.2 works it out
 * (establish_params(), setup_tables()), and Minimize=guess for vfat
 * (vfat-geometry.h).  Pure arithmetic. */
#include "vfat-geometry.h"

#include <errno.h>
#include <stdbool.h>

#include "nix-repart-image/macro.h"

#define MAX_CLUST_12 4084u
#define MIN_CLUST_16 4087u
#define MAX_CLUST_16 65524u
#define MIN_CLUST_32 65525u
#define MAX_CLUST_32 268435446u
/* mformat refuses a FAT32 with fewer clusters than this (and a FAT16 with
 * fewer than 4096): mtools' FAT16 and FAT32 minimums. */
#define MTOOLS_MIN_CLUST_32 0xfff5u
#define MTOOLS_MIN_CLUST_16 4096u
#define NR_FATS 2u

static uint32_t cdiv(int64_t a, int64_t b) {
        return (uint32_t)((a + b - 1) / b);
}

static uint32_t align_object(bool align, uint32_t sectors, uint32_t cluster_size) {
        return align ? (sectors + cluster_size - 1) & ~(cluster_size - 1) : sectors;
}

/* What mkfs.fat decides before it counts clusters. */
typedef struct params {
        uint64_t size;
        uint32_t ss;       /* sector size */
        uint32_t size_fat; /* 12, 16, 32; 0: mkfs.vfat picks 12 or 16 */
        bool by_user;      /* -F 32: a FAT32 below its usual minimum of clusters */
        uint32_t heads, spt, media;
        uint32_t reserved, root_entries, root_dir_sectors, num_sectors;
        uint8_t cluster_size;
        uint32_t max_cluster_size;
        bool align; /* the FATs and the data aligned to clusters */
} params;

/* The device reports no geometry: the SD card recommendation below 256 MiB
 * (512-byte sectors), LBA-assist translation above.  A loop device with an
 * offset is not a "fixed" disk to mkfs.fat, so it gets the floppy formats
 * when the size is one of theirs. */
static void device_geometry(params *p) {
        static const struct {
                uint32_t kib, spt, heads, media, cluster_size, root_entries;
        } floppies[] = {
            {360, 9, 2, 0xfd, 2, 112},   {720, 9, 2, 0xf9, 2, 112},   {1200, 15, 2, 0xf9, 1, 224},
            {1440, 18, 2, 0xf0, 1, 224}, {2880, 36, 2, 0xf0, 2, 224},
        };
        uint64_t total = p->size / p->ss;

        if (total <= 524288) {
                p->heads = total <= 32768 ? 2 : total <= 65536 ? 4 : total <= 262144 ? 8 : 16;
                p->spt = total <= 4096 ? 16 : 32;
        } else {
                p->heads = total <= 16 * 63 * 1024    ? 16
                           : total <= 32 * 63 * 1024  ? 32
                           : total <= 64 * 63 * 1024  ? 64
                           : total <= 128 * 63 * 1024 ? 128
                                                      : 255;
                p->spt = 63;
        }
        p->media = 0xf8;
        p->cluster_size = 4; /* the starting point for FAT12 and FAT16 */
        p->root_entries = 512;
        for (size_t i = 0; i < ELEMENTSOF(floppies); i++)
                if (p->size / 1024 == floppies[i].kib) {
                        p->spt = floppies[i].spt;
                        p->heads = floppies[i].heads;
                        p->media = floppies[i].media;
                        p->cluster_size = (uint8_t)floppies[i].cluster_size;
                        p->root_entries = floppies[i].root_entries;
                }
}

/* The FAT type (512 MiB and more: FAT32), FAT32's cluster size by size,
 * the reserved sectors, the root directory, the whole tracks. */
static void fat_type(params *p, uint8_t sectors_per_cluster) {
        uint64_t total = p->size / p->ss;

        if (!p->size_fat && p->size >= UINT64_C(512) * 1024 * 1024)
                p->size_fat = 32;
        if (p->size_fat == 32)
                p->cluster_size = total > UINT64_C(32) * 1024 * 1024 * 2   ? 64
                                  : total > UINT64_C(16) * 1024 * 1024 * 2 ? 32
                                  : total > UINT64_C(8) * 1024 * 1024 * 2  ? 16
                                  : total > 260 * 1024 * 2                 ? 8
                                                                           : 1;
        p->reserved = p->size_fat == 32 ? 32 : 1;
        p->root_entries = p->size_fat == 32 ? 0 : p->root_entries;
        p->root_dir_sectors = cdiv((int64_t)p->root_entries * 32, p->ss);
        p->num_sectors = total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
        p->num_sectors = p->num_sectors / p->spt * p->spt; /* whole tracks, "needed by DOS and mtools" */
        p->align = p->num_sectors > 8192;
        p->max_cluster_size = 128;
        if (sectors_per_cluster) {
                p->cluster_size = sectors_per_cluster;
                p->max_cluster_size = sectors_per_cluster;
        }
}

/* For one cluster size, the clusters and FAT length of each FAT type (0
 * clusters: that type does not fit). */
typedef struct counts {
        uint32_t clusters[3], fat_length[3]; /* FAT12, FAT16, FAT32 */
} counts;

static counts count_clusters(const params *p) {
        uint32_t cs = p->cluster_size, ss = p->ss;
        uint32_t fatdata32 = p->num_sectors - align_object(p->align, p->reserved, cs);
        uint32_t fatdata1216 = fatdata32 - align_object(p->align, p->root_dir_sectors, cs);
        uint32_t c, len, max;
        counts k;

        c = (uint32_t)(2 * ((int64_t)fatdata1216 * ss + NR_FATS * 3) / (2 * (int64_t)cs * ss + NR_FATS * 3));
        len = align_object(p->align, cdiv(((int64_t)(c + 2) * 3 + 1) >> 1, ss), cs);
        c = (fatdata1216 - NR_FATS * len) / cs;
        max = (uint32_t)((uint64_t)len * 2 * ss / 3);
        if (max > MAX_CLUST_12)
                max = MAX_CLUST_12;
        k.clusters[0] = c > max ? 0 : c;
        k.fat_length[0] = len;

        c = (uint32_t)(((int64_t)fatdata1216 * ss + NR_FATS * 4) / ((int64_t)cs * ss + NR_FATS * 2));
        len = align_object(p->align, cdiv((int64_t)(c + 2) * 2, ss), cs);
        c = (fatdata1216 - NR_FATS * len) / cs;
        max = (uint32_t)((uint64_t)len * ss / 2);
        if (max > MAX_CLUST_16)
                max = MAX_CLUST_16;
        k.clusters[1] = c > max || c < MIN_CLUST_16 ? 0 : c;
        k.fat_length[1] = len;

        c = (uint32_t)(((int64_t)fatdata32 * ss + NR_FATS * 8) / ((int64_t)cs * ss + NR_FATS * 4));
        len = align_object(p->align, cdiv((int64_t)(c + 2) * 4, ss), cs);
        c = (fatdata32 - NR_FATS * len) / cs;
        max = (uint32_t)((uint64_t)len * ss / 4);
        if (max > MAX_CLUST_32)
                max = MAX_CLUST_32;
        k.clusters[2] = c > max || (c < MIN_CLUST_32 && !(p->by_user && p->size_fat == 32)) ? 0 : c;
        k.fat_length[2] = len;
        return k;
}

/* The smallest cluster size from p->cluster_size on (doubling) for which
 * the FAT type asked for fits; *k its counts. */
static void choose_cluster_size(params *p, counts *k) {
        do {
                *k = count_clusters(p);
                if ((k->clusters[0] && (p->size_fat == 0 || p->size_fat == 12)) ||
                    (k->clusters[1] && (p->size_fat == 0 || p->size_fat == 16)) ||
                    (k->clusters[2] && p->size_fat == 32))
                        return;
                p->cluster_size = (uint8_t)(p->cluster_size << 1);
        } while (p->cluster_size && p->cluster_size <= p->max_cluster_size);
}

/* `fat_bits` 32 is `mkfs.vfat -F 32`, 0 is `mkfs.vfat` without -F;
 * `sectors_per_cluster` non-zero is `-s`. */
static int mkfs_fat_layout(uint64_t size, uint32_t ss, uint32_t fat_bits, uint8_t sectors_per_cluster,
                           nri_vfat_geometry *ret) {
        params p = {.size = size, .ss = ss, .size_fat = fat_bits, .by_user = fat_bits == 32};
        counts k = {0};
        uint32_t clusters, fat_length, t;
        uint64_t start_data;

        device_geometry(&p);
        fat_type(&p, sectors_per_cluster);
        /* Below this the unsigned arithmetic that follows would wrap. */
        if (p.num_sectors <=
            align_object(p.align, p.reserved, 128) + align_object(p.align, p.root_dir_sectors, 128) + 8)
                return -ERANGE;
        choose_cluster_size(&p, &k);
        if (!p.size_fat)
                p.size_fat = k.clusters[1] > k.clusters[0] ? 16 : 12;
        t = p.size_fat == 12 ? 0 : p.size_fat == 16 ? 1 : 2;
        clusters = k.clusters[t];
        fat_length = k.fat_length[t];
        if (!clusters || !p.cluster_size)
                return -ERANGE;

        p.reserved = align_object(p.align, p.reserved, p.cluster_size);
        if (p.size_fat != 32 && p.align)
                p.root_entries = align_object(p.align, p.root_dir_sectors, p.cluster_size) * (ss >> 5);
        p.root_dir_sectors = cdiv((int64_t)p.root_entries * 32, ss);

        /* mkfs.fat's "Too few blocks for viable filesystem". */
        start_data = (uint64_t)(p.reserved + NR_FATS * fat_length + p.root_dir_sectors) * (ss / 512);
        if (size / 1024 < (start_data + 1) / 2 + 32)
                return -ERANGE;

        *ret = (nri_vfat_geometry){
            .sector_size = ss,
            .total_sectors = p.num_sectors,
            .sectors_per_track = p.spt,
            .heads = p.heads,
            .hidden_sectors = 0,
            .fat_bits = p.size_fat,
            .sectors_per_cluster = p.cluster_size,
            .reserved_sectors = p.reserved,
            .fats = NR_FATS,
            .fat_sectors = fat_length,
            .root_dir_sectors = p.size_fat == 32 ? 0 : p.root_dir_sectors,
            .clusters = clusters,
            .media = (uint8_t)p.media,
        };
        return 0;
}

int nri_vfat_geometry_for(uint64_t size, uint32_t sector_size, nri_vfat_geometry *ret) {
        nri_vfat_geometry g;
        int r;

        if (sector_size == 0)
                sector_size = 512;
        if (sector_size < 512 || sector_size > 4096 || (sector_size & (sector_size - 1)))
                return -EINVAL;

        r = mkfs_fat_layout(size, sector_size, 32, 0, &g);
        if (r < 0 || g.clusters < MTOOLS_MIN_CLUST_32)
                r = mkfs_fat_layout(size, sector_size, 0, 0, &g);
        /* A FAT16 with 4087 to 4095 clusters is one mformat cannot make:
         * the same with clusters half as large (`mkfs.vfat -s`) has twice
         * as many. */
        if (r >= 0 && g.fat_bits == 16 && g.clusters < MTOOLS_MIN_CLUST_16 && g.sectors_per_cluster > 1)
                r = mkfs_fat_layout(size, sector_size, 0, (uint8_t)(g.sectors_per_cluster / 2), &g);
        if (r < 0)
                return r;
        if (g.fat_bits == 16 && g.clusters < MTOOLS_MIN_CLUST_16)
                return -ERANGE;
        *ret = g;
        return 0;
}

/* ---- Minimize=guess ---------------------------------------------------- */

/* Whether a FAT of `g` holds content of these stats, as far as the stats
 * tell: an upper bound of the clusters it takes against the data clusters. */
static bool content_fits(const nri_plan_stats *st, const nri_vfat_geometry *g) {
        uint64_t cluster = (uint64_t)g->sector_size * g->sectors_per_cluster;
        uint64_t names = st->files + st->directories, data, dirs;

        if (cluster <= 4096)
                data = st->blocks_4k * 4096 / cluster; /* a cluster divides 4096 */
        else
                data = (st->bytes + st->files * (cluster - 1)) / cluster;
        /* Per name an entry, long-name entries for its length (13 UTF-16 units
         * each, at most one per byte) plus one; "." and ".." and a cluster's
         * slack per directory; the root's entries are counted in too. */
        dirs =
            (32 * (2 * names + st->name_bytes / 13 + names + 2 * st->directories) + cluster - 1) / cluster +
            st->directories + 1;
        if (data + dirs > g->clusters)
                return false;
        /* FAT12/16: the root directory is a fixed table, not clusters.  Per
         * name its entry and at most one long-name entry per byte / 13, plus
         * one; and the volume label's entry. */
        if (g->root_dir_sectors > 0 && 3 * st->root_names + st->root_name_bytes / 13 + 1 >
                                           (uint64_t)g->root_dir_sectors * g->sector_size / 32)
                return false;
        return true;
}

int nri_vfat_min_size(const nri_plan_stats *st, uint32_t sector_size, uint64_t *ret) {
        uint64_t names = st->files + st->directories;
        uint64_t occupied =
            st->blocks_4k * 4096 + 32 * (3 * names + st->name_bytes / 13) + 4096 * st->directories;
        uint64_t size = (occupied + occupied / 2 + 4095) / 4096 * 4096;
        nri_vfat_geometry g;

        for (;;) {
                if (size > (UINT64_C(1) << 44)) /* 16 TiB: FAT32's 2^28 clusters of 64 KiB */
                        return -ERANGE;
                if (nri_vfat_geometry_for(size, sector_size ? sector_size : 512, &g) == 0 &&
                    content_fits(st, &g))
                        break;
                size += size / 64 >= 4096 ? size / 64 / 4096 * 4096 : 4096; /* grow by ~1.5% */
        }
        *ret = size;
        return 0;
}
