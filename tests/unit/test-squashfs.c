/* test-squashfs.c: the SquashFS writer, checked with squashfs-tools
 * (unsquashfs, mksquashfs) and squashfs-tools-ng (sqfsdiff).
 *
 * A plan of two store paths, `contents` and made directories (every kind of
 * entry: empty, small, block-sized, multi-block, sparse, zero-filled and
 * setuid files, symlinks up to 4000 bytes, hard links across store paths,
 * 3000 names in one directory, a tree 60 deep, 255-byte and UTF-8 names, a
 * read-only directory) is built into a temporary file (its size is what
 * Minimize= takes) and placed at 1 MiB into an image full of 0xaa.  Then
 * `unsquashfs -d` must give back what `cp -a` of the sources gives (names,
 * types, modes, bytes, symlink targets, times, hard links as hard links),
 * `sqfsdiff` must find no difference from what mksquashfs (the program
 * systemd-repart runs) makes of that cp -a tree, `unsquashfs -stat` must show
 * mksquashfs's defaults and the timestamp; writing straight into a range of
 * exactly that size must give the same bytes, one block less must be
 * refused; four threads must give the bytes one gives; xz, zstd and lz4 must
 * work too; a source written to while it is read fails the write.  Without
 * the tools the test is skipped (77). */
#include "check.h"
#include "testutil.h"

#include "squashfs.h"

#define T0 INT64_C(1700000000)

static char root[256];

static uint64_t build_size(const nri_plan *plan, const nri_squashfs_options *o, const char *dest) {
        nri_squashfs_image *img = NULL;
        uint64_t size = 0;

        CHECK(nri_squashfs_build(plan, o, root, &img) == 0);
        if (!img)
                return 0;
        size = nri_squashfs_image_size(img);
        make_image(dest, size, 0x55);
        CHECK(nri_squashfs_image_place(img, dest, 0, size) == 0);
        nri_squashfs_image_free(img);
        return size;
}

static void test_tree(void) {
        char *src = fmt("%s/src", root), *want = fmt("%s/want", root), *img = fmt("%s/image", root),
             *part = fmt("%s/part", root), *direct = fmt("%s/direct", root), *ref = fmt("%s/ref.sqfs", root),
             *x = fmt("%s/x", root), *c, *out;
        nri_squashfs_options o = {.timestamp = T0, .what = "test"};
        nri_squashfs_image *sq = NULL;
        uint64_t size = 0, used = 0, off = 1 * MiB;
        test_plan tp;

        make_source(src, 3000);
        make_plan(&tp, src, T0);
        make_expected(&tp, want);

        CHECK(nri_squashfs_build(&tp.plan, &o, root, &sq) == 0);
        if (!sq)
                return;
        size = nri_squashfs_image_size(sq);
        CHECK(size % 4096 == 0 && size > 0);
        make_image(img, off + size + MiB, 0xaa);
        CHECK(nri_squashfs_image_place(sq, img, off, size - 4096) == -ENOSPC);
        CHECK(bytes_are(img, 0, off + size + MiB, 0xaa));
        CHECK(nri_squashfs_image_place(sq, img, off, size + 8192) == 0);
        nri_squashfs_image_free(sq);
        CHECK(bytes_are(img, 0, off, 0xaa));
        CHECK(bytes_are(img, off + size, 8192, 0));
        CHECK(bytes_are(img, off + size + 8192, MiB - 8192, 0xaa));

        c = fmt("dd if='%s' of='%s' bs=4096 skip=%llu count=%llu status=none", img, part,
                (unsigned long long)(off / 4096), (unsigned long long)(size / 4096));
        CHECK(run(c) == 0);
        free(c);

        /* The tree back, with modes, times and hard links. */
        c = fmt("rm -rf '%s' && unsquashfs -q -n -d '%s' '%s' >/dev/null", x, x, part);
        CHECK(run(c) == 0);
        free(c);
        CHECK(compare_trees(x, want, 07777, T0) == 0);
        {
                char *a = fmt("%s/nix/store/aaaa-tree/hard-a", x),
                     *b = fmt("%s/nix/store/aaaa-tree/hard-b", x),
                     *s = fmt("%s/nix/store/bbbb-tree2/shared", x);
                struct stat sa, sb, ss;

                CHECK(lstat(a, &sa) == 0 && lstat(b, &sb) == 0 && lstat(s, &ss) == 0);
                CHECK(sa.st_ino == sb.st_ino && sa.st_ino == ss.st_ino && sa.st_nlink == 3);
                free(a), free(b), free(s);
        }

        /* The same contents, owners and permissions as mksquashfs's image
         * of the cp -a tree. */
        c = fmt("mksquashfs '%s' '%s' -noappend -all-root -quiet -no-progress >/dev/null && "
                "sqfsdiff -a '%s' -b '%s'",
                want, ref, ref, part);
        CHECK(run(c) == 0);
        free(c);

        c = fmt("TZ=UTC unsquashfs -stat '%s'", part);
        out = capture(c);
        CHECK(contains(out, "Creation or last append time Tue Nov 14 22:13:20 2023"));
        CHECK(contains(out, "Compression gzip\n"));
        CHECK(contains(out, "Block size 131072\n"));
        CHECK(contains(out, "Filesystem is exportable via NFS"));
        CHECK(contains(out, "Duplicates are removed"));
        free(c), free(out);
        c = fmt("TZ=UTC unsquashfs -lls '%s'", part);
        out = capture(c);
        CHECK(contains(out, "-r--r--r-- root/root                21 2023-11-14 22:13 "
                            "squashfs-root/nix/store/aaaa-tree/hard-b\n"));
        CHECK(contains(out, "-rwsr-xr-x root/root                 2 2023-11-14 22:13 "
                            "squashfs-root/nix/store/aaaa-tree/setuid-like\n"));
        CHECK(contains(out, "squashfs-root/etc/link -> small.txt\n"));
        CHECK(contains(out, "dr-xr-xr-x root/root"));
        free(c), free(out);

        /* Straight into the image: the same bytes; one block less: refused. */
        make_image(direct, off + size + MiB, 0xaa);
        CHECK(nri_squashfs_write(direct, off, size, &o, &tp.plan, &used) == 0 && used == size);
        c = fmt("cmp -n %llu '%s' '%s'", (unsigned long long)(off + size), img, direct);
        CHECK(run(c) == 0);
        free(c);
        CHECK(nri_squashfs_write(direct, off, size - 4096, &o, &tp.plan, &used) == -ENOSPC);

        /* Four threads: the bytes of one. */
        o.workers = 4;
        make_image(direct, size, 0);
        CHECK(nri_squashfs_write(direct, 0, size, &o, &tp.plan, &used) == 0 && used == size);
        c = fmt("cmp '%s' '%s'", part, direct);
        CHECK(run(c) == 0);
        free(c);
        o.workers = 0;

        /* Other compressors, read back the same. */
        {
                static const char *const names[] = {"xz", "zstd", "lz4"};

                for (size_t i = 0; i < 3; i++) {
                        char *p = fmt("%s/%s.sqfs", root, names[i]);

                        o.compressor = names[i];
                        o.level = i == 1 ? 3 : 0;
                        CHECK(build_size(&tp.plan, &o, p) > 0);
                        c = fmt(
                            "sqfsdiff -a '%s' -b '%s' && unsquashfs -stat '%s' | grep -q '^Compression %s$'",
                            ref, p, p, names[i]);
                        CHECK(run(c) == 0);
                        free(c), free(p);
                }
                o.compressor = "lzo";
                CHECK(nri_squashfs_write(direct, 0, size, &o, &tp.plan, NULL) == -EOPNOTSUPP);
                o.compressor = "brotli";
                CHECK(nri_squashfs_write(direct, 0, size, &o, &tp.plan, NULL) == -EOPNOTSUPP);
                o.compressor = NULL, o.level = 0;
        }

        /* Hard links ignored: a copy for each name. */
        tp.plan.ignore_hardlinks = true;
        CHECK(build_size(&tp.plan, &o, direct) > 0);
        c = fmt("rm -rf '%s' && unsquashfs -q -n -d '%s' '%s' >/dev/null && "
                "[ $(stat -c %%h '%s/nix/store/aaaa-tree/hard-b') = 1 ]",
                x, x, direct, x);
        CHECK(run(c) == 0);
        free(c);

        free_plan(&tp);
        free(src), free(want), free(img), free(part), free(direct), free(ref), free(x);
}

