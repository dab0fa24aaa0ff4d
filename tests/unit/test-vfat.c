/* test-vfat.c: the vfat writer against the tools of the field.
 *
 * The layout must be the one systemd-repart 252's `mkfs.vfat -F 32` call
 * gives (checked against mkfs.vfat itself when dosfstools is installed);
 * a written file system must pass `fsck.vfat -n`, hold every file with its
 * bytes as `mtype` reads them back, carry the volume id and label, and be
 * byte-identical when written twice; names FAT cannot hold must fail before
 * anything is written, naming the path.  Exits 77 (skipped) without mtools
 * or fsck.vfat. */
#include "check.h"
#include "vfat.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (UINT64_C(1024) * 1024)

extern char **environ;

static char tmp[] = "/tmp/test-vfat-XXXXXX";

/* ---- helpers ---- */

static bool have(const char *prog) {
        const char *path = getenv("PATH");
        char buf[4096];

        for (const char *s = path ? path : "/usr/bin:/bin"; *s;) {
                size_t n = strcspn(s, ":");

                snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, s, prog);
                if (access(buf, X_OK) == 0)
                        return true;
                s += n + (s[n] == ':');
        }
        return false;
}

/* Runs argv (looked up on PATH), stdout to `out` (NULL: /dev/null), stderr
 * to /dev/null; returns the exit status or -1. */
static int run(char *const argv[], const char *out) {
        posix_spawn_file_actions_t fa;
        pid_t pid;
        int status;

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC,
                                         0644);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0)
                return -1;
        posix_spawn_file_actions_destroy(&fa);
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
                return -1;
        return WEXITSTATUS(status);
}

static char *path_in_tmp(const char *name) {
        char *p;

        if (asprintf(&p, "%s/%s", tmp, name) < 0)
                abort();
        return p;
}

static void write_bytes(const char *path, const void *data, size_t len) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

        if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) < 0) {
                perror(path);
                abort();
        }
}

static unsigned char *read_bytes(const char *path, size_t *ret_len) {
        struct stat st;
        unsigned char *buf;
        int fd = open(path, O_RDONLY);

        if (fd < 0 || fstat(fd, &st) < 0)
                return NULL;
        buf = malloc((size_t)st.st_size + 1);
        if (!buf || read(fd, buf, (size_t)st.st_size) != st.st_size) {
                close(fd);
                free(buf);
                return NULL;
        }
        close(fd);
        *ret_len = (size_t)st.st_size;
        buf[st.st_size] = 0;
        return buf;
}

static void mkdir_p(const char *path) {
        char buf[4096];

        snprintf(buf, sizeof(buf), "%s", path);
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = 0;
                        mkdir(buf, 0755);
                        *p = '/';
                }
        mkdir(buf, 0755);
}

static void new_image(const char *path, uint64_t size) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

        if (fd < 0 || ftruncate(fd, (off_t)size) < 0 || close(fd) < 0) {
                perror(path);
                abort();
        }
}

static bool region_is_zero(const char *path, uint64_t offset, size_t len) {
        size_t n;
        unsigned char *b = read_bytes(path, &n);
        bool zero = b && n >= offset + len;

        for (size_t i = 0; zero && i < len; i++)
                zero = b[offset + i] == 0;
        free(b);
        return zero;
}

/* Copies [offset, offset+len) of `image` to `out` (for fsck.vfat). */
static void extract(const char *image, uint64_t offset, uint64_t len, const char *out) {
        size_t n;
        unsigned char *b = read_bytes(image, &n);

        if (!b || n < offset + len)
                abort();
        write_bytes(out, b + offset, len);
        free(b);
}

/* Runs fn with stderr going to a file; returns what was written there. */
/* ---- the layout against mkfs.vfat's own ---- */

typedef struct bpb {
        uint32_t sector_size, cluster, reserved, fats, root_entries, total, fat, spt, heads, hidden,
            fat_bits;
        uint32_t volume_id;
        char label[12];
        uint8_t media;
} bpb;

static uint32_t le(const unsigned char *p, int n) {
        uint32_t v = 0;

        for (int i = n - 1; i >= 0; i--)
                v = v << 8 | p[i];
        return v;
}

