/* test-layout.c: the layout arithmetic against systemd-repart 252.
 *
 * Every case below is a set of definitions that was given to the real
 * systemd-repart 252 (Debian 252.39) as Type=linux-generic partitions,
 *
 *   systemd-repart --empty=create --size=SIZE --seed=0867da16-… \
 *                  --definitions=DIR --dry-run=no --json=short img
 *
 * (for other sector sizes: --empty=force on `losetup -b SECTOR` over a file of
 * SIZE bytes), and the expected numbers are what it printed: the image size,
 * sfdisk's first-lba/last-lba, and each partition's offset, raw_size and
 * raw_padding.  "content=N" stands for CopyBlocks= of a file of N bytes
 * (what the builder passes as content_min); Format=ext4 for the file-system
 * minimum of 1 MiB. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "nix-repart-image/layout.h"

/* Where the layout's messages are allocated. */
static nri_arena *arena;

#define AUTO NRI_LAYOUT_UNSET
#define KiB UINT64_C(1024)
#define MiB (KiB * 1024)
#define GiB (MiB * 1024)
#define MAX_PARTS 5

typedef struct want {
        uint64_t offset, size, padding;
} want;
#define DROPPED                                                                                             \
        { 0, 0, 0 }

typedef struct layout_case {
        const char *name;
        uint32_t sector_size;
        uint64_t image_size;
        const char *defs[MAX_PARTS]; /* "Key=Value …" per partition */
        uint64_t image, first_lba, last_lba;
        want parts[MAX_PARTS];
} layout_case;

