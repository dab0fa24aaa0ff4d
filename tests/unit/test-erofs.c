/* test-erofs.c: the EROFS writer, checked with erofs-utils (fsck.erofs,
 * dump.erofs) and blkid.
 *
 * A plan of two store paths, `contents` and made directories (every kind of
 * entry: empty, small, block-sized, multi-block, sparse and setuid files,
 * symlinks up to 4000 bytes, hard links across store paths, 3000 names in
 * one directory, a tree 60 deep, 255-byte and UTF-8 names, a read-only
 * directory) is written at 1 MiB into an image full of 0xaa, into a range of
 * exactly nri_erofs_size() bytes (Minimize=best).  Then fsck.erofs must find
 * it clean, `fsck.erofs --extract` must give back the tree that `cp -a` of
 * the same sources gives (names, types, permissions, bytes, symlink targets,
 * times), dump.erofs must show one inode behind the hard links and the
 * superblock's UUID and time, blkid the UUID and label; the same plan must
 * give the same bytes again; a range one block short must be refused before
 * anything is written.  A file over 4 GiB (sparse) takes an extended inode.
 * A source written to while it is copied fails the write.
 * Without erofs-utils the test is skipped (77). */
#include "check.h"
#include "testutil.h"

#include "erofs.h"

#define T0 INT64_C(1700000000)
#define UUID_S "7981aaf4-2a9a-4f86-9f1f-5b42c8f28bbf"

static char root[256];

/* Runs fsck.erofs with `args`: clean means exit 0 and no error printed
 * (erofs-utils 1.5 exits 0 after "failed to verify superblock checksum"). */
static bool fsck_clean(const char *args) {
        char *c = fmt("fsck.erofs %s 2>&1; echo \"exit=$?\"", args), *out = capture(c);
        bool ok = strstr(out, "exit=0\n") && !strstr(out, "<E>") && !strstr(out, "<W>");

        if (!ok)
                fprintf(stderr, "fsck.erofs %s:\n%s", args, out);
        free(c), free(out);
        return ok;
}

static char *dump_path(const char *img, const char *path) {
        char *c = fmt("dump.erofs --path='%s' '%s'", path, img), *out = capture(c);

        free(c);
        return out;
}

static uint64_t nid_of(const char *img, const char *path) {
        char *out = dump_path(img, path), *p = strstr(out, "NID: ");
        uint64_t nid = p ? strtoull(p + 5, NULL, 10) : 0;

        free(out);
        return nid;
}

