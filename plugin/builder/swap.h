/* swap.h: a swap area, as mkswap (util-linux 2.38) makes it.
 *
 * nri_swap_write() writes what `mkswap -L <label> -U <uuid> <partition>`
 * writes — the command systemd-repart runs for Format=swap — into a byte
 * range of an image file: one header page of 4096 bytes (the swap header
 * version 1: last_page, no bad pages, the UUID, the label, and the
 * "SWAPSPACE2" signature in the page's last 10 bytes), the rest of the range
 * zeros.  Byte for byte the page mkswap writes on an empty file of the same
 * size (tests/unit/test-swap.c compares them).
 *
 * For issue 13's file-system ops table:
 *   read-only:      no (the kernel writes pages into it; nothing is copied in)
 *   holds:          no files at all: CopyFiles=, MakeDirectories= and the
 *                   Nix store with Format=swap are an error, as
 *                   systemd-repart refuses them
 *   minimum size:   NRI_SWAP_MIN_SIZE, mkswap's ten pages (systemd-repart
 *                   has no minimum of its own for swap; its default
 *                   SizeMinBytes= of 10 MiB applies)
 *   Minimize=:      nothing to measure: the partition keeps its size (as
 *                   systemd-repart, which skips partitions without content)
 *   reserved names: none
 *   UUID:           the file-system UUID derived from the partition UUID
 *                   (nri_uuid_file_system()), as for ext4
 *   label:          systemd-repart's mangle_linux_fs_label(label, 15): the
 *                   caller passes it cut to whole UTF-8 characters within 15
 *                   bytes (NRI_SWAP_LABEL_MAX); longer is -EINVAL here
 * Swap pages are 4096 bytes, the page size of x86-64 and of arm64 kernels
 * built with 4 KiB pages; a kernel with larger pages refuses the area. */
#pragma once

#include <stdint.h>

#include "nix-repart-image/file-systems.h"
#include "nix-repart-image/uuid.h"

#define NRI_SWAP_PAGE_SIZE 4096
/* NRI_SWAP_MIN_SIZE (mkswap's ten pages) and NRI_SWAP_LABEL_MAX (15 bytes)
 * are the file-system table's (file-systems.h). */
_Static_assert(NRI_SWAP_MIN_SIZE == 10 * NRI_SWAP_PAGE_SIZE, "mkswap's minimum is ten pages");

typedef struct nri_swap_options {
        nri_uuid uuid;     /* the header's UUID (printed byte order) */
        const char *label; /* NULL or "": none; at most NRI_SWAP_LABEL_MAX bytes */
        const char *what;  /* for messages, e.g. "partition swap" (NULL: "swap") */
} nri_swap_options;

/* Writes a swap area over bytes [offset, offset + size) of the existing file
 * `image_path`, size rounded down to whole pages (the area's last page is
 * the range's last whole page).  0, -ENOSPC (fewer than 10 pages), -EINVAL
 * (a label too long, a range beyond the file) or the errno of the I/O; every
 * error is logged to stderr. */
int nri_swap_write(const char *image_path, uint64_t offset, uint64_t size, const nri_swap_options *o);
