/* test-swap.c: the swap writer, checked with util-linux's blkid, swaplabel
 * and mkswap.
 *
 * A swap area is written into the middle of an image full of 0xaa bytes;
 * blkid and swaplabel must read its UUID and label back, the bytes around it
 * must be untouched, and the area must equal byte for byte what
 * `mkswap -U <uuid> -L <label>` writes on a file of zeros of the same size.
 * Without the tools the test is skipped (77). */
#include "check.h"
#include "testutil.h"

#include "swap.h"

#define UUID_S "5ac79c29-c0e8-4a43-9b54-2e2bd41a2a0b"

static char root[256];

static void test_write_and_read_back(void) {
        char *img = fmt("%s/image", root), *part = fmt("%s/part", root), *c, *out;
        nri_swap_options o = {.label = "swap-läbel"};
        uint64_t off = 1 * MiB, size = 4 * MiB + 1000; /* not a whole number of pages */

        CHECK(nri_uuid_parse(UUID_S, &o.uuid) == 0);
        make_image(img, 8 * MiB, 0xaa);
        CHECK(nri_swap_write(img, off, size, &o) == 0);

        /* Outside the range: untouched.  Inside: zeros but for the header. */
        CHECK(bytes_are(img, 0, off, 0xaa));
        CHECK(bytes_are(img, off + size, 8 * MiB - off - size, 0xaa));
        CHECK(bytes_are(img, off + 4096, size - 4096, 0));
        CHECK(bytes_are(img, off, 1024, 0));

        c = fmt("blkid -p -O %llu -o udev '%s'", (unsigned long long)off, img);
        out = capture(c);
        CHECK(contains(out, "ID_FS_TYPE=swap\n"));
        CHECK(contains(out, "ID_FS_UUID=" UUID_S));
        CHECK(contains(out, "ID_FS_LABEL=swap-läbel\n"));
        CHECK(contains(out, "ID_FS_VERSION=1\n"));
        free(c), free(out);

        /* swaplabel reads the partition on its own; mkswap's page count is
         * the range's whole pages: 1024, last page 1023. */
        c = fmt("dd if='%s' of='%s' bs=1024 skip=%llu count=%llu status=none", img, part,
                (unsigned long long)(off / 1024), (unsigned long long)(4 * MiB / 1024));
        CHECK(run(c) == 0);
        free(c);
        c = fmt("swaplabel '%s'", part);
        out = capture(c);
        CHECK(contains(out, "LABEL: swap-läbel"));
        CHECK(contains(out, "UUID:  " UUID_S));
        free(c), free(out);
        {
                size_t n;
                unsigned char *p = (unsigned char *)read_all(part, &n);

                CHECK(p && n == 4 * MiB);
                /* version 1, last_page 1023, no bad pages, little-endian */
                CHECK(p && p[1024] == 1 && p[1025] == 0 && p[1028] == 0xff && p[1029] == 0x03 &&
                      p[1032] == 0);
                CHECK(p && memcmp(p + 4096 - 10, "SWAPSPACE2", 10) == 0);
                free(p);
        }
        free(img), free(part);
}

/* The same bytes as mkswap on an empty file of the same size. */
static void test_same_as_mkswap(void) {
        char *ours = fmt("%s/ours", root), *theirs = fmt("%s/theirs", root), *c;
        nri_swap_options o = {.label = "fifteen-bytes!!"};
        uint64_t size = 16 * MiB;

        CHECK(nri_uuid_parse(UUID_S, &o.uuid) == 0);
        make_image(ours, size, 0x55);
        make_image(theirs, size, 0);
        CHECK(nri_swap_write(ours, 0, size, &o) == 0);
        c = fmt("mkswap -U " UUID_S " -L fifteen-bytes!! '%s' >/dev/null 2>&1", theirs);
        CHECK(run(c) == 0);
        free(c);
        c = fmt("cmp '%s' '%s'", ours, theirs);
        CHECK(run(c) == 0);
        free(c);

        /* No label: the name field stays zeros, as mkswap without -L. */
        o.label = NULL;
        make_image(theirs, size, 0);
        CHECK(nri_swap_write(ours, 0, size, &o) == 0);
        c = fmt("mkswap -U " UUID_S " '%s' >/dev/null 2>&1 && cmp '%s' '%s'", theirs, ours, theirs);
        CHECK(run(c) == 0);
        free(c);
        free(ours), free(theirs);
}

static void test_refusals(void) {
        char *img = fmt("%s/refused", root);
        nri_swap_options o = {.label = "sixteen-bytes!!!"};

        make_image(img, 1 * MiB, 0xaa);
        /* A label of 16 bytes, a range of 9 pages, a range beyond the file:
         * refused, and the file untouched. */
        CHECK(nri_swap_write(img, 0, 1 * MiB, &o) == -EINVAL);
        o.label = "ok";
        CHECK(nri_swap_write(img, 0, 9 * 4096 + 4095, &o) == -ENOSPC);
        CHECK(nri_swap_write(img, 512 * 1024, 1 * MiB, &o) == -EINVAL);
        CHECK(bytes_are(img, 0, 1 * MiB, 0xaa));
        /* Exactly the minimum is fine. */
        CHECK(nri_swap_write(img, 0, NRI_SWAP_MIN_SIZE, &o) == 0);
        free(img);
}

int main(void) {
        char *c;

        if (!have_tool("blkid") || !have_tool("swaplabel") || !have_tool("mkswap")) {
                fprintf(stderr, "test-swap: blkid, swaplabel or mkswap missing: skipped\n");
                return 77;
        }
        snprintf(root, sizeof(root), "/tmp/nri-test-swap-XXXXXX");
        if (!mkdtemp(root))
                abort();

        test_write_and_read_back();
        test_same_as_mkswap();
        test_refusals();

        c = fmt("rm -rf '%s'", root);
        run(c);
        free(c);
        return check_result();
}