/* clang-format off */
static const layout_case cases[] = {
        /* --size=auto: 1044 KiB + each minimum, 10 MiB by default. */
        {"three defaults, auto", 512, AUTO,
         {"", "", ""},
         32526336, 2048, 63494,
         {{1048576, 10485760, 0}, {11534336, 10485760, 0}, {22020096, 10485760, 0}}},
        {"minimum and padding, auto", 512, AUTO,
         {"SizeMinBytes=100M", "PaddingMinBytes=5M", ""},
         132141056, 2048, 258054,
         {{1048576, 104857600, 0}, {105906176, 10485760, 5242880}, {121634816, 10485760, 0}}},
        /* SizeMaxBytes= below the 10 MiB default minimum does not lower it;
         * 10000000 rounds down to 9998336. */
        {"maximum below the default, auto", 512, AUTO,
         {"SizeMaxBytes=4M", "SizeMinBytes=10000000 SizeMaxBytes=50000001"},
         21553152, 2048, 42062,
         {{1048576, 10485760, 0}, {11534336, 9998336, 0}}},
        {"weights, auto", 512, AUTO,
         {"Weight=500", "Weight=1000", "Weight=2000 SizeMaxBytes=100M"},
         32526336, 2048, 63494,
         {{1048576, 10485760, 0}, {11534336, 10485760, 0}, {22020096, 10485760, 0}}},
        {"large minimum, auto", 512, AUTO,
         {"SizeMinBytes=300M", "Weight=1000", "Weight=3000"},
         336613376, 2048, 657414,
         {{1048576, 314572800, 0}, {315621376, 10485760, 0}, {326107136, 10485760, 0}}},
        {"padding bounds, auto", 512, AUTO,
         {"PaddingMinBytes=1M PaddingMaxBytes=3M PaddingWeight=1000",
          "SizeMaxBytes=20M",
          "Weight=0 SizeMinBytes=50M"},
         75517952, 2048, 147462,
         {{1048576, 10485760, 1048576}, {12582912, 10485760, 0}, {23068672, 52428800, 0}}},
        /* Images of at most 4 MiB: libfdisk does not align the first usable
         * LBA to 1 MiB, and the auto size leaves room that the weights share. */
        {"tiny, auto", 512, AUTO,
         {"SizeMinBytes=4K SizeMaxBytes=4K"},
         1073152, 34, 2062,
         {{20480, 4096, 0}}},
        {"tiny, two, auto", 512, AUTO,
         {"SizeMinBytes=0", "SizeMinBytes=100K SizeMaxBytes=1M"},
         1175552, 34, 2262,
         {{20480, 565248, 0}, {585728, 569344, 0}}},
        {"ext4 minimum, auto", 512, AUTO,
         {"Format=ext4 SizeMinBytes=512K"},
         2117632, 34, 4102,
         {{20480, 2076672, 0}}},
        {"content, auto", 512, AUTO,
         {"content=15729152",
          "content=15729152 SizeMinBytes=20M",
          "content=15729152 SizeMaxBytes=16M Weight=250"},
         53506048, 2048, 104470,
         {{1048576, 15732736, 0}, {16781312, 20971520, 0}, {37752832, 15732736, 0}}},
        /* A fixed size, shared out by Weight= and PaddingWeight=. */
        {"three defaults, 1G", 512, 1 * GiB,
         {"", "", ""},
         1073741824, 2048, 2097118,
         {{1048576, 357556224, 0}, {358604800, 357556224, 0}, {716161024, 357560320, 0}}},
        {"minimum and padding, 1G", 512, 1 * GiB,
         {"SizeMinBytes=100M", "PaddingMinBytes=5M", ""},
         1073741824, 2048, 2097118,
         {{1048576, 355807232, 0}, {356855808, 355811328, 5242880}, {717910016, 355811328, 0}}},
        {"maximum below the default, 1G", 512, 1 * GiB,
         {"SizeMaxBytes=4M", "SizeMinBytes=10000000 SizeMaxBytes=50000001"},
         1073741824, 2048, 2097118,
         {{1048576, 10485760, 0}, {11534336, 50003968, 0}}},
        {"weights, 1G", 512, 1 * GiB,
         {"Weight=500", "Weight=1000", "Weight=2000 SizeMaxBytes=100M"},
         1073741824, 2048, 2097118,
         {{1048576, 322605056, 0}, {323653632, 645210112, 0}, {968863744, 104857600, 0}}},
        {"large minimum, 1G", 512, 1 * GiB,
         {"SizeMinBytes=300M", "Weight=1000", "Weight=3000"},
         1073741824, 2048, 2097118,
         {{1048576, 314572800, 0}, {315621376, 189521920, 0}, {505143296, 568578048, 0}}},
        {"zero weights and padding weight, 1G", 512, 1 * GiB,
         {"Weight=0", "PaddingWeight=1000", "Weight=0 PaddingWeight=0"},
         1073741824, 2048, 2097118,
         {{1048576, 10485760, 0}, {11534336, 525848576, 525852672}, {1063235584, 10485760, 0}}},
        /* What the maximums leave goes to the first partition that can take it. */
        {"padding bounds, 1G", 512, 1 * GiB,
         {"PaddingMinBytes=1M PaddingMaxBytes=3M PaddingWeight=1000",
          "SizeMaxBytes=20M",
          "Weight=0 SizeMinBytes=50M"},
         1073741824, 2048, 2097118,
         {{1048576, 996126720, 3145728}, {1000321024, 20971520, 0}, {1021292544, 52428800, 0}}},
        /* Nobody can take the rest: it stays free at the end. */
        {"maximums, 1G", 512, 1 * GiB,
         {"SizeMaxBytes=64M", "SizeMaxBytes=32M"},
         1073741824, 2048, 2097118,
         {{1048576, 67108864, 0}, {68157440, 33554432, 0}}},
        {"odd weights and unaligned bounds, 1G", 512, 1 * GiB,
         {"Weight=1 PaddingWeight=2",
          "Weight=3 PaddingMinBytes=12345 PaddingMaxBytes=999999",
          "Weight=7 SizeMaxBytes=123456789"},
         1073741824, 2048, 2097118,
         {{1048576, 158199808, 316399616}, {475648000, 474603520, 12288}, {950263808, 123457536, 0}}},
        {"content, 1G", 512, 1 * GiB,
         {"content=15729152",
          "content=15729152 SizeMinBytes=20M",
          "content=15729152 SizeMaxBytes=16M Weight=250"},
         1073741824, 2048, 2097118,
         {{1048576, 527945728, 0}, {528994304, 527949824, 0}, {1056944128, 16777216, 0}}},
        /* --size= rounds up to 4096. */
        {"unaligned size", 512, 100000000,
         {"", "", ""},
         100003840, 2048, 195286,
         {{1048576, 32976896, 0}, {34025472, 32976896, 0}, {67002368, 32980992, 0}}},
        {"weights, unaligned size", 512, 777777777,
         {"Weight=500", "Weight=1000", "Weight=2000 SizeMaxBytes=100M"},
         777781248, 2048, 1519070,
         {{1048576, 223948800, 0}, {224997376, 447905792, 0}, {672903168, 104857600, 0}}},
        {"odd weights, unaligned size", 512, 333333333,
         {"Weight=1 PaddingWeight=2",
          "Weight=3 PaddingMinBytes=12345 PaddingMaxBytes=999999",
          "Weight=7 SizeMaxBytes=123456789"},
         333336576, 2048, 651014,
         {{1048576, 34799616, 69599232}, {105447424, 104398848, 12288}, {209858560, 123457536, 0}}},
        {"tiny, 4M", 512, 4 * MiB,
         {"SizeMinBytes=0", "SizeMinBytes=100K SizeMaxBytes=1M"},
         4194304, 34, 8158,
         {{20480, 3104768, 0}, {3125248, 1048576, 0}}},
        {"just over 4M", 512, 4 * MiB + 4096,
         {"SizeMinBytes=0", "SizeMinBytes=100K SizeMaxBytes=1M"},
         4198400, 2048, 8166,
         {{1048576, 2080768, 0}, {3129344, 1048576, 0}}},
        /* Priority=: the highest priorities above 0 go first, all at once. */
        {"priorities, 100M", 512, 100 * MiB,
         {"Priority=0 SizeMinBytes=40M",
          "Priority=1 SizeMinBytes=40M",
          "Priority=2 SizeMinBytes=40M",
          "Priority=2 SizeMinBytes=1M"},
         104857600, 2048, 204766,
         {{1048576, 51892224, 0}, {52940800, 51896320, 0}, DROPPED, DROPPED}},
        {"priorities, 60M", 512, 60 * MiB,
         {"Priority=0 SizeMinBytes=40M",
          "Priority=1 SizeMinBytes=40M",
          "Priority=2 SizeMinBytes=40M",
          "Priority=2 SizeMinBytes=1M"},
         62914560, 2048, 122846,
         {{1048576, 61845504, 0}, DROPPED, DROPPED, DROPPED}},
        /* Other sector sizes (loop devices with that logical sector size). */
        {"weights, 4096-byte sectors", 4096, 1 * GiB,
         {"Weight=500", "Weight=1000", "Weight=2000 SizeMaxBytes=100M"},
         1073741824, 256, 262138,
         {{1048576, 322605056, 0}, {323653632, 645210112, 0}, {968863744, 104857600, 0}}},
        {"three defaults, 4096-byte sectors", 4096, 1 * GiB,
         {"", "", ""},
         1073741824, 256, 262138,
         {{1048576, 357556224, 0}, {358604800, 357556224, 0}, {716161024, 357560320, 0}}},
        {"auto size fits 4096-byte sectors", 4096, AUTO,
         {"", "", ""},
         32526336, 256, 7935,
         {{1048576, 10485760, 0}, {11534336, 10485760, 0}, {22020096, 10485760, 0}}},
        {"padding bounds, 4096-byte sectors", 4096, 1 * GiB,
         {"PaddingMinBytes=1M PaddingMaxBytes=3M PaddingWeight=1000",
          "SizeMaxBytes=20M",
          "Weight=0 SizeMinBytes=50M"},
         1073741824, 256, 262138,
         {{1048576, 996126720, 3145728}, {1000321024, 20971520, 0}, {1021292544, 52428800, 0}}},
        {"odd weights, 4096-byte sectors", 4096, 333332480,
         {"Weight=1 PaddingWeight=2",
          "Weight=3 PaddingMinBytes=12345 PaddingMaxBytes=999999",
          "Weight=7 SizeMaxBytes=123456789"},
         333332480, 256, 81374,
         {{1048576, 34795520, 69599232}, {105443328, 104398848, 12288}, {209854464, 123457536, 0}}},
        {"tiny, 4096-byte sectors, 4M", 4096, 4 * MiB,
         {"SizeMinBytes=0", "SizeMinBytes=100K SizeMaxBytes=1M"},
         4194304, 6, 1018,
         {{24576, 3100672, 0}, {3125248, 1048576, 0}}},
        {"just over 4M, 4096-byte sectors", 4096, 4 * MiB + 4096,
         {"SizeMinBytes=0", "SizeMinBytes=100K SizeMaxBytes=1M"},
         4198400, 256, 1019,
         {{1048576, 2080768, 0}, {3129344, 1048576, 0}}},
        {"tiny, 4096-byte sectors, auto", 4096, AUTO,
         {"SizeMinBytes=4K SizeMaxBytes=4K"},
         1073152, 6, 256,
         {{24576, 4096, 0}}},
        {"odd weights, 2048-byte sectors", 2048, 333332480,
         {"Weight=1 PaddingWeight=2",
          "Weight=3 PaddingMinBytes=12345 PaddingMaxBytes=999999",
          "Weight=7 SizeMaxBytes=123456789"},
         333332480, 512, 162750,
         {{1048576, 34795520, 69599232}, {105443328, 104398848, 12288}, {209854464, 123457536, 0}}},
        {"large minimum, 1024-byte sectors", 1024, 1 * GiB,
         {"SizeMinBytes=300M", "Weight=1000", "Weight=3000"},
         1073741824, 1024, 1048558,
         {{1048576, 314572800, 0}, {315621376, 189521920, 0}, {505143296, 568578048, 0}}},
};
/* clang-format on */