static bool read_bpb(const char *path, uint64_t offset, bpb *ret) {
        size_t n;
        unsigned char *b = read_bytes(path, &n), *s;

        if (!b || n < offset + 512) {
                free(b);
                return false;
        }
        s = b + offset;
        *ret = (bpb){
            .sector_size = le(s + 11, 2),
            .cluster = s[13],
            .reserved = le(s + 14, 2),
            .fats = s[16],
            .root_entries = le(s + 17, 2),
            .total = le(s + 19, 2) ? le(s + 19, 2) : le(s + 32, 4),
            .media = s[21],
            .fat = le(s + 22, 2) ? le(s + 22, 2) : le(s + 36, 4),
            .spt = le(s + 24, 2),
            .heads = le(s + 26, 2),
            .hidden = le(s + 28, 4),
            .fat_bits = le(s + 22, 2) ? 16 : 32,
        };
        /* The extended BPB: after the FAT32 fields, or right after the old BPB. */
        const unsigned char *ext = ret->fat_bits == 32 ? s + 64 : s + 36;
        ret->volume_id = le(ext + 3, 4);
        memcpy(ret->label, ext + 7, 11);
        ret->label[11] = 0;
        if (ret->fat_bits == 16 && !memcmp(ext + 18, "FAT12", 5))
                ret->fat_bits = 12;
        free(b);
        return true;
}

/* Our layout against mkfs.vfat's own choice, as systemd-repart 252 runs it. */
static void test_geometry_against_mkfs(void) {
        static const struct {
                uint64_t size;
                const char *extra; /* what to pass besides -F 32 when the FAT32 is not possible */
        } sizes[] = {
            {64 * MiB, NULL}, {96 * MiB, NULL}, {300 * MiB, NULL}, {600 * MiB, NULL}, {34 * MiB, NULL},
            {10 * MiB, ""},   {32 * MiB, ""},   {8421376, "2"},    {1440 * 1024, ""},
        };
        char *img = path_in_tmp("mkfs.img");

        if (!have("mkfs.vfat")) {
                printf("mkfs.vfat missing: layout not compared with it\n");
                free(img);
                return;
        }
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                nri_vfat_geometry g;
                bpb b;
                char *argv[12];
                int n = 0;

                new_image(img, sizes[i].size);
                argv[n++] = "mkfs.vfat";
                argv[n++] = "-i";
                argv[n++] = "793a442b";
                argv[n++] = "-n";
                argv[n++] = "ESP";
                if (!sizes[i].extra) {
                        argv[n++] = "-F";
                        argv[n++] = "32";
                } else if (*sizes[i].extra) {
                        argv[n++] = "-s";
                        argv[n++] = (char *)sizes[i].extra;
                }
                argv[n++] = img;
                argv[n] = NULL;
                CHECK(run(argv, NULL) == 0);
                CHECK(read_bpb(img, 0, &b));
                CHECK(nri_vfat_geometry_for(sizes[i].size, 512, &g) == 0);
                CHECK_U64(g.total_sectors, b.total);
                CHECK_U64(g.sectors_per_cluster, b.cluster);
                CHECK_U64(g.reserved_sectors, b.reserved);
                CHECK_U64(g.fats, b.fats);
                CHECK_U64(g.fat_sectors, b.fat);
                CHECK_U64(g.root_dir_sectors * 512 / 32, b.root_entries);
                CHECK_U64(g.heads, b.heads);
                CHECK_U64(g.sectors_per_track, b.spt);
                CHECK_U64(g.media, b.media);
                CHECK_U64(g.fat_bits == 32, b.fat_bits == 32);
        }
        unlink(img);
        free(img);
}

/* ---- writing ---- */

typedef struct expect_file {
        const char *target;
        const char *source; /* relative to tmp */
} expect_file;

static const char *const big_name = "A very long file name, longer than thirteen characters.txt";

