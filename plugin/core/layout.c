/* layout.c: systemd-repart 252's sizing and placement, for a fresh image.
 *
 * The steps follow src/partition/repart.c of systemd 252 (run(): determine
 * the auto size, allocate the minimums first-fit and drop by priority until
 * they fit, grow by weight, place), restricted to what a new image can hold:
 * no existing partitions, so a single free area with no partition before it.
 * Every rounding below is one repart does; the unit tests pin the results to
 * what systemd-repart 252 produced for the same definitions. */
#include "nix-repart-image/layout.h"
#include "nix-repart-image/macro.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* NRI_GPT_ENTRIES entries of 128 bytes, as libfdisk creates a GPT. */
#define GPT_ENTRIES_BYTES ((uint64_t)NRI_GPT_ENTRIES * 128)
/* libfdisk aligns the first usable LBA to 1 MiB, except on disks of at most
 * four times that, where it falls back to the physical sector. */
#define FDISK_ALIGNMENT (UINT64_C(1024) * 1024)

typedef struct part_state {
        uint64_t min_size, max_size, min_padding, max_padding;
        uint64_t size, padding; /* NRI_LAYOUT_UNSET until decided */
        bool dropped;
} part_state;

static uint64_t round_up(uint64_t v, uint64_t m) {
        if (v > UINT64_MAX - (m - 1))
                return UINT64_MAX; /* saturate, as repart's round_up_size does */
        return (v + m - 1) / m * m;
}

static uint64_t round_down(uint64_t v, uint64_t m) {
        return v / m * m;
}

static uint64_t less_by(uint64_t a, uint64_t b) {
        return a > b ? a - b : 0;
}

static uint64_t max_u64(uint64_t a, uint64_t b) {
        return a > b ? a : b;
}

static uint64_t min_u64(uint64_t a, uint64_t b) {
        return a < b ? a : b;
}

/* systemd's CLAMP(): the upper bound is tested first. */
static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi) {
        return v > hi ? hi : v < lo ? lo : v;
}

/* "104857600 bytes (100.0 MiB)" */
static const char *format_size(char buf[64], uint64_t v) {
        static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        double d = (double)v;
        size_t u = 0;

        if (v < 1024) {
                snprintf(buf, 64, "%" PRIu64 " bytes", v);
                return buf;
        }
        d /= 1024;
        while (d >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
                d /= 1024;
                u++;
        }
        snprintf(buf, 64, "%" PRIu64 " bytes (%.1f %s)", v, d, units[u]);
        return buf;
}

int nri_layout_disk_geometry(uint32_t sector_size, uint64_t image_size, nri_layout_disk *ret) {
        uint64_t ss = sector_size, entry_sectors, total, first, last, topology_first;
        nri_layout_disk d;

        if (ss < 512 || ss > 4096 || (ss & (ss - 1)) != 0)
                return -EINVAL;
        if (image_size % ss != 0)
                return -EINVAL;

        /* libfdisk's count_first_last_lba(): the UEFI minimum around the two
         * tables, then the topology's first LBA if it lies inside. */
        entry_sectors = GPT_ENTRIES_BYTES / ss;
        total = image_size / ss;
        if (total < 2 * entry_sectors + 4)
                return -EINVAL;
        first = entry_sectors + 2;
        last = total - 2 - entry_sectors;

        topology_first = FDISK_ALIGNMENT / ss;
        if (total <= topology_first * 4)
                topology_first = 1; /* physical sector = logical sector on an image file */
        if (first < topology_first && topology_first < last)
                first = topology_first;
        if (last < first)
                return -EINVAL;

        d = (nri_layout_disk){
            .sector_size = sector_size,
            .grain = max_u64(4096, ss),
            .image_size = image_size,
            .first_lba = first,
            .last_lba = last,
        };
        /* repart: the free area runs from the first usable byte rounded up to
         * the grain to the end of the last usable LBA rounded down. */
        d.start = round_up(first * ss, d.grain);
        d.end = round_down((last + 1) * ss, d.grain);
        if (d.end < d.start)
                d.end = d.start;

        *ret = d;
        return 0;
}

/* partition_min_size(): a new partition takes at least 4096 bytes, its
 * content, and SizeMinBytes= (10 MiB when unset, unless no_default_min), the
 * last two rounded up to the grain. */