static void test_tree(void) {
        char *src = fmt("%s/src", root), *want = fmt("%s/want", root), *img = fmt("%s/image", root),
             *part = fmt("%s/part", root), *again = fmt("%s/again", root), *x = fmt("%s/x", root), *c, *out;
        nri_erofs_options o = {.timestamp = T0, .label = "nix-store", .what = "test"};
        uint64_t size = 0, off = 1 * MiB;
        test_plan tp;

        CHECK(nri_uuid_parse(UUID_S, &o.uuid) == 0);
        make_source(src, 3000);
        make_plan(&tp, src, T0);
        make_expected(&tp, want);

        CHECK(nri_erofs_size(&tp.plan, &o, &size) == 0);
        CHECK(size % 4096 == 0 && size > 10 * MiB && size < 20 * MiB);
        make_image(img, off + size + MiB, 0xaa);
        /* One block short: refused, nothing written. */
        CHECK(nri_erofs_write(img, off, size - 4096, &o, &tp.plan) == -ENOSPC);
        CHECK(bytes_are(img, 0, off + size + MiB, 0xaa));
        CHECK(nri_erofs_write(img, off, size, &o, &tp.plan) == 0);
        CHECK(bytes_are(img, 0, off, 0xaa));
        CHECK(bytes_are(img, off + size, MiB, 0xaa));

        c = fmt("dd if='%s' of='%s' bs=4096 skip=%llu count=%llu status=none", img, part,
                (unsigned long long)(off / 4096), (unsigned long long)(size / 4096));
        CHECK(run(c) == 0);
        free(c);

        c = fmt("'%s'", part);
        CHECK(fsck_clean(c));
        free(c);
        c = fmt("--extract='%s' '%s'", x, part);
        CHECK(fsck_clean(c));
        free(c);
        /* fsck.erofs --extract drops setuid bits (it chowns after chmod):
         * those are checked in the inode below. */
        CHECK(compare_trees(x, want, 0777, T0) == 0);

        /* The superblock. */
        c = fmt("dump.erofs -s '%s'", part);
        out = capture(c);
        CHECK(contains(out, "Filesystem UUID:                              " UUID_S));
        CHECK(contains(out, "Filesystem root nid:                          36\n"));
        CHECK(contains(out, "sb_csum"));
        {
                char *blocks = fmt("Filesystem blocks:                            %llu\n",
                                   (unsigned long long)(size / 4096));

                CHECK(contains(out, blocks));
                free(blocks);
        }
        free(c), free(out);
        c = fmt("blkid -p -o udev '%s'", part);
        out = capture(c);
        CHECK(contains(out, "ID_FS_TYPE=erofs\n"));
        CHECK(contains(out, "ID_FS_UUID=" UUID_S "\n"));
        CHECK(contains(out, "ID_FS_LABEL=nix-store\n"));
        free(c), free(out);

        /* Hard links: one inode, three names, across two store paths. */
        {
                uint64_t a = nid_of(part, "/nix/store/aaaa-tree/hard-a");

                CHECK(a != 0);
                CHECK(nid_of(part, "/nix/store/aaaa-tree/hard-b") == a);
                CHECK(nid_of(part, "/nix/store/bbbb-tree2/shared") == a);
                out = dump_path(part, "/nix/store/bbbb-tree2/shared");
                CHECK(contains(out, "Links: 3"));
                free(out);
        }
        /* The setuid bit, in the inode itself: i_mode at byte 4. */
        {
                uint64_t nid = nid_of(part, "/nix/store/aaaa-tree/setuid-like");
                size_t n;
                unsigned char *p = (unsigned char *)read_all(part, &n);

                CHECK(p && nid && nid * 32 + 6 <= n &&
                      (p[nid * 32 + 4] | p[nid * 32 + 5] << 8) == (S_IFREG | 04755));
                free(p);
        }
        out = dump_path(part, "/nix/store/aaaa-tree/sub");
        CHECK(contains(out, "directory"));
        free(out);

        /* The same bytes again, from a fresh image. */
        make_image(again, off + size + MiB, 0);
        CHECK(nri_erofs_write(again, off, size, &o, &tp.plan) == 0);
        c = fmt("cmp -i %llu -n %llu '%s' '%s'", (unsigned long long)off, (unsigned long long)size, img,
                again);
        CHECK(run(c) == 0);
        free(c);

        /* Hard links ignored: three inodes, each with its own copy. */
        tp.plan.ignore_hardlinks = true;
        CHECK(nri_erofs_size(&tp.plan, &o, &size) == 0);
        make_image(img, size, 0);
        CHECK(nri_erofs_write(img, 0, size, &o, &tp.plan) == 0);
        c = fmt("'%s'", img);
        CHECK(fsck_clean(c));
        free(c);
        CHECK(nid_of(img, "/nix/store/aaaa-tree/hard-b") != nid_of(img, "/nix/store/aaaa-tree/hard-a"));
        out = dump_path(img, "/nix/store/bbbb-tree2/shared");
        CHECK(contains(out, "Links: 1"));
        free(out);

        free_plan(&tp);
        free(src), free(want), free(img), free(part), free(again), free(x);
}

