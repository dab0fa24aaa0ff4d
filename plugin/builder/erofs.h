/* erofs.h: an EROFS file system, uncompressed, written from the walk.
 *
 * nri_erofs_write() lays out and writes an EROFS image (Linux 5.4 and
 * later, erofs-utils 1.5) straight from the store through the walk
 * (plan.h): no staging tree and no mkfs.erofs.  Why our own writer: Debian
 * 12's erofs-utils is 1.5, whose mkfs.erofs reads only a directory tree (its
 * --tar input came in 1.7), so feeding it would need a staging copy of the
 * closure, or a FUSE or overlay view of one, which a sandboxed build does
 * not have; and the uncompressed format is small (a superblock, 32- or
 * 64-byte inodes, sorted directory blocks, contiguous data).
 *
 * The layout, the same for the same plan and options:
 *   block 0:     1024 bytes of zeros, the superblock (with its CRC32C), then
 *                the inodes from nid 36 on, in the order of the walk (the
 *                root first), 32-byte aligned, each followed by its inline
 *                tail: the last partial block of a file, a directory or a
 *                symlink target lives right after the inode when it fits in
 *                what is left of that metadata block (or the next one, when
 *                that wastes less than a block of its own);
 *   then:        every inode's whole data blocks, in the order of the walk.
 * Every inode is compact (32 bytes, its time the superblock's) unless its
 * size needs 64 bits or its link count 32: then extended, with the same
 * time.  Directories hold "." and ".." and their names sorted by bytes, as
 * the kernel's binary search needs.  Owners are root; modes as in the store;
 * hard links within the plan are one inode with several names (see
 * nri_plan.ignore_hardlinks); holes of a source file stay holes in the
 * image file, but EROFS without chunks has no holes: they count in the
 * file system's size.
 *
 * Compression: none.  lz4/lz4hc (the compressors Debian 12's mkfs.erofs
 * offers) would be a second writer, of compressed clusters and their
 * indexes; newer systemd-repart passes Compression= to mkfs.erofs as
 * `-z<algorithm>[,level=<level>]`, so the choice would come from the same
 * key, with "lz4"/"lz4hc" and a level accepted and anything else refused.
 * Not done here.
 *
 * For issue 13's file-system ops table:
 *   read-only:      yes
 *   holds:          symlinks, hard links; devices, sockets and FIFOs the
 *                   walk never hands over (the store has none)
 *   minimum size:   none beyond the content (one block for an empty tree);
 *                   systemd-repart has no minimum for erofs either
 *   Minimize=:      best and guess (systemd-repart treats both alike for
 *                   read-only formats) give nri_erofs_size(): the exact
 *                   size of the file system nri_erofs_write() writes for the
 *                   plan, worked out from a walk without reading file data
 *   reserved names: none
 *   UUID:           the file-system UUID derived from the partition UUID
 *                   (nri_uuid_file_system()), passed as mkfs.erofs -U by
 *                   systemd-repart
 *   label:          systemd-repart gives mkfs.erofs none; the field exists
 *                   (16 bytes) and is written when given
 *   timestamps:     SOURCE_DATE_EPOCH (plan->mtime), 0 or more */
#pragma once

#include <stdint.h>

#include "plan.h"
#include "nix-repart-image/uuid.h"

#define NRI_EROFS_BLOCK_SIZE 4096
#define NRI_EROFS_LABEL_MAX 16

typedef struct nri_erofs_options {
        nri_uuid uuid;     /* the superblock's UUID */
        const char *label; /* NULL: none; at most NRI_EROFS_LABEL_MAX bytes */
        /* Every time in the file system: the superblock's epoch, which
         * compact inodes take, and extended inodes' mtime.  0 or more. */
        int64_t timestamp;
        const char *what; /* for messages, e.g. "partition store" (NULL: "erofs") */
} nri_erofs_options;

/* The exact size in bytes (a multiple of 4096) of the file system
 * nri_erofs_write() makes of the plan: Minimize=best.  Walks the plan
 * without reading file contents.  0, -EINVAL (bad options), -EFBIG (more
 * than 2^32 blocks), -ENOMEM, or what the walk returns (plan.h); logged. */
int nri_erofs_size(const nri_plan *plan, const nri_erofs_options *o, uint64_t *ret);

/* Writes the file system over bytes [offset, offset + size) of the existing
 * file `image_path`: the range is cleared first, the file system takes its
 * first nri_erofs_size() bytes, the rest stays zeros; nothing outside the
 * range is touched.  0, -ENOSPC (the range is smaller than the file
 * system: nothing is written), -EINVAL, -EFBIG, -EIO (the plan changed
 * between the two walks), -ESTALE (a source changed while it was copied:
 * the image would hold neither version), or an errno of the I/O or the
 * walk; every error is logged to stderr naming the path in the file system,
 * the source or the image. */
int nri_erofs_write(const char *image_path, uint64_t offset, uint64_t size, const nri_erofs_options *o,
                    const nri_plan *plan);