static void make_tree(void) {
        char *p;
        unsigned char *big = malloc(MiB);

        for (size_t i = 0; i < MiB; i++)
                big[i] = (unsigned char)(i * 2654435761u >> 13);

        p = path_in_tmp("src/tree/a/b/c");
        mkdir_p(p);
        free(p);
        p = path_in_tmp("src/tree/x[1]");
        mkdir_p(p);
        free(p);
        p = path_in_tmp("src/tree/emptydir");
        mkdir_p(p);
        free(p);
#define PUT(name, data, len)                                                                                \
        do {                                                                                                \
                char *q_ = path_in_tmp(name);                                                               \
                write_bytes(q_, data, len);                                                                 \
                free(q_);                                                                                   \
        } while (0)
        PUT("src/tree/a/b/c/deep.txt", "deep\n", 5);
        PUT("src/tree/a/top.txt", "top of a\n", 9);
        PUT("src/tree/empty", "", 0);
        PUT("src/tree/big.bin", big, MiB);
        PUT("src/tree/lower.txt", "lower\n", 6);
        PUT("src/tree/README", "readme\n", 7);
        PUT("src/tree/Grüße – ✓.txt", "utf-8\n", 6);
        PUT("src/tree/x[1]/y[2].txt", "brackets\n", 9);
        PUT("src/loader.efi", "MZ loader\n", 10);
        {
                char name[256];

                snprintf(name, sizeof(name), "src/tree/%s", big_name);
                PUT(name, "long\n", 5);
        }
        PUT("src/tree/hard1", "linked\n", 7);
#undef PUT
        {
                char *a = path_in_tmp("src/tree/hard1"), *b = path_in_tmp("src/tree/hard2");

                link(a, b);
                free(a);
                free(b);
        }
        free(big);
}

typedef struct tree_plan {
        nri_plan plan;
        nri_plan_copy copies[3];
        const char *dirs[1];
        char *sources[3];
} tree_plan;

static void tree_plan_init(tree_plan *t, int64_t mtime) {
        t->sources[0] = path_in_tmp("src/tree");
        t->sources[1] = path_in_tmp("src/loader.efi");
        t->sources[2] = path_in_tmp("src/tree/a");
        t->copies[0] = (nri_plan_copy){t->sources[0], "/"};
        t->copies[1] = (nri_plan_copy){t->sources[1], "/EFI/BOOT/BOOTX64.EFI"};
        t->copies[2] = (nri_plan_copy){t->sources[2], "/copy of a"};
        t->dirs[0] = "/loader/entries";
        t->plan = (nri_plan){
            .directories = t->dirs,
            .n_directories = 1,
            .copies = t->copies,
            .n_copies = 3,
            .mtime = mtime,
        };
}

static void tree_plan_done(tree_plan *t) {
        for (int i = 0; i < 3; i++)
                free(t->sources[i]);
}

/* Every path of the file system, as `mdir -/ -b` lists them, sorted. */
static const char *const expected_listing[] = {
    "::/A very long file name, longer than thirteen characters.txt",
    "::/EFI/",
    "::/EFI/BOOT/",
    "::/EFI/BOOT/BOOTX64.EFI",
    "::/Grüße – ✓.txt",
    "::/README",
    "::/a/",
    "::/a/b/",
    "::/a/b/c/",
    "::/a/b/c/deep.txt",
    "::/a/top.txt",
    "::/big.bin",
    "::/copy of a/",
    "::/copy of a/b/",
    "::/copy of a/b/c/",
    "::/copy of a/b/c/deep.txt",
    "::/copy of a/top.txt",
    "::/empty",
    "::/emptydir/",
    "::/hard1",
    "::/hard2",
    "::/loader/",
    "::/loader/entries/",
    "::/lower.txt",
    "::/x[1]/",
    "::/x[1]/y[2].txt",
};

static const expect_file expected_files[] = {
    {"::/EFI/BOOT/BOOTX64.EFI", "src/loader.efi"},
    {"::/a/b/c/deep.txt", "src/tree/a/b/c/deep.txt"},
    {"::/copy of a/b/c/deep.txt", "src/tree/a/b/c/deep.txt"},
    {"::/copy of a/top.txt", "src/tree/a/top.txt"},
    {"::/empty", "src/tree/empty"},
    {"::/big.bin", "src/tree/big.bin"},
    {"::/lower.txt", "src/tree/lower.txt"},
    {"::/README", "src/tree/README"},
    {"::/Grüße – ✓.txt", "src/tree/Grüße – ✓.txt"},
    {"::/x\\[1\\]/y\\[2\\].txt", "src/tree/x[1]/y[2].txt"}, /* mtype matches patterns: quoted */
    {"::/hard1", "src/tree/hard1"},
    {"::/hard2", "src/tree/hard1"},
};

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_listing(const char *spec) {
        char *out = path_in_tmp("mdir.out"), *text, *lines[64];
        size_t n = 0, len;
        char *argv[] = {"mdir", "-/", "-b", "-i", (char *)spec, "::", NULL};

        CHECK(run(argv, out) == 0);
        text = (char *)read_bytes(out, &len);
        CHECK(text != NULL);
        for (char *save = NULL, *l = text ? strtok_r(text, "\n", &save) : NULL; l && n < 64;
             l = strtok_r(NULL, "\n", &save))
                lines[n++] = l;
        qsort(lines, n, sizeof(char *), cmp_str);
        CHECK_U64(n, sizeof(expected_listing) / sizeof(expected_listing[0]));
        for (size_t i = 0; i < n && i < sizeof(expected_listing) / sizeof(expected_listing[0]); i++)
                CHECK_STR(lines[i], expected_listing[i]);
        free(text);
        free(out);
}

