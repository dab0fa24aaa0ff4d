/* Fuzz target: the layout arithmetic, nri_layout_compute, on partitions read
 * from the input bytes.  Input: 4 bytes sector size selector + 8 bytes image
 * size, then per partition 4×8 bytes of sizes, 2×4 bytes of weights, 4 bytes
 * of priority and 8 bytes of content_min (little endian).  Sizes are mostly
 * left as they come (any uint64_t, NRI_LAYOUT_UNSET included), so the
 * overflow paths are reached.
 *
 * Checks what layout.h promises on success: every kept partition lies inside
 * [start, end), in order, aligned to the grain, no overlap, each at least its
 * minimum and at most its maximum; the image a multiple of the grain. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nix-repart-image/layout.h"

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

/* A size: often a "reasonable" value, sometimes raw. */
static uint64_t size_of(uint64_t raw) {
        switch (raw & 3) {
        case 0:
                return NRI_LAYOUT_UNSET;
        case 1:
                return raw >> 2; /* anything up to 2^62 */
        case 2:
                return (raw >> 2) & ((UINT64_C(1) << 36) - 1); /* up to 64 GiB */
        default:
                return raw;
        }
}

#define MAX_PARTS 256

#include <inttypes.h>
#include <stdio.h>

static void dump(const char *what, const nri_layout_part *parts, size_t n, const nri_layout_disk *disk,
                 uint32_t sector, uint64_t image_size) {
        fprintf(stderr, "fuzz-layout: %s\nsector %" PRIu32 " image_size %" PRIu64 "\n", what, sector, image_size);
        if (disk)
                fprintf(stderr, "disk: grain %" PRIu64 " size %" PRIu64 " start %" PRIu64 " end %" PRIu64 "\n",
                        disk->grain, disk->image_size, disk->start, disk->end);
        for (size_t i = 0; i < n; i++) {
                const nri_layout_part *p = &parts[i];
                fprintf(stderr,
                        "%zu: min %" PRIu64 " max %" PRIu64 " pmin %" PRIu64 " pmax %" PRIu64 " w %" PRIu32
                        " pw %" PRIu32 " prio %" PRId32 " content %" PRIu64 " -> dropped %d offset %" PRIu64
                        " size %" PRIu64 " padding %" PRIu64 "\n",
                        i, p->size_min, p->size_max, p->padding_min, p->padding_max, p->weight, p->padding_weight,
                        p->priority, p->content_min, p->dropped, p->offset, p->size, p->padding);
        }
        abort();
}
#define CHECK(cond) \
        do { \
                if (!(cond)) \
                        dump(#cond, parts, n, r == 0 ? &disk : NULL, sector, image_size); \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const uint32_t sectors[] = {512, 4096, 1024, 2048, 8192, 65536, 0, 513, 131072, 256};
        const uint8_t *d = data;
        size_t left = size;
        uint32_t sector = (uint32_t)take(&d, &left, 4);
        sector = (sector & 0x80000000u) ? sector : sectors[sector % (sizeof(sectors) / sizeof(*sectors))];
        uint64_t image_size = size_of(take(&d, &left, 8));

        nri_layout_part parts[MAX_PARTS];
        size_t n = 0;
        while (left > 0 && n < MAX_PARTS) {
                nri_layout_part *p = &parts[n++];
                memset(p, 0, sizeof(*p));
                p->size_min = size_of(take(&d, &left, 8));
                p->size_max = size_of(take(&d, &left, 8));
                p->padding_min = size_of(take(&d, &left, 8));
                p->padding_max = size_of(take(&d, &left, 8));
                p->weight = (uint32_t)take(&d, &left, 4);
                p->padding_weight = (uint32_t)take(&d, &left, 4);
                p->priority = (int32_t)take(&d, &left, 4);
                uint64_t c = take(&d, &left, 8);
                p->content_min = (c & 1) ? 0 : size_of(c >> 1);
                if (p->content_min == NRI_LAYOUT_UNSET)
                        p->content_min = 0;
        }

        nri_layout_disk disk;
        size_t failed = 0;
        nri_arena *a = nri_arena_new();
        nri_error err = {0};
        int r = nri_layout_compute(parts, n, sector, image_size, &disk, &failed, a, &err);
        if (r < 0) {
                CHECK(r == -ENOSPC || r == -EINVAL || r == -EOVERFLOW);
                CHECK(!(failed != SIZE_MAX && failed >= n));
                CHECK(err.message != NULL);
                nri_arena_free(a);
                return 0;
        }
        nri_arena_free(a);
        CHECK(!(disk.grain == 0 || disk.image_size % disk.grain != 0 || disk.start > disk.end || disk.end > disk.image_size));
        uint64_t prev_end = disk.start;
        for (size_t i = 0; i < n; i++) {
                const nri_layout_part *p = &parts[i];
                if (p->dropped)
                        continue;
                /* Offsets and sizes aligned to the grain (sectors over 4096,
                 * which once left them on 4096 only, are refused:
                 * corpus/layout/sector-8192-*). */
                CHECK(p->offset >= prev_end);
                CHECK(p->offset % disk.grain == 0 && p->size % disk.grain == 0);
                CHECK(!(p->size < NRI_LAYOUT_HARD_MIN_SIZE));
                CHECK(!(p->size > disk.end - p->offset || p->padding > disk.end - p->offset - p->size));
                CHECK(!(p->content_min && p->size < p->content_min));
                /* SizeMaxBytes= rounded up to the grain, as the layout rounds it. */
                uint64_t max_up = p->size_max > UINT64_MAX - disk.grain ? UINT64_MAX
                                  : (p->size_max + disk.grain - 1) / disk.grain * disk.grain;
                CHECK(!(p->size_max != NRI_LAYOUT_UNSET && p->size > max_up && p->size_max >= p->size_min &&
                        p->size_max >= NRI_LAYOUT_HARD_MIN_SIZE && p->content_min <= p->size_max));
                prev_end = p->offset + p->size + p->padding;
        }
        return 0;
}
