/* plan.h: what goes into one file system, and the walk that visits it.
 *
 * The builder turns a partition of the spec into a plan: the directories to
 * make and the store trees to copy (closure paths under the store prefix,
 * `contents`, CopyFiles=).  Each file-system writer (ext4.c, vfat.c) is a
 * visitor: nri_plan_walk() reads the sources straight from the store, in a
 * deterministic order (byte order of names), and calls the visitor for every
 * entry with its target path — no staging copy of the tree is ever made.
 *
 * The order of the walk:
 *   1. each of `directories`, with its missing parents, parents first;
 *   2. each copy in turn: first the missing parents of its target, then the
 *      source — a file becomes one entry at the target, a symlink one
 *      symlink entry (the source itself is never followed either), a
 *      directory an entry followed by its tree, depth first, the children of
 *      each directory sorted by name with strcmp().
 * Symlinks inside a tree stay symlinks and are never followed; a symlink
 * on the way to a source is followed only where it stays inside the
 * source's store path (store_dir below).
 *
 * Targets are unique.  The root "/" exists before the walk and is never
 * visited; a copy whose target is "/" must be a directory, and its children
 * go into the root (the root keeps mode 0755).  A directory reached a second
 * time (made, or copied from another source: /nix/store from every store
 * path) is merged: it was visited once, with the mode of that first visit,
 * and what the later copy has inside it is visited into it.  Any other
 * target reached twice (a file over a file, a file over a directory or the
 * other way round, a parent that is not a directory) is an error: nothing
 * is replaced. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

typedef struct nri_plan_copy {
        const char *source; /* absolute path of a file, directory or symlink */
        const char *target; /* absolute, normalised path in the file system */
} nri_plan_copy;

typedef struct nri_plan {
        const char **directories; /* made first (with parents), mode 0755 */
        size_t n_directories;
        nri_plan_copy *copies; /* in this order; parents of targets are made 0755 */
        size_t n_copies;
        int64_t mtime; /* every timestamp (SOURCE_DATE_EPOCH) */
        /* Write every name of a file with several links as a copy of its own
         * instead of a hard link.  Off, hard links are kept: the NAR format
         * has none, so in the store they come from `nix-store --optimise`
         * (auto-optimise-store), and an image then depends on whether the
         * store it was built from was optimised. */
        bool ignore_hardlinks;
        /* deduplicateStore: the regular files of the first n_dedup copies
         * (the closure's store paths, which the builder puts first; never
         * contents or CopyFiles=) that have the same size, permission bits
         * and SHA-256 of their bytes are one file with several names, as
         * `nix-store --optimise` makes them, but from the content alone: the
         * first in the walk's order is the file, the later ones are hard
         * links to it (e->hardlink_of), whatever links the store has.
         * Empty files are left alone: they have no data to share.  0: off.
         * Only a file whose size and permission bits another one has is
         * read (once more) to hash it. */
        size_t n_dedup;
        /* Sources are resolved inside their store path (<store_dir>/<name>,
         * the first name under store_dir), never by the kernel from "/":
         * the store path is opened from the store directory without
         * following a symlink, and the rest of the source inside it as
         * beneath.h says (a symlink on the way that would leave the store
         * path is an error naming the source).  A source outside store_dir
         * is an error.  NULL: "/" stands for the store path of every
         * source, the same rules inside it. */
        const char *store_dir;
        /* A directory of files the builder wrote itself
         * (/nix-path-registration), outside the store, or NULL: a source
         * directly in it is opened there, by name, without following a
         * symlink; store_dir's rules do not apply to it. */
        const char *builder_dir;
        /* Directories the file system has before the walk (ext4's
         * /lost+found), NULL-terminated, parents first; may be NULL.  Each
         * takes the next id from 1, in this order, without a visit; what
         * the plan puts there merges into it as into any directory reached
         * a second time, and anything else there is an error. */
        const char *const *existing;
} nri_plan;

/* One entry of the walk.  Owner is always root:root; mode holds the type and
 * permission bits as in the store.  The strings are valid during the
 * callback only: a visitor that keeps one copies it. */