static void check_contents(const char *spec) {
        char *out = path_in_tmp("mtype.out");

        for (size_t i = 0; i < sizeof(expected_files) / sizeof(expected_files[0]); i++) {
                char *argv[] = {"mtype", "-i", (char *)spec, (char *)expected_files[i].target, NULL};
                char *src = path_in_tmp(expected_files[i].source);
                size_t got_len = 0, want_len = 0;
                unsigned char *got, *want;
                int status = run(argv, out);

                got = read_bytes(out, &got_len);
                want = read_bytes(src, &want_len);
                if (status != 0 || !got || !want || got_len != want_len ||
                    memcmp(got, want, want_len) != 0) {
                        fprintf(stderr, "%s: mtype exit %d, %zu bytes, want %zu bytes of %s\n",
                                expected_files[i].target, status, got_len, want_len, src);
                        CHECK(!"file contents differ");
                } else
                        CHECK(true);
                free(got);
                free(want);
                free(src);
        }
        free(out);
}

/* The date mdir shows for a file: the plan's mtime in UTC. */
static void check_date(const char *spec, const char *dir, const char *want) {
        char *out = path_in_tmp("mdir-date.out"), *text;
        size_t len;
        char *argv[] = {"mdir", "-i", (char *)spec, (char *)dir, NULL};

        CHECK(run(argv, out) == 0);
        text = (char *)read_bytes(out, &len);
        CHECK(text && strstr(text, want));
        if (text && !strstr(text, want))
                fprintf(stderr, "mdir %s: no \"%s\" in:\n%s", dir, want, text);
        free(text);
        free(out);
}

static void check_fsck(const char *image, uint64_t offset, uint64_t size) {
        char *part = path_in_tmp("part.img");
        char *argv[] = {"fsck.vfat", "-n", part, NULL};

        extract(image, offset, size, part);
        CHECK(run(argv, NULL) == 0);
        unlink(part);
        free(part);
}

static void check_blkid(const char *image, uint64_t offset, const char *want_uuid, const char *want_label) {
        char off[32], *out = path_in_tmp("blkid.out"), *text, want[64];
        size_t len;
        char *argv[] = {"blkid", "-p", "-O", off, "-o", "export", (char *)image, NULL};

        if (!have("blkid"))
                return;
        snprintf(off, sizeof(off), "%llu", (unsigned long long)offset);
        CHECK(run(argv, out) == 0);
        text = (char *)read_bytes(out, &len);
        snprintf(want, sizeof(want), "\nUUID=%s\n", want_uuid);
        CHECK(text && strstr(text, want));
        snprintf(want, sizeof(want), "\nLABEL=%s\n", want_label);
        CHECK(text && strstr(text, want));
        CHECK(text && strstr(text, "TYPE=vfat"));
        free(text);
        free(out);
}

