/* file-systems.h: the file systems a partition can be formatted with
 * (Format=), one row each.
 *
 * A row holds what the two halves need to know of a format.  Its facts
 * (nri_fs_type) are what the evaluator decides with — the name Format=
 * takes, whether Minimize=best can size it, whether it holds files at
 * all, the least it needs, the directories it makes itself, the names and
 * labels it cannot hold — and they are the core's (file-systems.c), linked
 * into the plugin.  Its writer is the builder's: the row names it by its
 * stem, and plugin/builder/fs.c takes `nri_<stem>_fs` (an nri_fs_writer,
 * fs.h) from the format's own file, so the plugin never links a writer
 * (nor libext2fs).  The enumeration nri_format, the names in messages and
 * JSON, the evaluator's checks and the builder's dispatch are all made
 * from these rows: a new format is a row here and its writer's file
 * (DESIGN.md, "How to add a file system format").
 *
 *   FS(ID, name, .fact = …, …)
 *
 * gives NRI_FORMAT_ID, the facts nri_fs_type_of(NRI_FORMAT_ID) with .name
 * "name" (what Format= says: a C identifier, as all of systemd-repart's
 * are), and the writer nri_<name>_fs of plugin/builder/<name>.c. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "string-table.h"

/* systemd-repart 252's EXT4_MINIMAL_SIZE. */
#define NRI_EXT4_MIN_SIZE (UINT64_C(1024) * 1024)
/* mkswap refuses fewer than 10 pages of 4096 bytes ("swap space needs to be
 * at least 40 KiB"). */
#define NRI_SWAP_MIN_SIZE (UINT64_C(10) * 4096)
/* A swap header keeps 16 bytes of label; systemd-repart gives mkswap at most
 * 15 (mangle_linux_fs_label()), so that it stays NUL-terminated. */
#define NRI_SWAP_LABEL_MAX 15

/* clang-format off */
#define NRI_FILE_SYSTEMS(FS)                                                                                \
        FS(EXT4, ext4,                                                                                      \
           .holds_files = true,                                                                             \
           .min_size = NRI_EXT4_MIN_SIZE,                                                                   \
           .existing = nri_ext4_existing,                                                                   \
           .best_size = true)                                                                               \
        FS(VFAT, vfat,                                                                                      \
           .holds_files = true,                                                                             \
           .names = &nri_fat_name_rules,                                                                    \
           .label_problem = nri_fat_label_problem,                                                          \
           .volume_id = true)                                                                               \
        FS(EROFS, erofs,                                                                                    \
           .read_only = true,                                                                               \
           .holds_files = true)                                                                             \
        FS(SQUASHFS, squashfs,                                                                              \
           .read_only = true,                                                                               \
           .holds_files = true)                                                                             \
        FS(SWAP, swap,                                                                                      \
           .min_size = NRI_SWAP_MIN_SIZE,                                                                   \
           .label_problem = nri_swap_label_problem)
/* clang-format on */

#define NRI_FS_ENUM_(id, stem, ...) NRI_FORMAT_##id,
typedef enum nri_format {
        NRI_FORMAT_NONE, /* no Format=: the partition is left unformatted */
        NRI_FILE_SYSTEMS(NRI_FS_ENUM_) _NRI_FORMAT_MAX,
        _NRI_FORMAT_INVALID = -EINVAL,
} nri_format;

/* A partition that gets files and has no Format= is made ext4, as
 * systemd-repart 252 makes it. */
#define NRI_FORMAT_DEFAULT NRI_FORMAT_EXT4

/* Which file names a file system holds, beyond what every one does (one
 * path component, at most 255 bytes, no '/' or NUL). */
typedef struct nri_name_rules {
        /* For messages: "FAT". */
        const char *family;
        /* Why the file system cannot hold `name` (one path component), as a
         * phrase, or NULL when it can; the phrase may be written into
         * `buf` (at least 128 bytes). */
        const char *(*problem)(const char *name, char *buf, size_t size);
        /* `path` as the file system compares names, malloc'ed (NULL with
         * errno set when it cannot be): two paths that fold the same cannot
         * both be there.  NULL: names compare byte for byte. */
        char *(*fold)(const char *path);
} nri_name_rules;

/* What the evaluator and the builder know of a format (a row's facts). */
typedef struct nri_fs_type {
        const char *name; /* as Format= names it, and the spec's "format" (the row's) */
        /* Read-only once made (squashfs, erofs): Minimize=best can size it
         * exactly; for a writable one only "guess" can. */
        bool read_only;
        /* Writable, yet Minimize=best sizes it exactly too, its writer
         * trying sizes (ext4: an extension, systemd-repart has none). */
        bool best_size;
        /* It holds a tree of files (not swap): contents, CopyFiles=,
         * MakeDirectories= and storePaths may fill it. */
        bool holds_files;
        /* The least it needs before any content (ext4: EXT4_MINIMAL_SIZE):
         * the layout's minimum for a partition of this format. */
        uint64_t min_size;
        /* The directories it has before anything is copied (ext4's
         * /lost+found), NULL-terminated, parents first; NULL for none.  What
         * the plan puts there merges into them (plan.h). */
        const char *const *existing;
        /* NULL: any name the walk lets through. */
        const nri_name_rules *names;
        /* Why the partition label cannot label this file system, as a phrase
         * to follow the quoted label, or NULL; NULL: any label does (cut as
         * the writer cuts it). */
        const char *(*label_problem)(nri_arena *a, const char *label);
        /* It has a 32-bit volume id, the file-system UUID's first four bytes
         * (the spec's "vfatVolumeId"). */
        bool volume_id;
} nri_fs_type;

/* The row of `f`, or NULL for NRI_FORMAT_NONE and values out of range. */
const nri_fs_type *nri_fs_type_of(nri_format f);

/* "ext4", "vfat"; NULL for NRI_FORMAT_NONE.  From the rows' names. */
NRI_DECLARE_STRING_TABLE_LOOKUP(nri_format, nri_format);

/* The formats' names for a message, in the table's order, the last two
 * joined by `last` ("ext4, vfat" with ", ", "ext4 or vfat" with " or "). */
const char *nri_format_names(nri_arena *a, const char *last);
/* The same as Markdown code, for the primop's :doc ("`ext4`, `vfat`"). */
const char *nri_format_names_code(nri_arena *a);

/* The least a partition of format `f` needs before any content: its row's
 * min_size, 0 for none. */
uint64_t nri_format_min_size(nri_format f);

/* What the rows name (defined where their rules are). */
extern const char *const nri_ext4_existing[];
extern const nri_name_rules nri_fat_name_rules;
const char *nri_fat_label_problem(nri_arena *a, const char *label);
const char *nri_swap_label_problem(nri_arena *a, const char *label);
