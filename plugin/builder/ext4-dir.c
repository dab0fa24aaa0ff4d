/* ext4-dir.c: directories of the ext4 being written.  Names are appended
 * to the last block of their directory (the walk never makes a name twice,
 * so ext2fs_link()'s scan of every block would only cost time), and the
 * last blocks being filled stay in a small cache, written once. */
#include "ext4-internal.h"

#include <errno.h>
#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>
#include <ext2fs/ext3_extents.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int dc_write(writer *w, struct dir_cache *c) {
        errcode_t err;

        if (!c->dirty)
                return 0;
        err = ext2fs_write_dir_block4(w->fs, c->pblk, c->buf, 0, c->ino);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_write_dir_block4", "(directory block)");
        c->dirty = false;
        return 0;
}

int ext4_dc_flush(writer *w) {
        for (size_t i = 0; i < DIR_CACHE; i++) {
                int r;

                if (!w->dc[i].pblk)
                        continue;
                r = dc_write(w, &w->dc[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The cached block pblk of directory ino; read from the image if `load`
 * and not cached, else left for the caller to fill. */
int ext4_dc_get(writer *w, blk64_t pblk, ext2_ino_t ino, bool load, const char *path,
                struct dir_cache **ret) {
        struct dir_cache *c = NULL;
        errcode_t err;
        int r;

        for (size_t i = 0; i < DIR_CACHE; i++) {
                if (w->dc[i].pblk == pblk) {
                        w->dc[i].used = ++w->dc_tick;
                        *ret = &w->dc[i];
                        return 0;
                }
                if (!c || w->dc[i].used < c->used)
                        c = &w->dc[i]; /* free slots have used 0 */
        }
        if (c->pblk) {
                r = dc_write(w, c);
                if (r < 0)
                        return r;
        }
        c->pblk = 0;
        c->dirty = false;
        if (load) {
                err = ext2fs_read_dir_block4(w->fs, pblk, c->buf, 0, ino);
                if (err)
                        return ext4_log_ext2(w, err, "ext2fs_read_dir_block4", path);
        }
        c->pblk = pblk;
        c->ino = ino;
        c->used = ++w->dc_tick;
        *ret = c;
        return 0;
}

static int dir_load(writer *w, node *d, const char *path) {
        struct ext2_inode inode;
        blk64_t pblk;
        errcode_t err;

        err = ext2fs_read_inode(w->fs, d->ino, &inode);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_read_inode", path);
        d->dir_blocks = EXT2_I_SIZE(&inode) / BLOCK;
        err = ext2fs_bmap2(w->fs, d->ino, &inode, NULL, 0, d->dir_blocks - 1, NULL, &pblk);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_bmap2", path);
        d->last_pblk = pblk;
        return 0;
}

/* A block more for directory d, holding one free entry; *ret its cache slot. */
static int dir_expand(writer *w, node *d, const char *path, struct dir_cache **ret) {
        struct dir_cache *c;
        struct ext2_inode_large inode;
        ext2_extent_handle_t h;
        blk64_t blk;
        errcode_t err;
        int csum = ext2fs_has_feature_metadata_csum(w->fs->super) ? sizeof(struct ext2_dir_entry_tail) : 0;
        int r;

        err = ext2fs_new_block2(w->fs, d->last_pblk + 1, NULL, &blk);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_new_block2", path);
        ext2fs_block_alloc_stats2(w->fs, blk, +1);

        r = ext4_dc_get(w, blk, d->ino, false, path, &c);
        if (r < 0)
                return r;
        c->dirty = true;
        memset(c->buf, 0, BLOCK);
        err = ext2fs_set_rec_len(w->fs, BLOCK - csum, (struct ext2_dir_entry *)c->buf);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_set_rec_len", path);
        if (csum)
                ext2fs_initialize_dirent_tail(w->fs, EXT2_DIRENT_TAIL(c->buf, BLOCK));

        err = ext2fs_read_inode_full(w->fs, d->ino, (struct ext2_inode *)&inode, sizeof(inode));
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_read_inode_full", path);
        err = ext2fs_extent_open2(w->fs, d->ino, (struct ext2_inode *)&inode, &h);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_extent_open2", path);
        err = ext2fs_extent_set_bmap(h, d->dir_blocks, blk, 0);
        ext2fs_extent_free(h);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_extent_set_bmap", path);
        err =
            ext2fs_inode_size_set(w->fs, (struct ext2_inode *)&inode, (uint64_t)(d->dir_blocks + 1) * BLOCK);
        if (!err)
                err = ext2fs_iblk_add_blocks(w->fs, (struct ext2_inode *)&inode, 1);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_inode_size_set", path);
        r = ext4_write_inode(w, d->ino, &inode, path);
        if (r < 0)
                return r;
        d->dir_blocks++;
        d->last_pblk = blk;
        *ret = c;
        return 0;
}

/* Adds the name of `path` (its last component) for inode `ino` to the
 * directory with id `parent`. */
int ext4_dir_add(writer *w, size_t parent, const char *name, ext2_ino_t ino, int file_type,
                 const char *path) {
        node *d = &w->nodes[parent];
        size_t name_len = strlen(name);
        unsigned need = EXT2_DIR_REC_LEN(name_len);
        int csum = ext2fs_has_feature_metadata_csum(w->fs->super) ? sizeof(struct ext2_dir_entry_tail) : 0;
        unsigned limit = BLOCK - csum, off = 0, used;
        struct ext2_dir_entry *de;
        struct dir_cache *c;
        unsigned rec_len;
        errcode_t err;
        int r;

        if (name_len > EXT2_NAME_LEN) {
                log_error("%s: %s: the name is %zu bytes long, ext4 holds at most %d", w->what, path,
                          name_len, EXT2_NAME_LEN);
                return -ENAMETOOLONG;
        }
        if (d->dir_blocks == 0) {
                r = dir_load(w, d, path);
                if (r < 0)
                        return r;
        }

        r = ext4_dc_get(w, d->last_pblk, d->ino, true, path, &c);
        if (r < 0)
                return r;
        /* The last entry of the block holds its free space. */
        for (;;) {
                de = (struct ext2_dir_entry *)(c->buf + off);
                err = ext2fs_get_rec_len(w->fs, de, &rec_len);
                if (err || rec_len < 8 || off + rec_len > limit)
                        return ext4_log_ext2(w, err ? err : EXT2_ET_DIR_CORRUPTED, "ext2fs_get_rec_len",
                                             path);
                if (off + rec_len == limit)
                        break;
                off += rec_len;
        }
        used = de->inode ? EXT2_DIR_REC_LEN(ext2fs_dirent_name_len(de)) : 0;
        if (rec_len - used < need) {
                r = dir_expand(w, d, path, &c);
                if (r < 0)
                        return r;
                de = (struct ext2_dir_entry *)c->buf;
                rec_len = limit;
                used = 0;
        } else if (used) {
                ext2fs_set_rec_len(w->fs, used, de);
                de = (struct ext2_dir_entry *)((char *)de + used);
                ext2fs_set_rec_len(w->fs, rec_len - used, de);
        }
        de->inode = ino;
        ext2fs_dirent_set_name_len(de, name_len);
        ext2fs_dirent_set_file_type(de, file_type);
        memcpy(de->name, name, name_len);
        c->dirty = true;
        return 0;
}

/* One link more (or less) for inode `ino`. */
int ext4_add_links(writer *w, ext2_ino_t ino, bool dir, const char *path) {
        struct ext2_inode inode;
        errcode_t err;

        err = ext2fs_read_inode(w->fs, ino, &inode);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_read_inode", path);
        if (dir) {
                /* dir_nlink: past the limit a directory counts 1 ("many") */
                if (inode.i_links_count == 1 || inode.i_links_count + 1 >= EXT2_LINK_MAX)
                        inode.i_links_count = 1;
                else
                        inode.i_links_count++;
        } else {
                if (inode.i_links_count + 1 >= EXT2_LINK_MAX) {
                        log_error("%s: %s: too many hard links (ext4 allows %d)", w->what, path,
                                  EXT2_LINK_MAX);
                        return -EMLINK;
                }
                inode.i_links_count++;
        }
        err = ext2fs_write_inode(w->fs, ino, &inode);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_write_inode", path);
        return 0;
}
