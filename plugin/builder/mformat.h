/* mformat.h: formatting a FAT file system with mtools' mformat, run as a
 * program (mformat.c).
 *
 * mformat gets every layout value explicitly (its own choices differ from
 * mkfs.vfat's), a fixed configuration whatever /etc/mtools.conf,
 * ~/.mtoolsrc, the locale or the time zone say, and no shell; it runs in
 * the builder's process group and is killed with it; anything it prints
 * fails the format (some of its errors leave the exit status 0).  Tested
 * with mtools 4.0.32 (which has SOURCE_DATE_EPOCH and "-i image@@offset"). */
#pragma once

#include <stdint.h>

#include "vfat-geometry.h"

/* Where mformat is and how it runs (main.c fills this in from the bundle,
 * or from NRI_MTOOLS_DIR, NRI_MTOOLS_LOADER and NRI_MTOOLS_LIBRARY_PATH). */
typedef struct nri_mtools {
        const char *dir; /* holds mformat; NULL: the first on PATH */
        /* Run as `loader --library-path library_path mformat …` (a bundle's
         * programs are not patched to find its loader and libraries); NULL:
         * run directly. */
        const char *loader;
        const char *library_path;
        /* LOCPATH and GCONV_PATH for mformat: the C.UTF-8 locale and code
         * page 437 it reads names through (NULL: not set). */
        const char *locpath, *gconv_path;
} nri_mtools;

/* Formats bytes [offset, …) of `image_path` as the FAT of geometry `g`,
 * with volume id `volume_id`, label `label` (11 bytes at most; "NO NAME"
 * for none, as mkfs.vfat names it) and every timestamp `mtime`.  Messages
 * start with `what`.  0, or a negative errno after a message (-ENOENT:
 * mformat not found, -EIO: it failed or complained). */
int nri_mformat(const nri_mtools *mt, const char *image_path, uint64_t offset, const nri_vfat_geometry *g,
                uint32_t volume_id, const char *label, int64_t mtime, const char *what);