static void test_edges(void) {
        char *img = fmt("%s/empty", root), *c;
        nri_squashfs_options o = {.timestamp = 0};
        nri_plan plan = {0};

        CHECK(build_size(&plan, &o, img) == 4096);
        c = fmt("[ \"$(unsquashfs -lls '%s' | grep -c squashfs-root)\" = 1 ]", img);
        CHECK(run(c) == 0);
        free(c);
        o.timestamp = INT64_C(1) << 32;
        CHECK(nri_squashfs_write(img, 0, 4096, &o, &plan, NULL) == -EINVAL);
        o.timestamp = 0, o.block_size = 3000;
        CHECK(nri_squashfs_write(img, 0, 4096, &o, &plan, NULL) == -EINVAL);
        free(img);
}

/* A source written to while it is read: -ESTALE naming it; a plan that
 * counts on a directory SquashFS does not make: -EINVAL. */
static void test_refusals(void) {
        char *src = fmt("%s/changing", root), *file = fmt("%s/changing/lib.so", root),
             *img = fmt("%s/changing.img", root);
        nri_squashfs_options o = {.timestamp = T0, .compressor = "lz4"};
        nri_plan_copy copy = {.source = src, .target = "/"};
        nri_plan plan = {.copies = &copy, .n_copies = 1, .mtime = T0};
        const char *existing[] = {"/lost+found", NULL};
        char *big = malloc(32 * MiB);
        pid_t changer;

        mkdir_p(src, 0755);
        fill(big, 32 * MiB, 9);
        write_file(file, big, 32 * MiB, 0444);
        free(big);
        make_image(img, 64 * MiB, 0);
        changer = start_changer(file);
        CHECK(nri_squashfs_write(img, 0, 64 * MiB, &o, &plan, NULL) == -ESTALE);
        stop_changer(changer);

        plan.existing = existing;
        CHECK(nri_squashfs_write(img, 0, 64 * MiB, &o, &plan, NULL) == -EINVAL);
        free(src), free(file), free(img);
}

int main(void) {
        char *c;

        if (!have_tool("unsquashfs") || !have_tool("mksquashfs") || !have_tool("sqfsdiff")) {
                fprintf(stderr, "test-squashfs: squashfs-tools or squashfs-tools-ng missing: skipped\n");
                return 77;
        }
        snprintf(root, sizeof(root), "/tmp/nri-test-squashfs-XXXXXX");
        if (!mkdtemp(root))
                abort();

        test_edges();
        test_tree();
        test_refusals();

        c = fmt("chmod -R u+w '%s'; rm -rf '%s'", root, root);
        run(c);
        free(c);
        return check_result();
}
