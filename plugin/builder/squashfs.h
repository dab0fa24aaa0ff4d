/* squashfs.h: a SquashFS 4.0 file system, through libsquashfs.
 *
 * The builder fills it through libsquashfs (squashfs-tools-ng 1.2, Debian's
 * libsquashfs-dev) straight from the walk (plan.h): file data is fed to
 * libsquashfs's block processor as the walk reads it (compressed on
 * `workers` threads, blocks of zeros kept as holes, duplicate blocks and
 * tail fragments stored once after a byte-for-byte check), then the inodes,
 * the sorted directory listings, the fragment, export (NFS) and ID tables
 * are written.  No staging tree, no mksquashfs.
 *
 * The bytes depend only on the plan and the options: every time is the
 * timestamp (the superblock's too), owners are root, the order is the
 * walk's (the files' data in walk order, directory listings sorted by
 * name), and the threads' output is put back in submission order.  Hard
 * links within the plan are one inode with several names (see
 * nri_plan.ignore_hardlinks).  Defaults are mksquashfs's, which
 * systemd-repart runs for Format=squashfs (`mksquashfs <root> <node>
 * -noappend`, plus `-comp`/`-Xcompression-level` from Compression= and
 * CompressionLevel= in newer versions): gzip at level 9, 128 KiB blocks,
 * fragments, duplicate detection, an export table, the image padded to
 * 4096 bytes.
 *
 * Its size is known only once the data is compressed.  So the size
 * Minimize= needs comes from writing it: nri_squashfs_build() writes the
 * whole file system into an unnamed temporary file (O_TMPFILE) in a
 * directory given by the caller, nri_squashfs_image_size() is its size,
 * and nri_squashfs_image_place() copies it into the image once the
 * partitions are laid out (copy_file_range(): shared blocks where the file
 * system can, a kernel copy where it cannot).  That is a staging copy of
 * the compressed file system, never of the closure: the store is read
 * once.  Compressing twice (once to count, once to write) would avoid the
 * copy at the cost of all the CPU time again, and gzip at level 9 is what
 * dominates.  When the partition's size is fixed (Minimize=off),
 * nri_squashfs_write() writes straight into the image instead.
 *
 * For issue 13's file-system ops table:
 *   read-only:      yes
 *   holds:          symlinks, hard links; devices, sockets and FIFOs the
 *                   walk never hands over (the store has none)
 *   minimum size:   none beyond the content (systemd-repart has none either)
 *   Minimize=:      best and guess (alike for read-only formats in
 *                   systemd-repart) take nri_squashfs_image_size() of the
 *                   built file system: exact
 *   reserved names: none
 *   UUID, label:    SquashFS has neither (mksquashfs gets none from
 *                   systemd-repart); blkid shows no UUID
 *   timestamps:     SOURCE_DATE_EPOCH (plan->mtime), 0 to 2^32-1 */
#pragma once

#include <stdint.h>

#include "plan.h"

#define NRI_SQUASHFS_PAD 4096 /* mksquashfs pads the image to 4 KiB */

typedef struct nri_squashfs_options {
        /* Every inode's time and the superblock's.  0 … 2^32-1. */
        int64_t timestamp;
        /* "gzip" (NULL: mksquashfs's default), "xz", "lzma", "lz4" or
         * "zstd": libsquashfs's names, which are mksquashfs's -comp names
         * (Debian's libsquashfs has no lzo). */
        const char *compressor;
        /* The compressor's level (gzip 1-9, xz 0-9, zstd 1-22); 0: its
         * default (gzip 9, xz 6, zstd 15). */
        unsigned level;
        uint32_t block_size; /* a power of two from 4 KiB to 1 MiB; 0: 128 KiB */
        unsigned workers;    /* compressing threads; 0: one */
        const char *what;    /* for messages, e.g. "partition store" (NULL: "squashfs") */
} nri_squashfs_options;

/* Writes the file system over bytes [offset, offset + size) of the existing
 * file `image_path`, the rest of the range zeros, nothing outside it
 * touched; *ret_used (unless NULL) gets the bytes it takes, a multiple of
 * 4096.  0, -ENOSPC (it does not fit: the range's content is then
 * undefined), -EINVAL (bad options, a range beyond the file), -EOPNOTSUPP
 * (a compressor this libsquashfs lacks), -ESTALE (a source changed while
 * it was read), or an errno of the walk, the I/O or libsquashfs; every
 * error is logged to stderr. */
int nri_squashfs_write(const char *image_path, uint64_t offset, uint64_t size, const nri_squashfs_options *o,
                       const nri_plan *plan, uint64_t *ret_used);

/* A file system built into a temporary file, to be placed later. */
typedef struct nri_squashfs_image nri_squashfs_image;

/* Builds the file system into an unnamed temporary file in `tmp_dir` (put
 * it on the image's file system, where copying can share blocks).  Errors
 * as nri_squashfs_write()'s. */
int nri_squashfs_build(const nri_plan *plan, const nri_squashfs_options *o, const char *tmp_dir,
                       nri_squashfs_image **ret);

/* Its size: a multiple of 4096, exactly what nri_squashfs_image_place()
 * writes. */
uint64_t nri_squashfs_image_size(const nri_squashfs_image *img);

/* Copies it over bytes [offset, offset + size) of `image_path`, the rest of
 * the range zeros.  0, -ENOSPC (size is smaller than the file system),
 * -EINVAL or an errno of the I/O; logged. */
int nri_squashfs_image_place(const nri_squashfs_image *img, const char *image_path, uint64_t offset,
                             uint64_t size);

void nri_squashfs_image_free(nri_squashfs_image *img);
