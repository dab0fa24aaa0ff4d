/* test-ext4.c: the plan walk and the ext4 writer, checked with e2fsprogs'
 * own tools.
 *
 * A source tree like a store path (tree-test.h) (files empty, small, over 1 MiB, sparse,
 * with runs of zeros, fragmented; modes 0755/0644/0444/0555; nested and deep
 * directories; symlinks relative, absolute, dangling and long; hard links;
 * names with spaces, UTF-8 and 255 bytes) is written into a 64 MiB ext4 at
 * 1 MiB into an image file.  Then `e2fsck -fn` must find it clean,
 * `dumpe2fs -h` must show the UUID, label, hash seed and mkfs.ext4's
 * features, `debugfs -R rdump` must give back every file with its bytes,
 * mode and symlink target, `debugfs -R stat` the hard links, holes and
 * timestamps, and the same plan from a fresh copy of the tree must give the
 * same bytes.  Without e2fsck and debugfs the test is skipped (77). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ext4.h"
#include "fs.h"
#include "tree-test.h"

/* ---- the ext4 writer ---- */

static void options(nri_ext4_options *o, int64_t t) {
        memset(o, 0, sizeof(*o));
        CHECK(nri_uuid_parse("7981aaf4-2a9a-4f86-9f1f-5b42c8f28bbf", &o->uuid) == 0);
        CHECK(nri_uuid_parse("0badc0de-1234-4567-89ab-cdef01234567", &o->hash_seed) == 0);
        o->label = "a-label-longer-than-sixteen";
        o->timestamp = t;
        o->what = "test";
}

