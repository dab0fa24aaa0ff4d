/* ext4-internal.h: what the files of the ext4 writer share (ext4.h is
 * its interface): the writer's state, and each file's functions.
 *
 *   ext4.c       the writer: nri_ext4_write() step by step, the walk's
 *                visitor, inodes
 *   ext4-mkfs.c  making the file system: mke2fs's steps
 *   ext4-data.c  file data: extents, and copies
 *   ext4-dir.c   directories: names appended, their last blocks cached
 *   ext4-size.c  Minimize=guess
 *
 * Private to plugin/builder/. */
#pragma once

#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>
#include <stdbool.h>
#include <stdint.h>

#include "ext4.h"
#include "log.h"

#define BLOCK NRI_EXT4_BLOCK_SIZE
#define INODE_RATIO 16384 /* mke2fs.conf [defaults] inode_ratio */
#define INODE_SIZE 256    /* mkfs.ext4 -I 256 */
#define FLEX_BG_LOG 4     /* mke2fs's default flex_bg_size 16 */
#define COPY_BUFFER (UINT64_C(2) * 1024 * 1024)
#define MAX_EXTENT_LEN 32768 /* EXT_INIT_MAX_LEN */
#define DIR_CACHE 64         /* directory blocks kept in memory (256 KiB) */
/* ext4's timestamp range with extra fields: 32 bits and 2 epoch bits. */
#define TIME_MAX ((INT64_C(1) << 34) - 1)

/* What the writer knows of each entry of the walk, by id. */
typedef struct node {
        ext2_ino_t ino;
        /* Directories: how many blocks and where the last one is (0: not
         * loaded yet, for those libext2fs made: the root). */
        uint32_t dir_blocks;
        blk64_t last_pblk;
} node;

typedef struct writer {
        ext2_filsys fs;
        ext2_ino_t lost_found;
        const nri_ext4_options *o;
        const char *what;
        const char *image;
        int fd; /* the image, for file data */
        uint64_t offset;
        uint32_t t_lo, t_extra; /* the timestamp as ext4 stores it */
        node *nodes;
        size_t n_nodes;
        blk64_t goal; /* where the next data goes */
        char *buf;    /* COPY_BUFFER bytes, for file data */
        char *dirbuf; /* one block, for symlink blocks */
        /* The last blocks of the directories being filled, kept in memory
         * and written when evicted or at the end: the walk adds names to a
         * few directories at a time (the path from the root to where it
         * is), and reading, checksumming and writing a whole block per name
         * was a fifth of the builder's CPU time. */
        struct dir_cache {
                blk64_t pblk; /* 0: free */
                ext2_ino_t ino;
                uint64_t used;
                bool dirty;
                char *buf;
        } dc[DIR_CACHE];
        char *dcbuf;
        uint64_t dc_tick;
        uint64_t files, bytes;
} writer;

/* About the file system being written (w->what, "partition root"), with
 * the errno's text (log.h). */
#define log_fs_errno(w, r, fmt, ...) log_error_errno((r), "%s: " fmt ": %m", (w)->what, ##__VA_ARGS__)

/* ---- ext4.c: inodes ---- */

/* Logs a failed libext2fs call about `path`; -ENOSPC when the file system
 * is full, else -EIO (or the errno it carries). */
int ext4_log_ext2(const writer *w, errcode_t err, const char *call, const char *path);
/* The writer's record of entry `id` (grown as needed), or NULL. */
node *ext4_node(writer *w, size_t id);
/* A new inode near its parent, counted as used, with the fields every
 * inode we make shares. */
int ext4_new_inode(writer *w, const nri_entry *e, uint16_t mode, ext2_ino_t *ret,
                   struct ext2_inode_large *inode);
int ext4_write_inode(writer *w, ext2_ino_t ino, struct ext2_inode_large *inode, const char *path);

/* ---- ext4-mkfs.c ---- */

/* A new file system's superblock and group tables, in memory: mke2fs's
 * main() up to the overhead count.  *ret_overhead is the blocks the tables
 * take, *ret_journal the journal's size (0: too small for one); on failure
 * *ret_call names the libext2fs call. */
errcode_t ext4_fs_create(const char *name, uint64_t offset, blk64_t blocks, const nri_ext4_options *o,
                         ext2_filsys *ret, blk64_t *ret_overhead, struct ext2fs_journal_params *ret_journal,
                         const char **ret_call);
/* mke2fs's steps after the tables: reserved inodes, the root, lost+found,
 * the bad-blocks and resize inodes, the journal. */
int ext4_make_base(writer *w, const struct ext2fs_journal_params *jp, blk64_t overhead);
/* The timestamp's epoch bits in the inodes libext2fs made. */
int ext4_fix_times(writer *w);

/* ---- ext4-data.c ---- */

/* Maps the extents of a new inode in order.  Up to INODE_EXTENTS of them
 * fit in the inode itself (most files have one): those are kept here and
 * put in the inode by ext4_extent_finish(), as libext2fs would put them, without
 * its extent handle, which writes the inode (reading its table block first)
 * at every insert.  One more moves them all into the library's tree. */
#define INODE_EXTENTS 4 /* (sizeof(i_block) - header) / extent */

typedef struct extent_map {
        ext2_filsys fs;
        ext2_ino_t ino;
        struct ext2_inode_large *inode;
        ext2_extent_handle_t h; /* NULL while the extents fit in the inode */
        struct ext2fs_extent in_inode[INODE_EXTENTS];
        size_t n_in_inode;
        struct ext2fs_extent cur; /* not mapped yet (e_len 0: none) */
} extent_map;

extent_map ext4_extent_map_new(ext2_filsys fs, ext2_ino_t ino, struct ext2_inode_large *inode);
/* The last extent, and the extents into the inode. */
errcode_t ext4_extent_finish(extent_map *m);
void ext4_extent_map_free(extent_map *m);
/* Allocates the next block and maps it as the inode's only extent. */
int ext4_map_one_block(writer *w, ext2_ino_t ino, struct ext2_inode_large *inode, const char *path,
                       blk64_t *ret);
/* Writes `count` blocks of `data` at logical block `lblk` of a file (NULL:
 * allocates and maps them only). */
int ext4_write_run(writer *w, const nri_entry *e, extent_map *m, struct ext2_inode_large *inode,
                   blk64_t lblk, const char *data, blk64_t count);
/* The file's data, its blocks of zeros left as holes. */
int ext4_copy_data(writer *w, const nri_entry *e, int fd, extent_map *m, struct ext2_inode_large *inode);

/* ---- ext4-dir.c ---- */

/* The cached block pblk of directory ino; read from the image if `load`
 * and not cached, else left for the caller to fill. */
int ext4_dc_get(writer *w, blk64_t pblk, ext2_ino_t ino, bool load, const char *path,
                struct dir_cache **ret);
/* Writes every cached block. */
int ext4_dc_flush(writer *w);
/* Adds `name` for inode `ino` to the directory with id `parent`. */
int ext4_dir_add(writer *w, size_t parent, const char *name, ext2_ino_t ino, int file_type,
                 const char *path);
/* One link more for inode `ino`. */
int ext4_add_links(writer *w, ext2_ino_t ino, bool dir, const char *path);