typedef struct nri_entry {
        const char *target; /* absolute path in the file system */
        const char *name;   /* its last component (points into target) */
        const char *source; /* the file in the store (NULL for made directories) */
        mode_t mode;
        uint64_t size;           /* regular files */
        const char *link_target; /* symlinks */
        /* Regular files with more than one link inside this walk: the target
         * of the first one seen, for the later ones; NULL otherwise. */
        const char *hardlink_of;
        const struct stat *st; /* the source's lstat, NULL for made directories */
        /* Numbers for the visitor's own tables, so it needs no map from
         * paths: every visited entry gets the next id, from 1 in the order
         * of the walk (0 is the root).  `parent` is the id of the directory
         * the entry goes into; `hardlink_id` the id of hardlink_of. */
        size_t id;
        size_t parent;
        size_t hardlink_id;
} nri_entry;

#define NRI_VISIT_KEPT_FD 1

/* Whether the file may have holes: the blocks it has do not cover its
 * size.  Else looking for them (SEEK_DATA) is a system call for nothing. */
static inline bool nri_entry_may_have_holes(const nri_entry *e) {
        return (uint64_t)e->st->st_blocks * 512 < e->size;
}

/* Whether the file open as `fd` is still what `st` says it was: the same
 * inode, size, modification and change time.  A writer copies a file's
 * bytes and then asks: a source that changed while being read fails the
 * build ("changed while being read") rather than leave a mix of two
 * versions, or a truncated copy, in the image. */
static inline bool nri_source_unchanged(int fd, const struct stat *st) {
        struct stat now;

        return fstat(fd, &now) == 0 && now.st_ino == st->st_ino && now.st_dev == st->st_dev &&
               now.st_size == st->st_size && now.st_mtim.tv_sec == st->st_mtim.tv_sec &&
               now.st_mtim.tv_nsec == st->st_mtim.tv_nsec && now.st_ctim.tv_sec == st->st_ctim.tv_sec &&
               now.st_ctim.tv_nsec == st->st_ctim.tv_nsec;
}

typedef struct nri_visitor {
        void *ctx;
        /* A directory; called before anything inside it, once per target
         * (a directory reached twice is visited once, the later copy merges). */
        int (*directory)(void *ctx, const nri_entry *e);
        /* A regular file; `fd` is open for reading at offset 0.  Returns 0,
         * a negative errno, or NRI_VISIT_KEPT_FD: the visitor took fd (to
         * close it itself, later). */
        int (*file)(void *ctx, const nri_entry *e, int fd);
        /* NULL: a symlink fails the walk with -EOPNOTSUPP (a file system
         * without symlinks). */
        int (*symlink)(void *ctx, const nri_entry *e);
        /* A second name for a regular file already written (e->hardlink_of).
         * NULL: the later names are passed to `file` as copies (hardlink_of
         * is still set). */
        int (*hardlink)(void *ctx, const nri_entry *e);
} nri_visitor;

/* Walks the plan; stops at the first callback that returns < 0 and returns
 * that.  Errors of its own (a source missing or unreadable, a device node
 * or socket, a target reached twice, a target that is both a file and a
 * directory) are logged to stderr with the path and returned as negative
 * errno.  Sources are opened with O_NOFOLLOW and read through directory
 * descriptors (openat), at most about 130 of them open at a time, so any
 * depth and paths longer than PATH_MAX are fine. */
int nri_plan_walk(const nri_plan *plan, const nri_visitor *v);

/* Totals of a plan, for Minimize=guess and progress: what the walk would
 * visit.  Hard links count once in `files` and the
 * sizes (and in `hardlinks`); unless the plan ignores them. */
typedef struct nri_plan_stats {
        uint64_t files, directories, symlinks, hardlinks;
        uint64_t bytes;     /* sum of regular file sizes */
        uint64_t blocks_4k; /* sum of each file's size rounded up to 4096 */
        uint64_t name_bytes;
        /* names directly in the root directory, and their lengths (a FAT12/16
         * root directory has a fixed number of entries) */
        uint64_t root_names, root_name_bytes; /* sum of the lengths of all names */
        /* Symlinks whose target is 60 bytes or longer: ext4 keeps shorter
         * ones inside the inode, these take a block. */
        uint64_t long_symlinks;
} nri_plan_stats;

/* Counts what the walk visits from what stat() reports: no file's bytes
 * are read.  0 or a negative errno, logged as nri_plan_walk() logs. */
int nri_plan_measure(const nri_plan *plan, nri_plan_stats *ret);
