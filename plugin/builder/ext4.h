/* ext4.h: an ext4 file system, written through libext2fs.
 *
 * nri_ext4_write() makes the file system systemd-repart 252 makes —
 * `mkfs.ext4 -L <label> -U <uuid> -I 256 -O has_journal -m 0
 * -E nodiscard,lazy_itable_init=1 -T default` with Debian's mke2fs.conf
 * (features has_journal ext_attr resize_inode dir_index filetype extent
 * 64bit flex_bg sparse_super large_file huge_file dir_nlink extra_isize
 * metadata_csum; 4096-byte blocks, 256-byte inodes, one inode per 16 KiB,
 * flex_bg of 16, no reserved blocks, the journal size mke2fs picks) — in a
 * byte range of an image file, and fills it from a plan (plan.h) straight
 * from the store: no mke2fs, no mount, no root, no staging tree.
 *
 * The bytes depend only on the arguments and the content:
 *   - the UUID (also the journal's), the directory hash seed and every
 *     timestamp come from the arguments; nothing is random or read from the
 *     clock;
 *   - inodes and blocks are allocated in the walk's order, data packed from
 *     the start of the file system;
 *   - 4 KiB blocks of zeros in a file are holes, whatever the store's file
 *     system says (so a sparse file stays sparse, and a file that is not
 *     sparse in the store but has runs of zeros becomes sparse).
 * Owners are root:root; modes as in the store; hard links within the plan
 * are hard links (see nri_plan.ignore_hardlinks); symlinks shorter than 60
 * bytes live in the inode.  Directories are linear (no htree index), as
 * `mke2fs -d` makes them; the kernel indexes them when they are written to. */
#pragma once

#include <stdint.h>

#include "plan.h"

#include "nix-repart-image/file-systems.h" /* NRI_EXT4_MIN_SIZE, nri_ext4_existing */
#include "nix-repart-image/uuid.h"

#define NRI_EXT4_BLOCK_SIZE 4096
/* s_volume_name holds 16 bytes. */
#define NRI_EXT4_LABEL_MAX 16

typedef struct nri_ext4_options {
        nri_uuid uuid;      /* s_uuid (printed byte order) */
        nri_uuid hash_seed; /* s_hash_seed: seeds the directory index hash */
        /* The partition's label as in the spec; cut as systemd-repart does
         * (nri_ext4_mangle_label()).  NULL: no label. */
        const char *label;
        /* Every inode time (atime, ctime, mtime, crtime) and the superblock's
         * mkfs, write, mount and check times: usually plan->mtime.  0 to
         * 2^34-1 (ext4's range with 256-byte inodes). */
        int64_t timestamp;
        /* For messages only: what is being written, e.g. "partition root"
         * (NULL: "ext4"). */
        const char *what;
        /* Called after each regular file, when set: files and bytes written
         * so far (bytes as in the plan, holes included). */
        void (*progress)(void *ctx, uint64_t files, uint64_t bytes);
        void *progress_ctx;
        /* Metadata only: every block of every file is allocated and mapped
         * (blocks of zeros and holes too), its bytes neither read nor
         * written; what nri_ext4_best_size() tries sizes with. */
        bool dry_run;
        /* When set, gets what the content left free at the end. */
        struct nri_ext4_free {
                uint64_t blocks, inodes;
        } * free;
} nri_ext4_options;

/* systemd-repart 252's mangle_linux_fs_label(label, 16): the longest prefix
 * of whole UTF-8 characters that fits 16 bytes.  *ret is malloc'ed.  0,
 * -EINVAL (not UTF-8) or -ENOMEM. */
int nri_ext4_mangle_label(const char *label, char **ret);

/* Formats bytes [offset, offset + size) of the existing file `image_path`
 * (size rounded down to whole 4096-byte blocks) and copies the plan into
 * it.  The range is cleared first (holes punched, or zeros written where
 * the file system cannot punch), nothing outside it is touched.
 *
 * Returns 0 or a negative errno: -ENOSPC when the content does not fit
 * (blocks or inodes), -EINVAL for bad options or an image smaller than the
 * range, -ENAMETOOLONG for a name longer than 255 bytes or a symlink target
 * of 4096 bytes or more, -EMLINK for more than 65000 links to a file, -EIO
 * for a libext2fs failure, or what the walk returns (plan.h).  Every error is logged to stderr, naming the
 * path in the file system, the source, or the ext2fs call with error_message(). */
int nri_ext4_write(const char *image_path, uint64_t offset, uint64_t size, const nri_ext4_options *o,
                   const nri_plan *plan);

/* The size Minimize=guess gives an ext4 with this content.
 *
 * systemd-repart (253 and later; 252 has no Minimize=) formats a 1 TiB
 * sparse file, copies the content in, takes the bytes the file system then
 * occupies, adds half (round_up(fsz + fsz / 2, grain)) and makes that at
 * least EXT4_MINIMAL_SIZE.  Here the occupied bytes are worked out instead
 * of measured: each file's size in 4 KiB blocks, directory blocks for the
 * names, blocks of long symlinks and extent trees, and 256 bytes of inode
 * table per inode; plus half, rounded up to 4096, at least
 * NRI_EXT4_MIN_SIZE.  Unlike the measurement, the result is then checked
 * against the real layout of a file system that size (group tables,
 * journal, inode count at one per 16 KiB) and grown until the content
 * surely fits: what nri_ext4_write() needs is an upper bound of what the
 * stats describe, so a file system of *ret bytes never runs out of blocks
 * or inodes.  *ret is a multiple of 4096.  0, -EOVERFLOW or -ENOMEM. */
int nri_ext4_min_size(const nri_plan_stats *st, uint64_t *ret);

/* The size Minimize=best gives an ext4 with this content (an extension:
 * systemd-repart allows "best" for read-only file systems only): the
 * smallest, in 4096-byte steps, that the writer fills without running out
 * of blocks or inodes when every block of every file is allocated.  Only
 * blocks of zeros and holes, which nri_ext4_write() leaves out, stay free
 * (the sizes are what stat() gives: no file is read).  Found with dry runs
 * (o->dry_run) into a sparse scratch file in $TMPDIR: one at the guess
 * (nri_ext4_min_size()), whose free space says how much the content
 * needs, then at the least size whose layout has that room, grown until
 * one fits.  `o` as for the write (label, times: the same tables).
 * *ret is a multiple of 4096.  0 or a negative errno, logged. */
int nri_ext4_best_size(const nri_plan *plan, const nri_plan_stats *st, const nri_ext4_options *o,
                       uint64_t *ret);
