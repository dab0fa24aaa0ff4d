/* tree.h: the shape of a plan's file system, kept in memory.
 *
 * Writers that cannot write an entry when the walk reaches it — EROFS needs
 * every inode's place before it writes a directory, SquashFS writes a
 * directory's listing after its children's inodes — collect the walk into
 * an nri_tree: one small node per entry (no file data), each directory's
 * names sorted by bytes.  Node i is the walk's entry id i (plan.h), node 0
 * the root; a further name of a file (a hard link) is a node of its own
 * whose `inode` is the first name's id. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "plan.h"

typedef struct nri_tree_node {
        uint64_t size;        /* regular files: bytes; symlinks: the target's length */
        uint32_t parent;      /* the directory it is in (the root: itself) */
        uint32_t name;        /* offset of its name (NUL-terminated) in names */
        uint32_t inode;       /* itself, or for a further name of a file the first one */
        uint32_t nlink;       /* directories: 2 + subdirectories; files: their names */
        uint32_t children;    /* directories: first of their names' ids in `children` */
        uint32_t n_children;  /* directories: how many */
        uint32_t link_target; /* symlinks: offset of the target (NUL-terminated) in names */
        uint16_t name_len;
        uint32_t mode; /* type and permission bits */
} nri_tree_node;

typedef struct nri_tree {
        nri_tree_node *nodes;
        size_t n_nodes;
        char *names;
        size_t names_len;
        uint32_t *children; /* per directory, its names' ids sorted by name */
        size_t cap_nodes, names_cap;
} nri_tree;

/* Called for each regular file that is not a further name of another, while
 * the walk has it open (fd at offset 0): for writers that consume file data
 * in the same walk.  0 or a negative errno, which stops the walk. */
typedef int (*nri_tree_file_fn)(void *ctx, const nri_tree *t, uint32_t id, const nri_entry *e, int fd);

/* Walks the plan into *ret (zeroed first; free it with nri_tree_free() in
 * any case).  The file systems that use a tree make no directories of their
 * own, so a plan with `existing` directories is -EINVAL.  0, -ENOMEM,
 * -EFBIG (names over 4 GiB), -EMLINK, -EIO (a walk that breaks its
 * contract), or what the walk or `file` returns; logged to stderr as
 * "<what>: …". */
int nri_tree_collect(const nri_plan *plan, const char *what, nri_tree_file_fn file, void *ctx,
                     nri_tree *ret);

void nri_tree_free(nri_tree *t);

static inline const char *nri_tree_name(const nri_tree *t, uint32_t id) {
        return t->names + t->nodes[id].name;
}

static inline const uint32_t *nri_tree_children(const nri_tree *t, uint32_t dir) {
        return t->children + t->nodes[dir].children;
}

/* Orders names as the kernel's directory lookups of EROFS and SquashFS do:
 * by bytes, a prefix first. */
static inline int nri_tree_name_cmp(const char *a, size_t la, const char *b, size_t lb) {
        size_t n = la < lb ? la : lb;
        int c = 0;

        for (size_t i = 0; i < n && !c; i++)
                c = (unsigned char)a[i] - (unsigned char)b[i];
        return c ? c : (la > lb) - (la < lb);
}