static void test_write(void) {
        const uint64_t offset = MiB, size = 62 * MiB;
        char *a = path_in_tmp("a.img"), *b = path_in_tmp("b.img"), spec[512];
        nri_vfat_options o = {.volume_id = 0x793a442b, .label = "Grüße-esp!", .what = "partition esp"};
        tree_plan t;
        bpb bp;
        size_t la, lb;
        unsigned char *ia, *ib;

        tree_plan_init(&t, 1700000000); /* 2023-11-14 22:13:20 UTC */
        new_image(a, 64 * MiB);
        new_image(b, 64 * MiB);
        CHECK(nri_vfat_write(a, offset, size, &o, &t.plan) == 0);

        /* The second time with a hostile environment: none of it may matter. */
        setenv("TZ", "Asia/Tokyo", 1);
        setenv("MTOOLS_NO_VFAT", "1", 1);
        setenv("MTOOLS_LOWER_CASE", "1", 1);
        setenv("LC_ALL", "C", 1);
        CHECK(nri_vfat_write(b, offset, size, &o, &t.plan) == 0);
        setenv("LC_ALL", "C.UTF-8", 1);
        setenv("TZ", "UTC0", 1);
        unsetenv("MTOOLS_NO_VFAT");
        unsetenv("MTOOLS_LOWER_CASE");

        ia = read_bytes(a, &la);
        ib = read_bytes(b, &lb);
        CHECK(ia && ib && la == lb && memcmp(ia, ib, la) == 0);
        free(ia);
        free(ib);

        /* Nothing outside the partition was touched. */
        CHECK(region_is_zero(a, 0, offset));
        CHECK(region_is_zero(a, offset + size, 64 * MiB - offset - size));

        CHECK(read_bpb(a, offset, &bp));
        CHECK_U64(bp.fat_bits, 32);
        CHECK_U64(bp.volume_id, 0x793a442b);
        CHECK_STR(bp.label, "GR__E-ESP! ");
        CHECK_U64(bp.sector_size, 512);
        CHECK_U64(bp.hidden, 0);

        snprintf(spec, sizeof(spec), "%s@@%llu", a, (unsigned long long)offset);
        check_fsck(a, offset, size);
        check_listing(spec);
        check_contents(spec);
        check_date(spec, "::/a", "2023-11-14  22:13");
        check_blkid(a, offset, "793A-442B", "GR__E-ESP!");

        /* SOURCE_DATE_EPOCH=1 (the store's mtime) is before FAT's epoch. */
        tree_plan_done(&t);
        tree_plan_init(&t, 1);
        new_image(b, 64 * MiB);
        CHECK(nri_vfat_write(b, offset, size, &o, &t.plan) == 0);
        snprintf(spec, sizeof(spec), "%s@@%llu", b, (unsigned long long)offset);
        check_date(spec, "::/a", "1980-01-01   0:00");
        check_fsck(b, offset, size);

        unlink(a);
        unlink(b);
        free(a);
        free(b);
        tree_plan_done(&t);
}

/* A partition too small for FAT32 through mtools: the FAT16 mkfs.vfat
 * would make without -F, holding the same tree. */
static void test_write_small(void) {
        const uint64_t offset = MiB, size = 10 * MiB;
        /* mtools hands a device name with such characters to /bin/sh. */
        char *a = path_in_tmp("small $HOME?.img"), spec[512];
        nri_vfat_options o = {.volume_id = 0xdac4058a, .label = "esp"};
        tree_plan t;
        bpb bp;

        tree_plan_init(&t, 1700000000);
        new_image(a, 12 * MiB);
        CHECK(nri_vfat_write(a, offset, size, &o, &t.plan) == 0);
        CHECK(read_bpb(a, offset, &bp));
        CHECK_U64(bp.fat_bits, 16);
        CHECK_U64(bp.volume_id, 0xdac4058a);
        CHECK_STR(bp.label, "ESP        ");
        /* Read back through a plain name, for the same reason. */
        char *plain = path_in_tmp("small.img");
        CHECK(symlink(a, plain) == 0);
        snprintf(spec, sizeof(spec), "%s@@%llu", plain, (unsigned long long)offset);
        check_fsck(a, offset, size);
        check_listing(spec);
        check_contents(spec);
        check_blkid(a, offset, "DAC4-058A", "ESP");
        unlink(plain);
        unlink(a);
        free(plain);
        free(a);
        tree_plan_done(&t);
}

