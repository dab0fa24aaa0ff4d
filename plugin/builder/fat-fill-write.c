/* fat-fill-write.c: what the FAT filler worked out, onto the disk
 * (nri_fat_fill_write(), fat-fill.h): the directories, both FATs and the
 * FAT32 information sector, after checking that mformat made the file
 * system the filler expects. */
#include "fat-fill-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nix-repart-image/macro.h"
#include "range.h"

static int pwrite_all(nri_fat_fill *f, int fd, const void *buf, size_t n, uint64_t off) {
        int r = nri_pwrite_all(fd, buf, n, off);

        return r < 0 ? fail(f, r, "cannot write the file system: %m") : 0;
}

static int pread_all(nri_fat_fill *f, int fd, void *buf, size_t n, uint64_t off) {
        int r = nri_pread_all(fd, buf, n, off);

        if (r == -EIO)
                return fail(f, r, "cannot read the file system mformat made: short read");
        return r < 0 ? fail(f, r, "cannot read the file system mformat made: %m") : 0;
}

static uint32_t get_entry(const nri_fat_fill *f, const uint8_t *fat, uint32_t c) {
        if (f->g.fat_bits == 12) {
                uint32_t v = fat[c * 3 / 2] | (uint32_t)fat[c * 3 / 2 + 1] << 8;

                return c & 1 ? v >> 4 : v & 0xfff;
        }
        if (f->g.fat_bits == 16)
                return fat[c * 2] | (uint32_t)fat[c * 2 + 1] << 8;
        return (fat[c * 4] | (uint32_t)fat[c * 4 + 1] << 8 | (uint32_t)fat[c * 4 + 2] << 16 |
                (uint32_t)fat[c * 4 + 3] << 24) &
               0x0fffffff;
}

static void set_entry(const nri_fat_fill *f, uint8_t *fat, uint32_t c, uint32_t v) {
        if (f->g.fat_bits == 12) {
                uint8_t *p = fat + c * 3 / 2;

                if (c & 1) {
                        p[0] = (uint8_t)((p[0] & 0x0f) | (v & 0x0f) << 4);
                        p[1] = (uint8_t)(v >> 4);
                } else {
                        p[0] = (uint8_t)v;
                        p[1] = (uint8_t)((p[1] & 0xf0) | (v >> 8 & 0x0f));
                }
        } else if (f->g.fat_bits == 16) {
                put16(fat + c * 2, v);
        } else {
                /* fat32_encode(): the top four bits are kept. */
                put32(fat + c * 4, (v & 0x0fffffff) | ((uint32_t)fat[c * 4 + 3] & 0xf0) << 24);
        }
}

