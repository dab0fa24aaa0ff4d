/* vfat.h: a FAT file system, formatted by mtools' mformat and filled by the
 * builder.
 *
 * nri_vfat_write() formats a byte range of an image with `mformat`, run as
 * a program (no shell), and fills it from a plan (plan.h) as mtools' `mmd`
 * and `mcopy` would (fat-fill.h: the same short names, entries and
 * clusters).
 * The result is the file system systemd-repart 252 makes with
 * `mkfs.vfat -i <volume id> -n <label> -F 32` on a loop device of the
 * partition: the same FAT type, sector and cluster size, reserved sectors,
 * number and length of the FATs, total sectors, media byte, hidden sectors,
 * volume id and label (vfat-geometry.h holds mkfs.fat 4.2's arithmetic;
 * mformat gets every value explicitly, mformat.h).  Where mtools cannot
 * follow:
 *   - a FAT32 of fewer than 65525 clusters (below about 33 MiB with the
 *     512-byte clusters mkfs.vfat picks there), which mkfs.vfat -F 32 makes
 *     and mformat refuses, becomes the FAT12/FAT16 mkfs.vfat makes without
 *     -F; a FAT16 of 4087 to 4095 clusters (mformat wants 4096) gets
 *     clusters half as large, as `mkfs.vfat -s` would;
 *   - the boot sector is mtools' (OEM name, boot code, drive number 0), and
 *     below 4 MiB mformat writes its own heads and sectors per track;
 *   - a '^' in the label becomes '~' (mformat's label rule).
 *
 * The bytes depend only on the arguments and the content: every timestamp
 * is the plan's mtime (clamped to what FAT holds, 1980-01-01 to 2107-12-31,
 * in UTC), names are written in the walk's byte order (each directory's
 * subdirectories first, then its files), short names come from code page
 * 437, and mformat runs with a fixed configuration whatever /etc/mtools.conf,
 * ~/.mtoolsrc, the locale or the time zone say.
 *
 * What FAT cannot hold is an error naming the path, never mangled, and
 * found before anything is written:
 *   - symbolic links (systemd-repart 252 fails on them too: it copies into
 *     the mounted file system, and vfat has no symlinks);
 *   - names that are not UTF-8, longer than 255 UTF-16 units, that contain a
 *     control character or one of " * / : < > ? \ |, that end in a dot or a
 *     space (FAT drops those), or that are CON, AUX, PRN, NUL, COM1-4,
 *     LPT1-4 (mtools refuses them);
 *   - two names in one directory that differ only in case (FAT compares
 *     names case-insensitively: towupper() of each character, as mtools);
 *   - a name next to another whose long or short name is the same but for
 *     case (a file named "readme~1.txt" beside one mtools gave the short
 *     name README~1.TXT);
 *   - files of 4 GiB or more;
 *   - content larger than the file system, or names more than a FAT12/16
 *     root directory holds (any message mformat prints fails the write
 *     too).
 * A source that changes while its bytes are copied fails the write
 * (nri_source_unchanged(), plan.h).
 * Hard links become separate copies of the data.  Mode bits and owners are
 * not kept (FAT has none); every file is a plain archive file.
 */
#pragma once

#include <stdint.h>

#include "mformat.h"
#include "nix-repart-image/labels.h" /* nri_vfat_mangle_label() */
#include "plan.h"
#include "vfat-geometry.h"

/* FAT's limits on timestamps (FAT stores local time; we write UTC). */
#define NRI_VFAT_TIME_MIN INT64_C(315532800)  /* 1980-01-01 00:00:00 */
#define NRI_VFAT_TIME_MAX INT64_C(4354819198) /* 2107-12-31 23:59:58 */

typedef struct nri_vfat_options {
        /* The volume id (serial): systemd-repart takes the first 32 bits of
         * the file-system UUID, most significant byte first. */
        uint32_t volume_id;
        /* The partition's label as in the spec; it is turned into a FAT
         * label as systemd-repart does (nri_vfat_mangle_label()). */
        const char *label;
        /* Logical sector size of the file system.  0 means 512: systemd-repart
         * 252 formats through a loop device with 512-byte sectors whatever the
         * image's sector size (newer systemd passes the image's with -S). */
        uint32_t sector_size;
        /* For messages only: what is being written, e.g. "partition esp"
         * (NULL: "vfat"). */
        const char *what;
        /* NULL: mformat from PATH, run directly. */
        const nri_mtools *mtools;
} nri_vfat_options;

/* Formats bytes [offset, offset + size) of the existing file `image_path`,
 * which must be zeros there (a fresh sparse file) and not locked by the
 * caller (mtools takes a lock on it), and copies the plan into it; the
 * rest of the file is not touched.  The plan's hard links are copies
 * whatever its ignore_hardlinks says.  Errors are logged to stderr with
 * o->what and the path or program concerned; returns 0 or a negative errno
 * (-EINVAL: content or a label FAT cannot hold, -ENOSPC: content too large,
 * -EEXIST: a name beside one FAT takes for the same, -ERANGE: no FAT of
 * that size, -ENOENT: mformat not found, -EIO: mformat
 * failed, -ESTALE: a source changed while being read, -ENOTSUP: no C.UTF-8
 * locale or code page 437).
 * On failure the range may hold a partial file system. */
int nri_vfat_write(const char *image_path, uint64_t offset, uint64_t size, const nri_vfat_options *o,
                   const nri_plan *plan);
