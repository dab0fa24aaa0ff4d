/* swap.c: the swap header mkswap writes (see swap.h).
 *
 * The layout is util-linux's struct swap_header_v1_2 (include/swapheader.h):
 * 1024 bytes left for a boot block, then version, last_page and
 * nr_badpages as native 32-bit integers, the 16-byte UUID, the 16-byte
 * volume name, and the magic "SWAPSPACE2" at the end of the first page.
 * mkswap writes the fields in the byte order of the machine it runs on and
 * the kernel reads them in its own: the images are for little-endian
 * machines (x86-64, arm64), so they are written little-endian here whatever
 * the builder runs on. */
#include "swap.h"
#include "fs.h"
#include "log.h"
#include "range.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define BOOTBITS 1024
#define MAGIC "SWAPSPACE2"

static void put_le32(uint8_t *p, uint32_t v) {
        for (size_t i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

int nri_swap_write(const char *image_path, uint64_t offset, uint64_t size, const nri_swap_options *o) {
        const char *what = o->what ? o->what : "swap";
        uint8_t page[NRI_SWAP_PAGE_SIZE] = {0};
        size_t label_len = o->label ? strlen(o->label) : 0;
        uint64_t pages = size / NRI_SWAP_PAGE_SIZE;
        int fd, r;

        if (label_len > NRI_SWAP_LABEL_MAX) {
                log_error("%s: the label \"%s\" has %zu bytes, a swap label at most %d", what, o->label,
                          label_len, NRI_SWAP_LABEL_MAX);
                return -EINVAL;
        }
        if (pages < NRI_SWAP_MIN_SIZE / NRI_SWAP_PAGE_SIZE) {
                log_error("%s: %" PRIu64 " bytes is too small for swap: it needs at least %" PRIu64 "", what,
                          size, (uint64_t)NRI_SWAP_MIN_SIZE);
                return -ENOSPC;
        }
        if (pages - 1 > UINT32_MAX) {
                log_error("%s: %" PRIu64 " pages are more than a swap header counts", what, pages);
                return -EINVAL;
        }

        put_le32(page + BOOTBITS + 0, 1);                     /* version */
        put_le32(page + BOOTBITS + 4, (uint32_t)(pages - 1)); /* last_page */
        put_le32(page + BOOTBITS + 8, 0);                     /* nr_badpages */
        memcpy(page + BOOTBITS + 12, o->uuid.b, sizeof(o->uuid.b));
        if (label_len)
                memcpy(page + BOOTBITS + 28, o->label, label_len);
        memcpy(page + NRI_SWAP_PAGE_SIZE - strlen(MAGIC), MAGIC, strlen(MAGIC));

        r = nri_range_open(image_path, offset, size, what, &fd);
        if (r < 0)
                return r;
        r = nri_range_clear(fd, offset, size);
        if (r >= 0)
                r = nri_pwrite_all(fd, page, sizeof(page), offset);
        if (r < 0)
                log_error("%s: %s: cannot write the swap area at %" PRIu64 ": %s", what, image_path, offset,
                          strerror(-r));
        if (close(fd) < 0 && r >= 0) {
                r = -errno;
                log_error_errno(r, "%s: %s: %m", what, image_path);
        }
        return r;
}

/* ---- the file-system table's writer (fs.h) ---- */

/* The label is the partition's, which the evaluator and nri_spec_check()
 * have checked against the row's label_problem (at most 15 bytes). */
static int write_fs(const nri_fs_part *fp) {
        nri_swap_options o = {
            .uuid = fp->p->fs_uuid,
            .label = fp->p->label,
            .what = fp->what,
        };

        return nri_swap_write(fp->image, fp->offset, fp->size, &o);
}

/* No guess_size: a swap area has no content to measure, and the partition
 * keeps its size (systemd-repart skips it when minimizing). */
const nri_fs_writer nri_swap_fs = {
    .write = write_fs,
};