/* An empty plan: the root alone, one block. */
static void test_empty(void) {
        char *img = fmt("%s/empty", root), *c;
        nri_erofs_options o = {.timestamp = 0};
        nri_plan plan = {0};
        uint64_t size = 0;

        CHECK(nri_erofs_size(&plan, &o, &size) == 0 && size == 4096);
        make_image(img, 8192, 0xaa);
        CHECK(nri_erofs_write(img, 0, 8192, &o, &plan) == 0);
        CHECK(bytes_are(img, 4096, 4096, 0));
        c = fmt("'%s'", img);
        CHECK(fsck_clean(c));
        free(c);
        c = fmt("dump.erofs -s '%s' | grep -q 'inode count:  *1$'", img);
        CHECK(run(c) == 0);
        free(c);
        free(img);
}

/* A file of 4 GiB and more: 64-bit size, so an extended inode; sparse in the
 * source, so sparse in the image file too. */
static void test_large_file(void) {
        char *src = fmt("%s/large", root), *big = fmt("%s/large/big", root),
             *img = fmt("%s/large.img", root), *c, *out;
        nri_erofs_options o = {.timestamp = T0};
        nri_plan_copy copy = {.source = src, .target = "/"};
        nri_plan plan = {.copies = &copy, .n_copies = 1, .mtime = T0};
        uint64_t size = 0, len = (UINT64_C(4) << 30) + 5000;
        struct stat st;
        int fd;

        mkdir_p(src, 0755);
        fd = open(big, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        CHECK(fd >= 0 && ftruncate(fd, (off_t)len) == 0);
        write_at(fd, 12345, "start", 5);
        write_at(fd, len - 3, "end", 3);
        close(fd);

        CHECK(nri_erofs_size(&plan, &o, &size) == 0);
        CHECK(size == 4096 + (len + 4095) / 4096 * 4096 || size == 4096 + len / 4096 * 4096);
        make_image(img, 0, 0);
        CHECK(truncate(img, (off_t)size) == 0);
        CHECK(nri_erofs_write(img, 0, size, &o, &plan) == 0);
        CHECK(stat(img, &st) == 0 && (uint64_t)st.st_blocks * 512 < 64 * MiB);
        out = dump_path(img, "/big");
        CHECK(contains(out, "Size: 4294972296 "));
        CHECK(contains(out, "Inode size: 64"));
        free(out);
        c = fmt("'%s'", img);
        CHECK(fsck_clean(c));
        free(c);
        free(src), free(big), free(img);
}

/* A source written to while it is copied: -ESTALE naming it; a plan that
 * counts on a directory EROFS does not make: -EINVAL. */
static void test_refusals(void) {
        char *src = fmt("%s/changing", root), *file = fmt("%s/changing/lib.so", root),
             *img = fmt("%s/changing.img", root);
        nri_erofs_options o = {.timestamp = T0};
        nri_plan_copy copy = {.source = src, .target = "/"};
        nri_plan plan = {.copies = &copy, .n_copies = 1, .mtime = T0};
        const char *existing[] = {"/lost+found", NULL};
        uint64_t size = 0;
        char *big = malloc(32 * MiB);
        pid_t changer;

        mkdir_p(src, 0755);
        fill(big, 32 * MiB, 9);
        write_file(file, big, 32 * MiB, 0444);
        free(big);
        CHECK(nri_erofs_size(&plan, &o, &size) == 0);
        make_image(img, size, 0);
        changer = start_changer(file);
        CHECK(nri_erofs_write(img, 0, size, &o, &plan) == -ESTALE);
        stop_changer(changer);

        plan.existing = existing;
        CHECK(nri_erofs_size(&plan, &o, &size) == -EINVAL);
        free(src), free(file), free(img);
}

int main(void) {
        char *c;

        if (!have_tool("fsck.erofs") || !have_tool("dump.erofs") || !have_tool("blkid")) {
                fprintf(stderr, "test-erofs: erofs-utils or blkid missing: skipped\n");
                return 77;
        }
        snprintf(root, sizeof(root), "/tmp/nri-test-erofs-XXXXXX");
        if (!mkdtemp(root))
                abort();

        test_empty();
        test_tree();
        test_large_file();
        test_refusals();

        c = fmt("chmod -R u+w '%s'; rm -rf '%s'", root, root);
        run(c);
        free(c);
        return check_result();
}