static uint64_t min_size_of(const nri_layout_part *p, uint64_t size_min, uint64_t grain) {
        uint64_t sz = NRI_LAYOUT_HARD_MIN_SIZE;

        if (p->content_min > 0)
                sz = max_u64(sz, round_up(p->content_min, grain));
        if (size_min == NRI_LAYOUT_UNSET)
                size_min = p->no_default_min ? 1 : NRI_LAYOUT_DEFAULT_MIN_SIZE;
        return max_u64(round_up(size_min, grain), sz);
}

/* Sets up the constraints of each partition; refuses content that needs more
 * than SizeMaxBytes= lets the partition have. */
static int prepare(const nri_layout_part *parts, size_t n, uint64_t grain, part_state *st,
                   size_t *ret_failed, nri_arena *a, nri_error *err) {
        for (size_t i = 0; i < n; i++) {
                const nri_layout_part *p = &parts[i];
                uint64_t size_min = p->size_min, size_max = p->size_max;
                uint64_t padding_min = p->padding_min, padding_max = p->padding_max;

                /* config_parse_size4096(): minimums down, maximums up. */
                if (size_min != NRI_LAYOUT_UNSET)
                        size_min = round_down(size_min, 4096);
                if (size_max != NRI_LAYOUT_UNSET)
                        size_max = round_up(size_max, 4096);
                if (padding_min != NRI_LAYOUT_UNSET)
                        padding_min = round_down(padding_min, 4096);
                if (padding_max != NRI_LAYOUT_UNSET)
                        padding_max = round_up(padding_max, 4096);

                st[i] = (part_state){
                    .min_size = min_size_of(p, size_min, grain),
                    .max_size = UINT64_MAX,
                    .min_padding = padding_min != NRI_LAYOUT_UNSET ? padding_min : 0,
                    .max_padding = padding_max, /* UNSET is UINT64_MAX: no limit */
                    .size = NRI_LAYOUT_UNSET,
                    .padding = NRI_LAYOUT_UNSET,
                };

                if (size_max != NRI_LAYOUT_UNSET) {
                        /* partition_max_size(): SizeMaxBytes= down to the grain,
                         * but never below the minimum.  The minimum without the
                         * content is what the definition alone asks for; content
                         * beyond that and beyond SizeMaxBytes= would silently
                         * grow the partition past its maximum in repart. */
                        nri_layout_part bare = *p;
                        uint64_t cap;

                        bare.content_min = 0;
                        cap = max_u64(min_size_of(&bare, size_min, grain), round_down(size_max, grain));
                        if (st[i].min_size > cap) {
                                char need[64], have[64];

                                *ret_failed = i;
                                (void)nri_fail(
                                    a, err, NULL,
                                    "needs %s for its file system and content, but may be at most %s "
                                    "(SizeMaxBytes=%" PRIu64 ")",
                                    format_size(need, st[i].min_size), format_size(have, cap), size_max);
                                return -ENOSPC;
                        }
                        st[i].max_size = max_u64(st[i].min_size, round_down(size_max, grain));
                }
                if (st[i].max_padding < st[i].min_padding)
                        st[i].max_padding = st[i].min_padding; /* the parser refuses this; stay sane */
        }
        return 0;
}

/* partition_min_size_with_padding(): a new partition is placed aligned, so
 * its minimum and its minimum padding together round up to the grain. */
static uint64_t min_with_padding(const part_state *s, uint64_t grain) {
        if (s->min_size > UINT64_MAX - s->min_padding)
                return UINT64_MAX;
        return round_up(s->min_size + s->min_padding, grain);
}

/* determine_auto_size(). */
static int auto_size(const part_state *st, size_t n, uint64_t grain, uint64_t *ret) {
        uint64_t sum = round_up(NRI_LAYOUT_GPT_METADATA_SIZE, 4096);

        for (size_t i = 0; i < n; i++) {
                uint64_t m = min_with_padding(&st[i], grain);

                if (m > UINT64_MAX - sum)
                        return -EOVERFLOW;
                sum += m;
        }
        *ret = sum;
        return 0;
}

/* context_allocate_partitions() for one free area: first fit of each kept
 * partition's minimum.  Returns the index of the first that does not fit, or
 * n when all do. */
