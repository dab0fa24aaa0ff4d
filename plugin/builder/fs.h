/* fs.h: a partition's file system, made by its format's writer — the
 * builder's half of the file-system table (nix-repart-image/
 * file-systems.h).
 *
 * Each row of the table names a writer, `nri_<name>_fs`, which the
 * format's own file defines (ext4.c, vfat.c): how large a file system its
 * content needs for Minimize=guess, and how to write it into the
 * partition's bytes.  build.c calls nri_fs_min_size() and nri_fs_write()
 * for every formatted partition; no other file of the builder knows which
 * formats exist. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "mformat.h" /* nri_mtools */
#include "nix-repart-image/file-systems.h"
#include "nix-repart-image/spec.h"
#include "plan.h"

/* One partition's file system, as build.c hands it to the writer. */
typedef struct nri_fs_part {
        const nri_spec *spec;
        const nri_partition *p;
        const nri_fs_type *type; /* its row; NULL: not formatted */
        const nri_plan *plan;    /* what goes in */
        const char *what;        /* for messages: "partition root" */
        const nri_mtools *mtools;
        /* A directory for what a writer builds aside (squashfs for
         * Minimize=): the output directory. */
        const char *tmp_dir;
        bool verbose; /* progress lines on stderr */
        /* The content's totals, when Minimize= measured them (has_total):
         * what progress lines count against. */
        nri_plan_stats total;
        bool has_total;
        /* The writer's own, from best_size() to write() (a file system made
         * aside to be measured, then placed); freed by its done(). */
        void *state;
        /* Where it goes, once laid out: bytes [offset, offset + size) of the
         * image file. */
        const char *image;
        uint64_t offset, size;
} nri_fs_part;

typedef struct nri_fs_writer {
        /* Minimize=guess: a size of this file system that surely holds
         * content of these totals (nri_plan_measure()); a multiple of 4096.
         * 0 or a negative errno.  NULL for a format that holds no files
         * (its row's holds_files): Minimize=guess leaves its size alone.  A
         * read-only format's guess is its best_size (systemd-repart treats
         * both alike for them). */
        int (*guess_size)(const nri_fs_part *fp, const nri_plan_stats *st, uint64_t *ret);
        /* Minimize=best, for a read-only format (its row's read_only) or
         * one whose row says best_size (ext4): the exact size the content
         * needs, from the plan, a multiple of 4096; what it made to find out
         * may stay in fp->state for write().  NULL for the others (the
         * evaluator refuses best for them). */
        int (*best_size)(nri_fs_part *fp, uint64_t *ret);
        /* Makes the file system in the partition's bytes and copies the plan
         * into it.  0, or a negative errno after a message naming the path,
         * the source or the call that failed (-ENOSPC: the content does not
         * fit). */
        int (*write)(const nri_fs_part *fp);
        /* Frees fp->state; NULL when the writer keeps none. */
        void (*done)(nri_fs_part *fp);
} nri_fs_writer;

/* The least the partition's file system and its content need: the
 * format's minimum, and with Minimize=guess what its writer makes of the
 * measured content, with Minimize=best the exact size its writer works
 * out.  0, or a negative errno after a message. */
int nri_fs_min_size(nri_fs_part *fp, uint64_t *ret);

/* Writes the partition's file system (nothing for an unformatted one).  0,
 * or a negative errno after a message. */
int nri_fs_write(const nri_fs_part *fp);

/* Frees what nri_fs_min_size() kept (and the writer's state). */
void nri_fs_part_done(nri_fs_part *fp);

/* Progress lines of a write: the first NRI_PROGRESS_EVERY_NS after it
 * starts, then one every NRI_PROGRESS_EVERY_NS, so a long partition shows
 * where it is in the build log (and `nix build`'s status line moves) and a
 * small one, written sooner, shows none:
 *   "partition root: 12000 of 58000 files, 400 of 900 MiB written"
 * (the totals when Minimize= measured them, fp->has_total).  A writer
 * keeps one on its stack and passes it as the ctx of nri_fs_progress(),
 * its callback after each file. */
#define NRI_PROGRESS_EVERY_NS (UINT64_C(2) * 1000 * 1000 * 1000)
typedef struct nri_fs_progress_state {
        const nri_fs_part *fp;
        uint64_t next_ns; /* CLOCK_MONOTONIC; 0: not started */
} nri_fs_progress_state;

void nri_fs_progress(void *ctx, uint64_t files, uint64_t bytes);