/* systemd's parse_size() with base 1024, for the few forms used here. */
static uint64_t parse_bytes(const char *s) {
        char *end;
        uint64_t v = strtoull(s, &end, 10);

        switch (*end) {
        case 'K':
                return v * KiB;
        case 'M':
                return v * MiB;
        case 'G':
                return v * GiB;
        default:
                return v;
        }
}

static nri_layout_part parse_def(const char *def) {
        nri_layout_part p = {
            .size_min = NRI_LAYOUT_UNSET,
            .size_max = NRI_LAYOUT_UNSET,
            .padding_min = NRI_LAYOUT_UNSET,
            .padding_max = NRI_LAYOUT_UNSET,
            .weight = NRI_LAYOUT_DEFAULT_WEIGHT,
        };
        char *copy = strdup(def), *save = NULL;

        for (char *kv = strtok_r(copy, " ", &save); kv; kv = strtok_r(NULL, " ", &save)) {
                char *v = strchr(kv, '=');

                if (!v)
                        continue;
                *v++ = '\0';
                if (strcmp(kv, "SizeMinBytes") == 0)
                        p.size_min = parse_bytes(v);
                else if (strcmp(kv, "SizeMaxBytes") == 0)
                        p.size_max = parse_bytes(v);
                else if (strcmp(kv, "PaddingMinBytes") == 0)
                        p.padding_min = parse_bytes(v);
                else if (strcmp(kv, "PaddingMaxBytes") == 0)
                        p.padding_max = parse_bytes(v);
                else if (strcmp(kv, "Weight") == 0)
                        p.weight = (uint32_t)strtoul(v, NULL, 10);
                else if (strcmp(kv, "PaddingWeight") == 0)
                        p.padding_weight = (uint32_t)strtoul(v, NULL, 10);
                else if (strcmp(kv, "Priority") == 0)
                        p.priority = (int32_t)strtol(v, NULL, 10);
                else if (strcmp(kv, "content") == 0)
                        p.content_min = parse_bytes(v);
                else if (strcmp(kv, "Format") == 0 && strcmp(v, "ext4") == 0)
                        p.content_min = 1 * MiB;
                else
                        fprintf(stderr, "test-layout: unknown key %s\n", kv);
        }
        free(copy);
        return p;
}

