/* Fuzz target: a FAT's layout (vfat-geometry.h), nri_vfat_geometry_for()
 * and nri_vfat_min_size(), from the input bytes.  Input: 1 byte sector size
 * selector, 8 bytes size (little endian), then the totals of a plan (each
 * 8 bytes).
 *
 * Checks what a layout must be for mformat to make it and a kernel to read
 * it: a FAT type and cluster count mtools accepts, a power-of-two cluster
 * size, tables and data inside the track-rounded size, FATs long enough for
 * every cluster, a root directory only for FAT12/16; and that the size
 * Minimize=guess gives has a layout. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "vfat-geometry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t take(const uint8_t **d, size_t *left, size_t bytes) {
        uint64_t v = 0;

        for (size_t i = 0; i < bytes; i++) {
                v |= (uint64_t)(*left ? **d : 0) << (8 * i);
                if (*left) {
                        (*d)++;
                        (*left)--;
                }
        }
        return v;
}

#define CHECK(cond)                                                                                         \
        do {                                                                                                \
                if (!(cond)) {                                                                              \
                        fprintf(stderr, "fuzz-vfat: %s (size %" PRIu64 ", sector %" PRIu32 ")\n", #cond,    \
                                bytes, ss);                                                                 \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)

static void check_geometry(uint64_t bytes, uint32_t ss, const nri_vfat_geometry *g) {
        uint64_t used = (uint64_t)g->reserved_sectors + (uint64_t)g->fats * g->fat_sectors +
                        g->root_dir_sectors + (uint64_t)g->clusters * g->sectors_per_cluster;

        CHECK(g->sector_size == (ss ? ss : 512));
        CHECK((uint64_t)g->total_sectors * g->sector_size <= bytes);
        CHECK(g->sectors_per_track > 0 && g->total_sectors % g->sectors_per_track == 0);
        CHECK(g->sectors_per_cluster >= 1 && g->sectors_per_cluster <= 128 &&
              (g->sectors_per_cluster & (g->sectors_per_cluster - 1)) == 0);
        CHECK(g->fats == 2 && g->hidden_sectors == 0 && g->reserved_sectors >= 1);
        CHECK(used <= g->total_sectors);
        /* Every cluster and the two reserved entries have a FAT entry. */
        CHECK((uint64_t)g->fat_sectors * g->sector_size * 8 / g->fat_bits >= (uint64_t)g->clusters + 2);
        switch (g->fat_bits) {
        case 12:
                CHECK(g->clusters >= 1 && g->clusters <= 4084 && g->root_dir_sectors > 0);
                break;
        case 16:
                CHECK(g->clusters >= 4096 && g->clusters <= 65524 && g->root_dir_sectors > 0);
                break;
        case 32:
                CHECK(g->clusters >= 65525 && g->clusters <= 268435446 && g->root_dir_sectors == 0);
                break;
        default:
                CHECK(!"a FAT type");
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const uint32_t sector_sizes[] = {0, 512, 1024, 2048, 4096, 513, 8192, 256};
        const uint8_t *d = data;
        size_t left = size;
        uint32_t ss = sector_sizes[take(&d, &left, 1) % 8];
        uint64_t raw = take(&d, &left, 8), bytes;
        nri_vfat_geometry g;
        nri_plan_stats st = {0};
        uint64_t min = 0;
        int r;

        /* Mostly sizes FATs have (up to 16 TiB), sometimes anything. */
        bytes = raw & 1 ? raw >> 1 : (raw >> 1) % (UINT64_C(1) << 44);
        r = nri_vfat_geometry_for(bytes, ss, &g);
        CHECK(r == 0 || r == -EINVAL || r == -ERANGE);
        CHECK((r == -EINVAL) == (ss != 0 && (ss < 512 || ss > 4096 || (ss & (ss - 1)))));
        if (r == 0)
                check_geometry(bytes, ss, &g);

        if (r == -EINVAL)
                return 0;
        /* Minimize=guess: a size with a layout, or -ERANGE. */
        st.files = take(&d, &left, 8) % 1000000;
        st.directories = take(&d, &left, 8) % 100000;
        st.bytes = take(&d, &left, 8) % (UINT64_C(1) << 42);
        st.blocks_4k = st.bytes / 4096 + st.files;
        st.name_bytes = take(&d, &left, 8) % (UINT64_C(1) << 30);
        st.root_names = take(&d, &left, 8) % 100000;
        st.root_name_bytes = st.root_names * (take(&d, &left, 1) + 1);
        r = nri_vfat_min_size(&st, ss, &min);
        CHECK(r == 0 || r == -ERANGE);
        if (r == 0) {
                bytes = min;
                CHECK(min % 4096 == 0);
                CHECK(nri_vfat_geometry_for(min, ss, &g) == 0);
                check_geometry(min, ss, &g);
        }
        return 0;
}