static int write_dir(nri_fat_fill *f, int fd, uint64_t offset, const dir *x) {
        uint64_t root =
            ((uint64_t)f->g.reserved_sectors + (uint64_t)f->g.fats * f->g.fat_sectors) * f->g.sector_size;

        if (x->used == x->base)
                return 0;
        if (!x->n_chain) /* a FAT12/16 root: one area */
                return pwrite_all(f, fd, x->slots, (size_t)(x->used - x->base) * ENTRY,
                                  offset + root + (uint64_t)x->base * ENTRY);
        for (size_t k = 0; k < x->n_chain; k++) {
                uint32_t lo = (uint32_t)k * f->per_cluster, hi = lo + f->per_cluster;
                int r;

                lo = lo < x->base ? x->base : lo;
                hi = hi > x->used ? x->used : hi;
                if (lo >= hi)
                        continue;
                r = pwrite_all(f, fd, x->slots + (size_t)(lo - x->base) * ENTRY, (size_t)(hi - lo) * ENTRY,
                               offset + nri_fat_fill_data_offset(f, x->chain[k]) +
                                   (uint64_t)(lo - (uint32_t)k * f->per_cluster) * ENTRY);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The FAT32 information sector: where mtools looks for free clusters, and
 * how many there are (fat_write()). */
static int info_sector(nri_fat_fill *f, int fd, uint64_t offset, bool update) {
        uint8_t boot[64], info[512];
        uint64_t at;
        uint32_t count, pos;
        int r;

        r = pread_all(f, fd, boot, sizeof(boot), offset);
        if (r < 0)
                return r;
        if ((boot[44] | boot[45] << 8 | boot[46] << 16 | (uint32_t)boot[47] << 24) != 2)
                return fail(f, -EPROTO, "mformat put the root directory elsewhere than cluster 2");
        at = offset + (uint64_t)(boot[48] | boot[49] << 8) * f->g.sector_size;
        r = pread_all(f, fd, info, sizeof(info), at);
        if (r < 0)
                return r;
        count = info[488] | info[489] << 8 | info[490] << 16 | (uint32_t)info[491] << 24;
        pos = info[492] | info[493] << 8 | info[494] << 16 | (uint32_t)info[495] << 24;
        if (pos != 2)
                return fail(f, -EPROTO,
                            "mformat's information sector gives free clusters from %" PRIu32 ", not from 3",
                            pos);
        if (!update)
                return 0;
        if (count != UINT32_MAX)
                put32(info + 488, count - (f->next - f->first_free));
        put32(info + 492, f->next - 1);
        return pwrite_all(f, fd, info, sizeof(info), at);
}

int nri_fat_fill_write(nri_fat_fill *f, int fd, uint64_t offset) {
        const nri_vfat_geometry *g = &f->g;
        uint64_t fat_at = offset + (uint64_t)g->reserved_sectors * g->sector_size;
        /* The bytes of the entries of clusters 0 to next - 1. */
        size_t fat_bytes =
            g->fat_bits == 12 ? ((size_t)f->next - 1) * 3 / 2 + 2 : (size_t)f->next * (g->fat_bits / 8);
        uint64_t root = g->fat_bits == 32 ? offset + nri_fat_fill_data_offset(f, 2)
                                          : fat_at + (uint64_t)g->fats * g->fat_sectors * g->sector_size;
        uint8_t *fat = NULL, first[ENTRY];
        int r = 0;

        /* What mformat made is what the writer counted on: the root where
         * expected, holding the label (or nothing) and no more, no cluster
         * given out. */
        if (g->fat_bits == 32)
                r = info_sector(f, fd, offset, false);
        if (r >= 0 && f->dirs[0].base) {
                r = pread_all(f, fd, first, ENTRY, root);
                if (r >= 0 && (memcmp(first, f->label, 11) != 0 || first[11] != 0x08))
                        r = fail(f, -EPROTO, "mformat's volume label entry is not the one expected");
        }
        if (r >= 0)
                r = pread_all(f, fd, first, ENTRY, root + (uint64_t)f->dirs[0].base * ENTRY);
        if (r >= 0 && first[0] != 0)
                r = fail(f, -EPROTO, "mformat's root directory holds more than the volume label");
        if (r >= 0 && fat_bytes > (size_t)g->fat_sectors * g->sector_size)
                r = fail(f, -EPROTO, "the FAT is shorter than its clusters");
        if (r < 0)
                return r;

        for (size_t i = 0; i < f->n_dirs; i++)
                if (f->dirs[i].pending)
                        return fail(f, -EINVAL, "internal error: a directory was not flushed");
        fat = malloc(fat_bytes);
        if (!fat)
                return -ENOMEM;
        r = pread_all(f, fd, fat, fat_bytes, fat_at);
        for (uint32_t c = f->first_free; r >= 0 && c < f->next; c++)
                if (get_entry(f, fat, c) != 0)
                        r = fail(f, -EPROTO, "mformat gave out cluster %" PRIu32 " already", c);
        for (uint32_t c = 2; r >= 0 && c < f->next; c++)
                set_entry(f, fat, c, f->fat[c - 2]);
        for (uint32_t i = 0; r >= 0 && i < g->fats; i++)
                r = pwrite_all(f, fd, fat, fat_bytes,
                               fat_at + (uint64_t)i * g->fat_sectors * g->sector_size);
        free(fat);
        for (size_t i = 0; r >= 0 && i < f->n_dirs; i++)
                r = write_dir(f, fd, offset, &f->dirs[i]);
        if (r >= 0 && g->fat_bits == 32 && f->next > f->first_free)
                r = info_sector(f, fd, offset, true);
        return r;
}