static size_t parse_defs(const layout_case *c, nri_layout_part parts[MAX_PARTS]) {
        size_t n = 0;

        while (n < MAX_PARTS && c->defs[n]) {
                parts[n] = parse_def(c->defs[n]);
                n++;
        }
        return n;
}

static void test_repart_cases(void) {
        for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
                const layout_case *c = &cases[k];
                nri_layout_part parts[MAX_PARTS];
                nri_layout_disk disk = {0};
                size_t n = parse_defs(c, parts), failed = 0;
                nri_error err = {0};
                int before = check_failures, r;

                r = nri_layout_compute(parts, n, c->sector_size, c->image_size, &disk, &failed, arena, &err);
                if (r < 0)
                        fprintf(stderr, "case \"%s\": %s\n", c->name, err.message);
                CHECK(r == 0);
                if (r < 0)
                        continue;
                CHECK_U64(disk.image_size, c->image);
                CHECK_U64(disk.first_lba, c->first_lba);
                CHECK_U64(disk.last_lba, c->last_lba);
                for (size_t i = 0; i < n; i++) {
                        bool dropped = c->parts[i].size == 0;

                        CHECK(parts[i].dropped == dropped);
                        if (dropped)
                                continue;
                        CHECK_U64(parts[i].offset, c->parts[i].offset);
                        CHECK_U64(parts[i].size, c->parts[i].size);
                        CHECK_U64(parts[i].padding, c->parts[i].padding);
                }
                if (check_failures != before)
                        fprintf(stderr, "  in case \"%s\"\n", c->name);
        }
}