/* An image of `total` bytes that is 0xaa outside [off, off + size). */
static char *make_image(const char *name, uint64_t total, uint64_t off, uint64_t size) {
        char *img = fmt("%s/%s", root, name), *pattern = malloc(MiB);
        int fd = open(img, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        memset(pattern, 0xaa, MiB);
        if (fd < 0 || ftruncate(fd, (off_t)total) < 0)
                abort();
        for (uint64_t p = 0; p < off; p += MiB)
                write_at(fd, p, pattern, off - p < MiB ? off - p : MiB);
        for (uint64_t p = off + size; p < total; p += MiB)
                write_at(fd, p, pattern, total - p < MiB ? total - p : MiB);
        /* garbage inside the range, which the writer must clear */
        write_at(fd, off + 4096 * 7, pattern, MiB);
        close(fd);
        free(pattern);
        return img;
}

static bool outside_intact(const char *img, uint64_t off, uint64_t size) {
        size_t len;
        char *p = read_all(img, &len);
        bool ok = p != NULL;

        for (uint64_t i = 0; ok && i < len; i++)
                if ((i < off || i >= off + size) && (unsigned char)p[i] != 0xaa)
                        ok = false;
        free(p);
        return ok;
}

static bool fsck_clean(const char *img, uint64_t off) {
        char *cmd = fmt("e2fsck -fn '%s?offset=%llu' >%s/fsck.log 2>&1", img, (unsigned long long)off, root);
        int rc = run(cmd);

        free(cmd);
        if (rc != 0) {
                cmd = fmt("cat %s/fsck.log >&2", root);
                run(cmd);
                free(cmd);
        }
        return rc == 0;
}

static char *debugfs(const char *img, uint64_t off, const char *request) {
        char *cmd =
            fmt("debugfs -R '%s' '%s?offset=%llu' 2>/dev/null", request, img, (unsigned long long)off);
        char *out = capture(cmd);

        free(cmd);
        return out;
}

/* Compares the tree at `a` (the source) with `b` (rdump's copy): names,
 * types, permission bits, bytes, symlink targets. */
static void compare_trees(const char *a, const char *b) {
        struct dirent **names;
        int n = scandir(a, &names, NULL, alphasort);

        CHECK(n >= 0);
        for (int i = 0; i < n; i++) {
                const char *name = names[i]->d_name;
                char *pa = fmt("%s/%s", a, name), *pb = fmt("%s/%s", b, name);
                struct stat sa, sb;

                if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                        goto next;
                CHECK(lstat(pa, &sa) == 0);
                if (lstat(pb, &sb) < 0) {
                        fprintf(stderr, "missing in the image: %s\n", pb);
                        CHECK(false);
                        goto next;
                }
                CHECK((sa.st_mode & S_IFMT) == (sb.st_mode & S_IFMT));
                if (!S_ISLNK(sa.st_mode) && (sa.st_mode & 07777) != (sb.st_mode & 07777)) {
                        fprintf(stderr, "%s: mode %o, want %o\n", pb, sb.st_mode & 07777,
                                sa.st_mode & 07777);
                        CHECK(false);
                }
                if (S_ISDIR(sa.st_mode)) {
                        compare_trees(pa, pb);
                } else if (S_ISLNK(sa.st_mode)) {
                        char ta[4096] = {0}, tb[4096] = {0};

                        CHECK(readlink(pa, ta, sizeof(ta) - 1) > 0);
                        CHECK(readlink(pb, tb, sizeof(tb) - 1) > 0);
                        CHECK_STR(tb, ta);
                } else {
                        size_t la = 0, lb = 0;
                        char *da = read_all(pa, &la), *db = read_all(pb, &lb);

                        if (!da || !db || la != lb || memcmp(da, db, la) != 0) {
                                fprintf(stderr, "%s: content differs from %s\n", pb, pa);
                                CHECK(false);
                        }
                        free(da), free(db);
                }
        next:
                free(pa), free(pb), free(names[i]);
        }
        free(names);
}

/* The value of "Name:   value" in dumpe2fs -h output. */
static char *field(const char *out, const char *name) {
        const char *p = strstr(out, name), *e;

        if (!p)
                return strdup("(missing)");
        p += strlen(name);
        while (*p == ' ' || *p == '\t')
                p++;
        e = strchr(p, '\n');
        return strndup(p, e ? (size_t)(e - p) : strlen(p));
}

static void check_superblock(const char *img, uint64_t off) {
        char *cmd = fmt("dumpe2fs -h '%s?offset=%llu' 2>/dev/null", img, (unsigned long long)off);
        char *out = capture(cmd), *f;

#define FIELD(name, want)                                                                                   \
        do {                                                                                                \
                f = field(out, name);                                                                       \
                CHECK_STR(f, want);                                                                         \
                free(f);                                                                                    \
        } while (0)
        FIELD("Filesystem UUID:", "7981aaf4-2a9a-4f86-9f1f-5b42c8f28bbf");
        FIELD("Filesystem volume name:", "a-label-longer-t");
        FIELD("Directory Hash Seed:", "0badc0de-1234-4567-89ab-cdef01234567");
        FIELD("Filesystem features:", "has_journal ext_attr resize_inode dir_index filetype extent 64bit "
                                      "flex_bg sparse_super large_file huge_file dir_nlink extra_isize "
                                      "metadata_csum");
        FIELD("Default mount options:", "user_xattr acl");
        FIELD("Block size:", "4096");
        FIELD("Inode size:", "256");
        FIELD("Inode count:", "4096");
        FIELD("Reserved block count:", "0");
        FIELD("Flex block group size:", "16");
        FIELD("Maximum mount count:", "-1");
        FIELD("Default directory hash:", "half_md4");
        FIELD("Total journal size:", "4096k");
        FIELD("Journal features:", "(none)");
        FIELD("Filesystem state:", "clean");
        FIELD("Filesystem created:", "Tue Nov 14 22:13:20 2023");
        FIELD("Last write time:", "Tue Nov 14 22:13:20 2023");
        FIELD("Last mount time:", "Tue Nov 14 22:13:20 2023");
        FIELD("Last checked:", "Tue Nov 14 22:13:20 2023");
#undef FIELD
        free(out);
        free(cmd);
}

static void check_inodes(const char *img, uint64_t off) {
        char *a, *b, *ia, *ib;

        /* Hard links: one inode, three names (two in aaaa, one in bbbb). */
        a = debugfs(img, off, "stat /nix/store/aaaa-tree/hard-a");
        b = debugfs(img, off, "stat /nix/store/bbbb-tree2/shared");
        CHECK(contains(a, "Links: 3"));
        ia = field(a, "Inode:");
        ib = field(b, "Inode:");
        CHECK(strtoul(ia, NULL, 10) > 11);
        CHECK(strtoul(ia, NULL, 10) == strtoul(ib, NULL, 10));
        free(a), free(b), free(ia), free(ib);

        /* Every time is the timestamp; owners root. */
        a = debugfs(img, off, "stat /nix/store/aaaa-tree/small.txt");
        CHECK(contains(a, "User:     0   Group:     0"));
        CHECK(contains(a, "ctime: 0x6553f100:00000000"));
        CHECK(contains(a, "atime: 0x6553f100:00000000"));
        CHECK(contains(a, "mtime: 0x6553f100:00000000"));
        CHECK(contains(a, "crtime: 0x6553f100:00000000"));
        free(a);
        a = debugfs(img, off, "stat /");
        CHECK(contains(a, "mtime: 0x6553f100:00000000"));
        CHECK(contains(a, "Mode:  0755"));
        free(a);

        /* Holes: the sparse file has two data blocks, zeros-inside two of
         * four, the fragmented file twelve extents (a tree of depth 1). */
        a = debugfs(img, off, "stat /nix/store/aaaa-tree/sparse.bin");
        CHECK(contains(a, "Size: 8388608"));
        CHECK(contains(a, "Blockcount: 16\n"));
        free(a);
        a = debugfs(img, off, "stat /nix/store/aaaa-tree/zeros-inside");
        CHECK(contains(a, "Blockcount: 16\n"));
        free(a);
        a = debugfs(img, off, "ex /nix/store/aaaa-tree/fragmented");
        CHECK(contains(a, " 0/ 1   1/  1     0 -    33"));
        CHECK(contains(a, " 1/ 1  12/ 12    33 -    33"));
        free(a);

        /* Fast and slow symlinks. */
        a = debugfs(img, off, "stat /nix/store/aaaa-tree/link-rel");
        CHECK(contains(a, "Fast link dest: \"small.txt\""));
        free(a);
        a = debugfs(img, off, "stat /nix/store/aaaa-tree/link-long");
        CHECK(contains(a, "Type: symlink"));
        CHECK(contains(a, "EXTENTS:"));
        free(a);

        /* Made directories are 0755, copied ones keep their mode. */
        a = debugfs(img, off, "stat /var/empty");
        CHECK(contains(a, "Mode:  0755"));
        free(a);
        a = debugfs(img, off, "stat /nix/store/aaaa-tree/ro");
        CHECK(contains(a, "Mode:  0555"));
        free(a);
        a = debugfs(img, off, "ls -p /etc");
        CHECK(contains(a, "/link/"));
        CHECK(contains(a, "/motd/"));
        CHECK(contains(a, "/os-release/"));
        free(a);
}

static void test_ext4_content(void) {
        const uint64_t off = MiB, size = 64 * MiB, total = 66 * MiB;
        char *src = fmt("%s/src", root), *src2 = fmt("%s/src2", root);
        char *img, *img2, *out, *cmd, *p, *q;
        test_plan tp, tp2;
        nri_ext4_options o;
        size_t la, lb;
        char *da, *db;

        make_source(src);
        make_plan(&tp, src);
        options(&o, T0);
        img = make_image("a.img", total, off, size);
        CHECK(nri_ext4_write(img, off, size, &o, &tp.plan) == 0);
        CHECK(outside_intact(img, off, size));
        CHECK(fsck_clean(img, off));
        check_superblock(img, off);
        check_inodes(img, off);

        /* Everything back with rdump. */
        out = fmt("%s/out", root);
        mkdir_p(out, 0755);
        cmd = fmt("debugfs -R 'rdump / %s' '%s?offset=%llu' >/dev/null 2>&1", out, img,
                  (unsigned long long)off);
        CHECK(run(cmd) == 0);
        p = fmt("%s/nix/store/aaaa-tree", out);
        compare_trees(tp.s[0], p);
        free(p);
        p = fmt("%s/nix/store/bbbb-tree2", out);
        compare_trees(tp.s[1], p);
        free(p);
        p = fmt("%s/etc/motd", out);
        da = read_all(p, &la);
        CHECK(da && la == 13 && memcmp(da, "hello, world\n", 13) == 0);
        free(da), free(p);
        p = fmt("%s/etc/link", out);
        {
                char t[64] = {0};
                CHECK(readlink(p, t, sizeof(t) - 1) == 9);
                CHECK_STR(t, "small.txt");
        }
        free(p);
        p = fmt("%s/etc/os-release", out);
        q = fmt("%s/var/empty", out);
        CHECK(access(p, F_OK) == 0);
        CHECK(access(q, F_OK) == 0);
        free(p), free(q);

        /* The same plan from another copy of the tree (other inodes, the
         * sparse file not sparse there), another umask: the same bytes. */
        mkdir_p(src2, 0755);
        p = fmt("%s/tree", src2);
        q = fmt("%s/tree2", src2);
        make_tree(p, true);
        make_tree2(q, p);
        free(p), free(q);
        make_plan(&tp2, src2);
        img2 = make_image("b.img", total, off, size);
        mode_t old = umask(077);
        CHECK(nri_ext4_write(img2, off, size, &o, &tp2.plan) == 0);
        umask(old);
        da = read_all(img, &la);
        db = read_all(img2, &lb);
        CHECK(da && db && la == lb && memcmp(da, db, la) == 0);
        free(da), free(db);

        free_plan(&tp), free_plan(&tp2);
        free(img), free(img2), free(out), free(cmd), free(src), free(src2);
}

/* Bytes of the superblock (at 1024 in block 0, at 0 in the first block of
 * a backup group) we set differently from mke2fs on purpose: s_mtime (0x2c)
 * is the timestamp, s_kbytes_written (0x178) is not kept, so the checksum
 * (0x3fc) differs too. */
static bool superblock_difference(uint64_t i) {
        uint64_t in_group = i % (UINT64_C(32768) * 4096), o;

        if (i < 4096)
                o = i - 1024;
        else if (in_group < 1024)
                o = in_group;
        else
                return false;
        return (o >= 0x2c && o < 0x30) || (o >= 0x178 && o < 0x180) || (o >= 0x3fc && o < 0x400);
}

/* mkfs.ext4 as systemd-repart 252 runs it, with the same UUID, hash seed
 * and time, on 18 block groups (two flex groups, backup superblocks): the
 * same bytes but for superblock_difference(). */
static void test_ext4_like_mkfs(void) {
        const uint64_t size = 2304 * MiB;
        char *ours = make_image("ours.img", size, 0, size), *theirs = fmt("%s/mkfs.img", root), *cmd;
        char *a = malloc(MiB), *b = malloc(MiB);
        nri_ext4_options o;
        nri_plan empty = {0};
        size_t diffs = 0;
        int fa, fb;

        if (run("command -v mkfs.ext4 >/dev/null") != 0) {
                fprintf(stderr, "mkfs.ext4 not found, skipping the comparison\n");
                free(ours), free(theirs), free(a), free(b);
                return;
        }
        options(&o, T0);
        o.label = "root-x86-64";
        CHECK(nri_ext4_write(ours, 0, size, &o, &empty) == 0);
        CHECK(fsck_clean(ours, 0));
        cmd =
            fmt("rm -f %s && truncate -s %llu %s && E2FSPROGS_FAKE_TIME=%lld MKE2FS_CONFIG=/etc/mke2fs.conf "
                "mkfs.ext4 -q -L root-x86-64 -U 7981aaf4-2a9a-4f86-9f1f-5b42c8f28bbf -I 256 -O has_journal "
                "-m 0 -E nodiscard,lazy_itable_init=1,hash_seed=0badc0de-1234-4567-89ab-cdef01234567 "
                "-T default %s",
                theirs, (unsigned long long)size, theirs, (long long)T0, theirs);
        CHECK(run(cmd) == 0);
        fa = open(ours, O_RDONLY | O_CLOEXEC);
        fb = open(theirs, O_RDONLY | O_CLOEXEC);
        CHECK(fa >= 0 && fb >= 0);
        for (uint64_t pos = 0; fa >= 0 && fb >= 0 && pos < size; pos += MiB) {
                if (pread(fa, a, MiB, (off_t)pos) != (ssize_t)MiB ||
                    pread(fb, b, MiB, (off_t)pos) != (ssize_t)MiB) {
                        CHECK(false);
                        break;
                }
                if (memcmp(a, b, MiB) == 0)
                        continue;
                for (uint64_t i = 0; i < MiB; i++) {
                        if (a[i] == b[i] || superblock_difference(pos + i))
                                continue;
                        if (diffs++ < 10)
                                fprintf(stderr, "byte %llu: ours %02x, mkfs.ext4's %02x\n",
                                        (unsigned long long)(pos + i), (unsigned char)a[i],
                                        (unsigned char)b[i]);
                }
        }
        CHECK_U64(diffs, 0);
        close(fa), close(fb);
        free(a), free(b), free(cmd), free(ours), free(theirs);
}

static void test_ext4_times(void) {
        const uint64_t size = 8 * MiB;
        char *src = fmt("%s/times", root), *img, *out, *f;
        nri_plan_copy c = {.target = "/f"};
        nri_plan plan = {.copies = &c, .n_copies = 1};
        nri_ext4_options o;

        mkdir_p(src, 0755);
        f = fmt("%s/f", src);
        write_file(f, "f\n", 2, 0644);
        c.source = f;

        /* 0 is a time like any other, not "now". */
        options(&o, 0);
        img = make_image("t0.img", size, 0, size);
        CHECK(nri_ext4_write(img, 0, size, &o, &plan) == 0);
        CHECK(fsck_clean(img, 0));
        out = debugfs(img, 0, "stat /f");
        CHECK(contains(out, "mtime: 0x00000000:00000000"));
        CHECK(contains(out, "crtime: 0x00000000:00000000"));
        free(out);
        out = debugfs(img, 0, "stat /lost+found");
        CHECK(contains(out, "ctime: 0x00000000:00000000"));
        CHECK(contains(out, "Mode:  0700"));
        free(out);
        {
                char *cmd = fmt("TZ=UTC dumpe2fs -h '%s' 2>/dev/null", img);
                char *v;

                out = capture(cmd);
                CHECK(!strstr(out, "Filesystem created:")); /* dumpe2fs leaves out a 0 */
                v = field(out, "Last write time:");
                CHECK_STR(v, "Thu Jan  1 00:00:00 1970");
                free(v);
                free(out), free(cmd);
        }
        free(img);

        /* Past 2038 and past 2106: the epoch bits. */
        options(&o, (INT64_C(1) << 32) + 7);
        img = make_image("t1.img", size, 0, size);
        CHECK(nri_ext4_write(img, 0, size, &o, &plan) == 0);
        out = debugfs(img, 0, "stat /f");
        CHECK(contains(out, "mtime: 0x00000007:00000001"));
        free(out);
        out = debugfs(img, 0, "stat /");
        CHECK(contains(out, "mtime: 0x00000007:00000001"));
        free(out);
        free(img);

        options(&o, -1);
        img = make_image("t2.img", size, 0, size);
        CHECK(nri_ext4_write(img, 0, size, &o, &plan) == -EINVAL);
        free(img);
        free(src), free(f);
}

static void test_ext4_min_size(void) {
        char *src = fmt("%s/src", root), *many = fmt("%s/many", root), *img;
        test_plan tp;
        nri_plan_stats st;
        nri_ext4_options o;
        uint64_t min;

        /* The test tree: at least its blocks and a half, counted from the
         * files' sizes (its sparse and zero-run files too), and it fits. */
        make_plan(&tp, src);
        CHECK(nri_plan_measure(&tp.plan, &st) == 0);
        CHECK_U64(st.symlinks, 5 + 1);
        CHECK_U64(st.long_symlinks, 1);
        CHECK_U64(st.hardlinks, 2);
        CHECK(nri_ext4_min_size(&st, &min) == 0);
        CHECK(min % 4096 == 0);
        CHECK(min >= st.blocks_4k * 4096 * 3 / 2);
        CHECK(min <= st.blocks_4k * 4096 * 2 + 8 * MiB);
        options(&o, T0);
        img = make_image("min.img", min, 0, min);
        CHECK(nri_ext4_write(img, 0, min, &o, &tp.plan) == 0);
        CHECK(fsck_clean(img, 0));
        free(img);
        free_plan(&tp);

        /* Measuring goes by the sizes stat() gives, never by the bytes nor
         * the store's holes: 8 MiB of zeros, a hole of 8 MiB and 8 MiB of
         * data measure the same, so the guess is the same on every machine. */
        {
                char *dirs[3] = {fmt("%s/zeros", root), fmt("%s/hole", root), fmt("%s/data", root)};
                uint64_t mins[3];
                char *buf = calloc(1, 8 * MiB);

                CHECK(buf != NULL);
                for (int k = 0; k < 3; k++) {
                        char *p = fmt("%s/f", dirs[k]);
                        nri_plan_copy c = {.source = dirs[k], .target = "/d"};
                        nri_plan plan = {.copies = &c, .n_copies = 1, .mtime = T0};

                        mkdir_p(dirs[k], 0755);
                        if (k == 2)
                                for (size_t i = 0; i < 8 * MiB; i++)
                                        buf[i] = (char)(i * 2654435761u >> 24);
                        if (k == 1) {
                                int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);

                                CHECK(fd >= 0 && ftruncate(fd, 8 * MiB) == 0);
                                close(fd);
                        } else
                                write_file(p, buf, 8 * MiB, 0644);
                        CHECK(nri_plan_measure(&plan, &st) == 0);
                        CHECK_U64(st.blocks_4k, 8 * MiB / 4096);
                        CHECK(nri_ext4_min_size(&st, &mins[k]) == 0);
                        free(p), free(dirs[k]);
                }
                CHECK_U64(mins[0], mins[1]);
                CHECK_U64(mins[0], mins[2]);
                free(buf);
        }

        /* 5000 empty files need inodes, not blocks. */
        mkdir_p(many, 0755);
        for (int i = 0; i < 5000; i++) {
                char *p = fmt("%s/%d", many, i);
                write_file(p, "", 0, 0644);
                free(p);
        }
        nri_plan_copy c = {.source = many, .target = "/many"};
        nri_plan plan = {.copies = &c, .n_copies = 1, .mtime = T0};
        CHECK(nri_plan_measure(&plan, &st) == 0);
        CHECK_U64(st.files, 5000);
        CHECK(nri_ext4_min_size(&st, &min) == 0);
        CHECK(min >= 5000 * UINT64_C(16384));
        img = make_image("many.img", min, 0, min);
        CHECK(nri_ext4_write(img, 0, min, &o, &plan) == 0);
        CHECK(fsck_clean(img, 0));
        free(img);

        /* Nothing: ext4's minimum. */
        st = (nri_plan_stats){0};
        CHECK(nri_ext4_min_size(&st, &min) == 0);
        CHECK_U64(min, NRI_EXT4_MIN_SIZE);

        /* Too small: -ENOSPC. */
        img = make_image("small.img", 2 * MiB, 0, 2 * MiB);
        make_plan(&tp, src);
        CHECK(nri_ext4_write(img, 0, 2 * MiB, &o, &tp.plan) == -ENOSPC);
        free_plan(&tp);
        free(img), free(src), free(many);
}