static size_t allocate(const part_state *st, size_t n, uint64_t area, uint64_t grain) {
        uint64_t allocated = 0;

        for (size_t i = 0; i < n; i++) {
                uint64_t required;

                if (st[i].dropped)
                        continue;
                required = min_with_padding(&st[i], grain);
                if (area - allocated < required)
                        return i;
                allocated += required;
        }
        return n;
}

/* context_drop_or_foreignize_one_priority(): drops every kept partition of
 * the highest priority, if that is above 0. */
static bool drop_one_priority(const nri_layout_part *parts, part_state *st, size_t n) {
        int32_t priority = 0;

        for (size_t i = 0; i < n; i++)
                if (!st[i].dropped && parts[i].priority > priority)
                        priority = parts[i].priority;
        if (priority <= 0)
                return false;

        for (size_t i = 0; i < n; i++)
                if (parts[i].priority >= priority)
                        st[i].dropped = true;
        return true;
}

/* scale_by_weight(): value × weight / weight_sum without overflow, never
 * above the exact result, and summing to at most value over all weights. */
static uint64_t scale_by_weight(uint64_t value, uint64_t weight, uint64_t weight_sum) {
        for (;;) {
                if (weight == 0)
                        return 0;
                if (weight == weight_sum)
                        return value;
                if (value <= UINT64_MAX / weight)
                        return value * weight / weight_sum;
                weight_sum = weight_sum / 2 + weight_sum % 2;
                weight /= 2;
        }
}

typedef enum grow_phase {
        /* A partition whose minimum is above its share takes its minimum. */
        PHASE_OVERCHARGE,
        /* A partition whose maximum is below its share takes its maximum. */
        PHASE_UNDERCHARGE,
        /* Everyone left takes its share, rounded down to the grain. */
        PHASE_DISTRIBUTE,
        _PHASE_MAX,
} grow_phase;

typedef struct grow_pool {
        uint64_t span, weight_sum, grain;
} grow_pool;

/* charge_size() and charge_weight(). */
static void charge(grow_pool *pool, uint64_t amount, uint32_t weight) {
        pool->span = less_by(pool->span, round_up(amount, pool->grain));
        pool->weight_sum -= weight;
}

/* Decides one value (a size or a padding) in `phase`, if its turn has come.
 * Returns true when a decision changes the shares of the rest, which makes
 * repart repeat the phase. */
static bool grow_one_value(grow_pool *pool, grow_phase phase, uint64_t *value, uint32_t weight, uint64_t lo,
                           uint64_t hi) {
        uint64_t share;

        if (*value != NRI_LAYOUT_UNSET)
                return false;

        share = scale_by_weight(pool->span, weight, pool->weight_sum);
        if (phase == PHASE_OVERCHARGE && lo > share) {
                *value = lo;
                charge(pool, *value, weight);
                return true;
        }
        if (phase == PHASE_UNDERCHARGE && hi < share) {
                *value = hi;
                charge(pool, *value, weight);
                return true;
        }
        if (phase == PHASE_DISTRIBUTE) {
                *value = clamp_u64(round_down(share, pool->grain), lo, hi);
                charge(pool, *value, weight);
        }
        return false;
}

/* context_grow_partitions_on_free_area() for the one area of a new image,
 * which has no partition before it. */
static void grow(const nri_layout_part *parts, part_state *st, size_t n, uint64_t area, uint64_t grain) {
        grow_pool pool = {.span = area, .grain = grain};

        for (size_t i = 0; i < n; i++)
                if (!st[i].dropped)
                        pool.weight_sum += (uint64_t)parts[i].weight + parts[i].padding_weight;

        for (grow_phase phase = 0; phase < _PHASE_MAX;) {
                bool again = false;

                /* Sizes and paddings are decided in one pass, partition by
                 * partition, each seeing what the ones before it took. */
                for (size_t i = 0; i < n; i++) {
                        if (st[i].dropped)
                                continue;
                        again |= grow_one_value(&pool, phase, &st[i].size, parts[i].weight, st[i].min_size,
                                                st[i].max_size);
                        again |= grow_one_value(&pool, phase, &st[i].padding, parts[i].padding_weight,
                                                st[i].min_padding, st[i].max_padding);
                }
                if (!again)
                        phase++;
        }

        /* context_grow_partition_one(): what rounding left over goes to the
         * first partitions that can still take it, up to their maximum.
         * With no partition before the area, anything still left stays
         * unused at the end of the disk. */
        for (size_t i = 0; i < n && pool.span > 0; i++) {
                uint64_t m;

                if (st[i].dropped)
                        continue;
                m = round_down(st[i].size + pool.span, grain);
                m = max_u64(m, st[i].size);
                m = min_u64(m, st[i].max_size);
                pool.span = less_by(pool.span, round_up(m - st[i].size, grain));
                st[i].size = m;
        }
}