/* Minimize=guess: the size it gives holds the content. */
static void test_min_size(void) {
        char *img = path_in_tmp("min.img"), spec[512];
        nri_vfat_options o = {.volume_id = 0x12345678, .label = "esp"};
        nri_plan_stats st;
        tree_plan t;
        uint64_t size = 0;

        tree_plan_init(&t, 1);
        t.plan.ignore_hardlinks = true; /* FAT stores each name's data */
        CHECK(nri_plan_measure(&t.plan, &st) == 0);
        CHECK(nri_vfat_min_size(&st, 512, &size) == 0);
        CHECK(size % 4096 == 0);
        CHECK(size >= st.bytes + st.bytes / 2);
        new_image(img, size + MiB);
        CHECK(nri_vfat_write(img, MiB, size, &o, &t.plan) == 0);
        snprintf(spec, sizeof(spec), "%s@@%llu", img, (unsigned long long)MiB);
        check_fsck(img, MiB, size);
        check_contents(spec);

        /* Nothing to hold: the smallest FAT there is. */
        st = (nri_plan_stats){0};
        CHECK(nri_vfat_min_size(&st, 512, &size) == 0);
        CHECK(size > 0 && size <= 64 * 1024);
        unlink(img);
        free(img);
        tree_plan_done(&t);
}

/* ---- refusals: before anything is written, naming the path ---- */

typedef struct refusal {
        const char *image;
        nri_plan *plan;
        uint64_t size;
} refusal;

static int call_write(void *arg) {
        refusal *r = arg;
        nri_vfat_options o = {.volume_id = 1, .label = "x"};

        return nri_vfat_write(r->image, MiB, r->size, &o, r->plan);
}

static void refuse(const char *what, nri_plan *plan, uint64_t size, int want, const char *want_in_message) {
        char *img = path_in_tmp("refuse.img"), *msg;
        refusal r = {img, plan, size};
        int got;

        new_image(img, size + 2 * MiB);
        msg = check_capture_stderr(call_write, &r, &got);
        if (got != want || !strstr(msg, want_in_message)) {
                fprintf(stderr, "%s: got %d, want %d; message: %s", what, got, want, msg);
                CHECK(!"refusal");
        } else
                CHECK(true);
        CHECK(region_is_zero(img, MiB, 64 * 1024)); /* not even formatted */
        unlink(img);
        free(img);
        free(msg);
}

static void test_refusals(void) {
        char *dir = path_in_tmp("bad"), *f, *l;
        nri_plan_copy c[2];
        nri_plan plan = {.copies = c, .n_copies = 1, .mtime = 1};
        const char *dirs[1];

        mkdir_p(dir);
        f = path_in_tmp("bad/file");
        write_bytes(f, "x", 1);
        l = path_in_tmp("bad/link");
        symlink("file", l);

        /* A symlink anywhere in a tree. */
        c[0] = (nri_plan_copy){dir, "/boot"};
        refuse("symlink", &plan, 16 * MiB, -EINVAL, "'/boot/link' is a symbolic link");
        unlink(l);

        /* Names FAT cannot hold. */
        c[0] = (nri_plan_copy){f, "/a:b"};
        refuse("colon", &plan, 16 * MiB, -EINVAL, "'/a:b': FAT names cannot contain ':'");
        c[0] = (nri_plan_copy){f, "/trailing."};
        refuse("trailing dot", &plan, 16 * MiB, -EINVAL, "'/trailing.': FAT drops a trailing dot");
        c[0] = (nri_plan_copy){f, "/dir/nul"};
        refuse("device name", &plan, 16 * MiB, -EINVAL, "'/dir/nul': NUL is a reserved DOS device name");
        c[0] = (nri_plan_copy){f, "/bad\xc3("};
        refuse("not UTF-8", &plan, 16 * MiB, -EINVAL, "the name is not UTF-8");

        /* Case-only differences, in a directory made by the plan too. */
        c[0] = (nri_plan_copy){f, "/EFI/Boot/x"};
        c[1] = (nri_plan_copy){f, "/efi/BOOT/y"};
        plan.n_copies = 2;
        refuse("case", &plan, 16 * MiB, -EINVAL, "'/EFI' and '/efi' differ only in case");
        c[1] = (nri_plan_copy){f, "/EFI/Boot/X"};
        refuse("case of a file", &plan, 16 * MiB, -EINVAL,
               "'/EFI/Boot/x' and '/EFI/Boot/X' differ only in case");
        c[1] = (nri_plan_copy){f, "/EFI/Boot/É file"};
        c[0] = (nri_plan_copy){f, "/EFI/Boot/é file"};
        refuse("case outside ASCII", &plan, 16 * MiB, -EINVAL, "differ only in case");
        plan.n_copies = 1;

        /* Names mtools would change on the way: outside the BMP, and 8.3
         * names outside ASCII (kept as a short name only, in code page 437). */
        c[0] = (nri_plan_copy){f, "/smile \xf0\x9f\x98\x80"};
        refuse("outside the BMP", &plan, 16 * MiB, -EINVAL,
               "'/smile \xf0\x9f\x98\x80': mtools cannot write "
               "characters outside the Basic Multilingual Plane (here U+1F600)");
        c[0] = (nri_plan_copy){f, "/EFI/\xc3\xbc"
                                  "ber"};
        refuse("8.3 outside ASCII", &plan, 16 * MiB, -EINVAL,
               "'/EFI/\xc3\xbc"
               "ber': a name that fits 8.3");
        c[0] = (nri_plan_copy){f, "/\xc5\x82.txt"};
        refuse("8.3 outside ASCII, with an extension", &plan, 16 * MiB, -EINVAL, "a name that fits 8.3");
        plan.n_copies = 2;
        dirs[0] = "/Loader";
        plan.directories = dirs;
        plan.n_directories = 1;
        c[0] = (nri_plan_copy){f, "/loader/x"};
        plan.n_copies = 1;
        refuse("case of a made directory", &plan, 16 * MiB, -EINVAL, "'/Loader' and '/loader'");
        plan.n_directories = 0;

        /* More content than space. */
        {
                char *big = path_in_tmp("bad/big");
                int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0644);

                CHECK(fd >= 0 && ftruncate(fd, 20 * MiB) == 0);
                close(fd);
                c[0] = (nri_plan_copy){big, "/big"};
                refuse("too large", &plan, 16 * MiB, -ENOSPC,
                       "no room for /big: the content needs more than");
                unlink(big);
                free(big);
        }
        free(dir);
        free(f);
        free(l);
}