static void test_labels(void) {
        char *s = NULL;

        CHECK(nri_ext4_mangle_label("nixos", &s) == 0);
        CHECK_STR(s, "nixos");
        free(s);
        CHECK(nri_ext4_mangle_label("0123456789abcdefXYZ", &s) == 0);
        CHECK_STR(s, "0123456789abcdef");
        free(s);
        /* whole characters only: 7 × "ä" is 14 bytes, "€" would make 17 */
        CHECK(nri_ext4_mangle_label("äääääää€", &s) == 0);
        CHECK_STR(s, "äääääää");
        free(s);
        CHECK(nri_ext4_mangle_label("", &s) == 0);
        CHECK_STR(s, "");
        free(s);
        CHECK(nri_ext4_mangle_label("bad\xff", &s) == -EINVAL);
        CHECK(nri_ext4_mangle_label("\xc0\xafoverlong", &s) == -EINVAL);
        CHECK(nri_ext4_mangle_label("\xed\xa0\x80surrogate", &s) == -EINVAL);
}

/* Minimize=best: the least ext4, in 4096-byte steps, that the content
 * fits in (files without blocks of zeros: every block is written), the
 * same every time, and much less than the guess. */
static void test_ext4_best_size(void) {
        char *dir = fmt("%s/best", root), *img, *buf = malloc(70000);
        nri_plan_copy c = {.source = dir, .target = "/nix/store/best"};
        nri_plan plan = {.copies = &c, .n_copies = 1, .mtime = T0};
        nri_ext4_options o;
        nri_plan_stats st;
        uint64_t guess, best, again;

        CHECK(buf != NULL);
        for (size_t i = 0; i < 70000; i++)
                buf[i] = (char)(1 + i % 251);
        mkdir_p(dir, 0755);
        for (int i = 0; i < 3000; i++) {
                char *p = i % 100 == 0 ? fmt("%s/d%d", dir, i) : NULL, *f;

                if (p)
                        mkdir_p(p, 0755);
                f = fmt("%s/d%d/file-with-a-longer-name-%d", dir, i / 100 * 100, i);
                write_file(f, buf, (size_t)(i * 7919) % 70000, 0644);
                free(f), free(p);
        }
        free(buf);
        options(&o, T0);
        CHECK(nri_plan_measure(&plan, &st) == 0);
        CHECK(nri_ext4_min_size(&st, &guess) == 0);
        CHECK(nri_ext4_best_size(&plan, &st, &o, &best) == 0);
        CHECK(best % 4096 == 0);
        CHECK(best < guess * 3 / 4);
        CHECK(nri_ext4_best_size(&plan, &st, &o, &again) == 0);
        CHECK_U64(again, best);

        img = make_image("best.img", best, 0, best);
        CHECK(nri_ext4_write(img, 0, best, &o, &plan) == 0);
        CHECK(fsck_clean(img, 0));
        free(img);
        img = make_image("best-less.img", best - 4096, 0, best - 4096);
        CHECK(nri_ext4_write(img, 0, best - 4096, &o, &plan) == -ENOSPC);
        free(img), free(dir);
}