int nri_layout_compute(nri_layout_part *parts, size_t n, uint32_t sector_size, uint64_t image_size,
                       nri_layout_disk *ret_disk, size_t *ret_failed, nri_arena *a, nri_error *err) {
        nri_layout_disk disk;
        _cleanup_free_ part_state *st = NULL;
        uint64_t grain, needed, area, offset;
        size_t failed = SIZE_MAX, dummy;
        int r;

        if (!ret_failed)
                ret_failed = &dummy;
        *ret_failed = SIZE_MAX;
        /* systemd-repart's --sector-size=: 512 to 4096, so the grain (4096)
         * is a whole number of sectors and every size rounded to 4096 is
         * on it. */
        if (sector_size < 512 || sector_size > 4096 || (sector_size & (sector_size - 1)) != 0) {
                (void)nri_fail(a, err, NULL, "sector size %" PRIu32 " is not 512, 1024, 2048 or 4096",
                               sector_size);
                return -EINVAL;
        }
        grain = max_u64(4096, sector_size);

        st = calloc(n ? n : 1, sizeof(*st));
        if (!st) {
                (void)nri_fail(a, err, NULL, "out of memory");
                return -ENOMEM;
        }

        r = prepare(parts, n, grain, st, ret_failed, a, err);
        if (r < 0)
                return r;

        r = auto_size(st, n, grain, &needed);
        if (r < 0) {
                (void)nri_fail(a, err, NULL, "the partitions together need more than 2^64 bytes");
                return r;
        }
        if (image_size == NRI_LAYOUT_UNSET)
                image_size = needed;
        else if (round_up(image_size, grain) == UINT64_MAX) {
                r = -EOVERFLOW;
                (void)nri_fail(a, err, NULL, "image size %" PRIu64 " is too large", image_size);
                return r;
        } else
                image_size = round_up(image_size, grain);

        r = nri_layout_disk_geometry(sector_size, image_size, &disk);
        if (r < 0) {
                char have[64], need[64];

                r = -ENOSPC;
                (void)nri_fail(a, err, NULL, "an image of %s cannot hold two GPTs; it needs at least %s",
                               format_size(have, image_size), format_size(need, needed));
                return r;
        }
        area = disk.end - disk.start;

        /* Fit the minimums, dropping by priority until they do. */
        for (;;) {
                failed = allocate(st, n, area, grain);
                if (failed == n)
                        break;
                if (!drop_one_priority(parts, st, n)) {
                        char need[64], left[64], total[64], image[64];
                        uint64_t used = 0;

                        for (size_t i = 0; i < failed; i++)
                                if (!st[i].dropped)
                                        used += min_with_padding(&st[i], grain);
                        *ret_failed = failed;
                        r = -ENOSPC;
                        (void)nri_fail(
                            a, err, NULL,
                            "needs %s with its minimum padding, but only %s of the image's %s of free space "
                            "are left after the partitions before it; the image needs at least %s",
                            format_size(need, min_with_padding(&st[failed], grain)),
                            format_size(left, area - used), format_size(total, area),
                            format_size(image, needed));
                        return r;
                }
        }

        grow(parts, st, n, area, grain);

        /* context_place_partitions(): one after the other from the start,
         * each followed by its padding. */
        offset = disk.start;
        for (size_t i = 0; i < n; i++) {
                parts[i].dropped = st[i].dropped;
                if (st[i].dropped) {
                        parts[i].offset = parts[i].size = parts[i].padding = 0;
                        continue;
                }
                parts[i].offset = offset;
                parts[i].size = st[i].size;
                parts[i].padding = st[i].padding;
                offset += st[i].size + st[i].padding;
        }
        if (ret_disk)
                *ret_disk = disk;
        return 0;
}