/* mtools' exit status is not enough (some of its errors leave it 0):
 * anything mformat prints fails the write.  A stand-in mformat, in the
 * directory the options name, that complains and exits 0. */
static const char *fake_mtools_dir;

static int call_write_small(void *arg) {
        refusal *r = arg;
        nri_mtools mt = {.dir = fake_mtools_dir};
        nri_vfat_options o = {.volume_id = 1, .label = "x", .mtools = &mt};

        return nri_vfat_write(r->image, 0, r->size, &o, r->plan);
}

static void test_mtools_output_is_failure(void) {
        char *dir = path_in_tmp("fake-mtools"), *img = path_in_tmp("fake.img"), *f = path_in_tmp("fake-src");
        char *prog, *msg;
        nri_plan_copy c = {f, "/f"};
        nri_plan plan = {.copies = &c, .n_copies = 1, .mtime = 1};
        refusal r = {img, &plan, 16 * MiB};
        int got;

        mkdir_p(dir);
        write_bytes(f, "x", 1);
        if (asprintf(&prog, "%s/mformat", dir) < 0)
                abort();
        {
                static const char script[] =
                    "#!/bin/sh\necho 'Trouble writing the boot sector' >&2\nexit 0\n";

                write_bytes(prog, script, strlen(script));
        }
        chmod(prog, 0755);
        free(prog);

        new_image(img, 16 * MiB);
        fake_mtools_dir = dir;
        msg = check_capture_stderr(call_write_small, &r, &got);
        CHECK(got == -EIO);
        CHECK(strstr(msg, "Trouble writing") && strstr(msg, "mformat reported the errors above"));
        if (got != -EIO)
                fprintf(stderr, "fake mformat: got %d: %s", got, msg);
        free(msg);
        free(dir);
        free(img);
        free(f);
}

int main(void) {
        const char *tools[] = {"mformat", "mmd", "mcopy", "mtype", "mdir", "fsck.vfat"};

        setenv("LC_ALL", "C.UTF-8", 1); /* mtype and mdir read and print UTF-8 names */
        setenv("TZ", "UTC0", 1);
        setenv("MTOOLS_SKIP_CHECK", "1", 1);

        for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
                if (!have(tools[i])) {
                        printf("%s missing: skipping the writing tests\n", tools[i]);
                        return 77;
                }
        if (!mkdtemp(tmp)) {
                perror("mkdtemp");
                return 1;
        }

        test_geometry_against_mkfs();
        make_tree();
        test_write();
        test_write_small();
        test_min_size();
        test_refusals();
        test_mtools_output_is_failure();

        {
                char *argv[] = {"rm", "-rf", tmp, NULL};
                run(argv, NULL);
        }
        return check_result();
}