/* Progress lines: none in the first NRI_PROGRESS_EVERY_NS of a write (a
 * small partition shows none), then one every NRI_PROGRESS_EVERY_NS with
 * the partition, files and MiB done, and the totals when measured. */
static void test_progress(void) {
        char *log = fmt("%s/progress.log", root), *text;
        nri_partition p = {.id = "root"};
        nri_fs_part fp = {.p = &p, .what = "partition root"};
        nri_fs_progress_state ps = {.fp = &fp};
        int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        size_t len;

        CHECK(saved >= 0 && fd >= 0 && dup2(fd, 2) == 2);
        nri_fs_progress(&ps, 0, 0); /* the clock starts */
        for (int i = 1; i <= 100; i++)
                nri_fs_progress(&ps, (uint64_t)i, (uint64_t)i << 20); /* at once: no line */
        usleep(NRI_PROGRESS_EVERY_NS / 1000 + 100000);
        nri_fs_progress(&ps, 101, UINT64_C(101) << 20); /* a line */
        nri_fs_progress(&ps, 102, UINT64_C(102) << 20); /* too soon: none */
        fp.total = (nri_plan_stats){.files = 500, .bytes = UINT64_C(900) << 20};
        fp.has_total = true;
        usleep(NRI_PROGRESS_EVERY_NS / 1000 + 100000);
        nri_fs_progress(&ps, 200, UINT64_C(300) << 20);
        fflush(stderr);
        CHECK(dup2(saved, 2) == 2);
        close(fd), close(saved);
        text = read_all(log, &len); /* not NUL-terminated (tree-test.h) */
        CHECK(text != NULL);
        static const char want[] =
            "nix-repart-image: partition root: 101 files, 101 MiB written\n"
            "nix-repart-image: partition root: 200 of 500 files, 300 of 900 MiB written\n";
        CHECK(len == sizeof(want) - 1 && memcmp(text, want, len) == 0);
        free(text), free(log);
}

int main(void) {
        const char *tmp = getenv("TMPDIR");
        char *cmd;

        if (run("command -v e2fsck >/dev/null && command -v debugfs >/dev/null && "
                "command -v dumpe2fs >/dev/null") != 0) {
                fprintf(stderr, "e2fsck, debugfs or dumpe2fs not found: skipped\n");
                return 77;
        }
        snprintf(root, sizeof(root), "%s/test-ext4-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(root)) {
                perror("mkdtemp");
                return 1;
        }
        setenv("TZ", "UTC", 1);

        test_labels();
        test_ext4_content();
        test_ext4_like_mkfs();
        test_ext4_times();
        test_ext4_min_size();
        test_ext4_best_size();
        test_progress();

        cmd = fmt("chmod -R u+w '%s' && rm -rf '%s'", root, root);
        if (!check_failures)
                run(cmd);
        else
                fprintf(stderr, "left %s for inspection\n", root);
        free(cmd);
        return check_result();
}