/* systemd-repart 252 refuses "Can't fit requested partitions into available
 * free space (58.9M)" and names 81.0M as the auto size; we name the
 * partition that does not fit. */
static void test_does_not_fit(void) {
        nri_layout_part parts[2] = {parse_def("SizeMinBytes=40M"), parse_def("SizeMinBytes=40M")};
        nri_layout_disk disk = {.image_size = 1};
        size_t failed = 0;
        nri_error err = {0};

        for (uint32_t ss = 512; ss <= 4096; ss *= 8) {
                CHECK(nri_layout_compute(parts, 2, ss, 60 * MiB, &disk, &failed, arena, &err) == -ENOSPC);
                CHECK_U64(failed, 1);
                CHECK(disk.image_size == 1); /* untouched */
                CHECK(strstr(err.message, "41943040 bytes (40.0 MiB)") != NULL);
                CHECK(strstr(err.message, "84955136 bytes (81.0 MiB)") != NULL);
        }
}

/* repart 252 would silently make the partition bigger than SizeMaxBytes=
 * (15 MiB for CopyBlocks= of 15 MiB + 512 bytes with SizeMaxBytes=12M); we
 * refuse, naming what the content needs and what the maximum allows. */
static void test_content_over_maximum(void) {
        nri_layout_part parts[2] = {parse_def(""), parse_def("content=15729152 SizeMaxBytes=12M")};
        size_t failed = 0;
        nri_error err = {0};

        CHECK(nri_layout_compute(parts, 2, 512, AUTO, NULL, &failed, arena, &err) == -ENOSPC);
        CHECK_U64(failed, 1);
        CHECK(strstr(err.message, "15732736 bytes") != NULL);
        CHECK(strstr(err.message, "SizeMaxBytes=12582912") != NULL);
        CHECK(strstr(err.message, "12582912 bytes (12.0 MiB)") != NULL);

        /* Content that fits the 10 MiB default minimum is fine even when
         * SizeMaxBytes= is lower: repart gives such a partition 10 MiB. */
        parts[1] = parse_def("content=6M SizeMaxBytes=4M");
        CHECK(nri_layout_compute(parts, 2, 512, AUTO, NULL, &failed, arena, &err) == 0);
        CHECK_U64(parts[1].size, 10 * MiB);
}

static void test_no_partitions(void) {
        nri_layout_disk disk;

        CHECK(nri_layout_compute(NULL, 0, 512, AUTO, &disk, NULL, NULL, NULL) == 0);
        CHECK_U64(disk.image_size, 1069056);
}

static void test_bad_input(void) {
        nri_layout_part p = parse_def("");
        size_t failed = 0;
        nri_error err = {0};

        CHECK(nri_layout_compute(&p, 1, 513, AUTO, NULL, &failed, arena, &err) == -EINVAL);
        CHECK(nri_layout_compute(&p, 1, 256, AUTO, NULL, &failed, arena, &err) == -EINVAL);
        /* systemd-repart's sector sizes only: larger ones would leave the
         * grain's multiples on 4096 (corpus/layout/sector-8192-*). */
        CHECK(nri_layout_compute(&p, 1, 8192, AUTO, NULL, &failed, arena, &err) == -EINVAL);
        CHECK(strstr(err.message, "not 512, 1024, 2048 or 4096") != NULL);
        /* Too small for the two GPTs. */
        CHECK(nri_layout_compute(&p, 1, 512, 16 * KiB, NULL, &failed, arena, &err) == -ENOSPC);
        CHECK_U64(failed, SIZE_MAX);
}

int main(void) {
        arena = nri_arena_new();
        test_repart_cases();
        test_does_not_fit();
        test_content_over_maximum();
        test_no_partitions();
        test_bad_input();
        nri_arena_free(arena);
        return check_result();
}
