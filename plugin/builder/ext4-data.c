/* ext4-data.c: a file's data in ext4 — its extents, mapped as libext2fs
 * would map them but without its extent handle where they fit the inode,
 * and its bytes, read here and written with the blocks of zeros left as
 * holes. */
#include "ext4-internal.h"
#include "range.h"

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

extent_map ext4_extent_map_new(ext2_filsys fs, ext2_ino_t ino, struct ext2_inode_large *inode) {
        return (extent_map){.fs = fs, .ino = ino, .inode = inode};
}

static errcode_t extent_insert(extent_map *m, const struct ext2fs_extent *ex, bool first) {
        errcode_t err =
            ext2fs_extent_insert(m->h, first ? 0 : EXT2_EXTENT_INSERT_AFTER, (struct ext2fs_extent *)ex);

        return err ? err : ext2fs_extent_fix_parents(m->h);
}

static errcode_t extent_flush(extent_map *m) {
        errcode_t err;

        if (m->cur.e_len == 0)
                return 0;
        if (!m->h && m->n_in_inode < INODE_EXTENTS) {
                m->in_inode[m->n_in_inode++] = m->cur;
                m->cur.e_len = 0;
                return 0;
        }
        if (!m->h) { /* a fifth: the library's tree from here on */
                err = ext2fs_extent_open2(m->fs, m->ino, (struct ext2_inode *)m->inode, &m->h);
                for (size_t i = 0; !err && i < m->n_in_inode; i++)
                        err = extent_insert(m, &m->in_inode[i], i == 0);
                if (err)
                        return err;
        }
        err = extent_insert(m, &m->cur, false);
        m->cur.e_len = 0;
        return err;
}

/* The last extent, and the extents into the inode: the header and entries
 * ext2fs_extent_open2() and ext2fs_extent_insert() would write there. */
errcode_t ext4_extent_finish(extent_map *m) {
        struct ext3_extent_header *eh = (struct ext3_extent_header *)m->inode->i_block;
        struct ext3_extent *x = (struct ext3_extent *)(eh + 1);
        errcode_t err = extent_flush(m);

        if (err || m->h)
                return err;
        memset(m->inode->i_block, 0, sizeof(m->inode->i_block));
        eh->eh_magic = ext2fs_cpu_to_le16(EXT3_EXT_MAGIC);
        eh->eh_entries = ext2fs_cpu_to_le16((uint16_t)m->n_in_inode);
        eh->eh_max = ext2fs_cpu_to_le16(INODE_EXTENTS);
        eh->eh_depth = 0;
        for (size_t i = 0; i < m->n_in_inode; i++) {
                const struct ext2fs_extent *e = &m->in_inode[i];

                x[i].ee_block = ext2fs_cpu_to_le32((uint32_t)e->e_lblk);
                x[i].ee_len = ext2fs_cpu_to_le16((uint16_t)e->e_len);
                x[i].ee_start = ext2fs_cpu_to_le32((uint32_t)e->e_pblk);
                x[i].ee_start_hi = ext2fs_cpu_to_le16((uint16_t)(e->e_pblk >> 32));
        }
        m->inode->i_flags |= EXT4_EXTENTS_FL;
        return 0;
}

void ext4_extent_map_free(extent_map *m) {
        if (m->h)
                ext2fs_extent_free(m->h);
        m->h = NULL;
}

/* Allocates the next block and maps it as the inode's only extent (block 0):
 * a directory's first block, a long symlink's target. */
int ext4_map_one_block(writer *w, ext2_ino_t ino, struct ext2_inode_large *inode, const char *path,
                       blk64_t *ret) {
        extent_map m = ext4_extent_map_new(w->fs, ino, inode);
        blk64_t blk;
        errcode_t err;

        err = ext2fs_new_block2(w->fs, w->goal, NULL, &blk);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_new_block2", path);
        ext2fs_block_alloc_stats2(w->fs, blk, +1);
        w->goal = blk + 1;
        ext2fs_iblk_set(w->fs, (struct ext2_inode *)inode, 1);
        m.cur = (struct ext2fs_extent){.e_lblk = 0, .e_pblk = blk, .e_len = 1};
        err = ext4_extent_finish(&m);
        ext4_extent_map_free(&m);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_extent_insert", path);
        *ret = blk;
        return 0;
}

static errcode_t extent_add(extent_map *m, blk64_t lblk, blk64_t pblk, blk64_t len) {
        while (len > 0) {
                struct ext2fs_extent *c = &m->cur;
                blk64_t n;

                if (c->e_len && c->e_lblk + c->e_len == lblk && c->e_pblk + c->e_len == pblk &&
                    c->e_len < MAX_EXTENT_LEN) {
                        n = len < MAX_EXTENT_LEN - c->e_len ? len : MAX_EXTENT_LEN - c->e_len;
                        c->e_len += n;
                } else {
                        errcode_t err = extent_flush(m);

                        if (err)
                                return err;
                        n = len < MAX_EXTENT_LEN ? len : MAX_EXTENT_LEN;
                        *c = (struct ext2fs_extent){.e_lblk = lblk, .e_pblk = pblk, .e_len = n};
                }
                lblk += n;
                pblk += n;
                len -= n;
        }
        return 0;
}

/* ---- copies ---- */

/* Writes `count` blocks of `data` at logical block `lblk` of a file: into
 * as few contiguous ranges as the free space allows, starting at the goal.
 * NULL data: the blocks are allocated and mapped, nothing written (a dry
 * run). */
int ext4_write_run(writer *w, const nri_entry *e, extent_map *m, struct ext2_inode_large *inode,
                   blk64_t lblk, const char *data, blk64_t count) {
        while (count > 0) {
                blk64_t pblk, plen;
                errcode_t err;
                int r;

                err = ext2fs_new_range(w->fs, 0, w->goal, count, NULL, &pblk, &plen);
                if (err)
                        return ext4_log_ext2(w, err, "ext2fs_new_range", e->target);
                if (plen > count)
                        plen = count;
                ext2fs_block_alloc_stats_range(w->fs, pblk, plen, +1);
                if (data) {
                        r = nri_pwrite_all(w->fd, data, plen * BLOCK, w->offset + pblk * BLOCK);
                        if (r < 0)
                                return log_fs_errno(w, r, "%s: cannot write %s", w->image, e->target);
                        data += plen * BLOCK;
                }
                err = extent_add(m, lblk, pblk, plen);
                if (!err)
                        err = ext2fs_iblk_add_blocks(w->fs, (struct ext2_inode *)inode, plen);
                if (err)
                        return ext4_log_ext2(w, err, "ext2fs_extent_insert", e->target);
                w->goal = pblk + plen;
                lblk += plen;
                count -= plen;
        }
        return 0;
}

static bool block_is_zero(const char *p) {
        const uint64_t *q = (const uint64_t *)p;

        for (size_t i = 0; i < BLOCK / sizeof(*q); i++)
                if (q[i])
                        return false;
        return true;
}

/* Copies [start, end) of the file (start a multiple of BLOCK; end the
 * file's size or a multiple of BLOCK): every run of blocks that are not all
 * zeros is written, the rest stays a hole. */
static int copy_range(writer *w, const nri_entry *e, int fd, extent_map *m, struct ext2_inode_large *inode,
                      uint64_t start, uint64_t end) {
        for (uint64_t pos = start; pos < end;) {
                size_t n = end - pos < COPY_BUFFER ? end - pos : COPY_BUFFER, got = 0, blocks;

                while (got < n) {
                        ssize_t k = pread(fd, w->buf + got, n - got, (off_t)(pos + got));

                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k < 0)
                                return log_fs_errno(w, -errno, "%s: cannot read", e->source);
                        if (k == 0)
                                return log_fs_errno(w, -ESTALE,
                                                    "%s: shorter than its size %" PRIu64
                                                    ", changed while being read",
                                                    e->source, e->size);
                        got += k;
                }
                blocks = (n + BLOCK - 1) / BLOCK;
                memset(w->buf + n, 0, blocks * BLOCK - n);
                for (size_t b = 0; b < blocks;) {
                        size_t run;
                        int r;

                        if (block_is_zero(w->buf + b * BLOCK)) {
                                b++;
                                continue;
                        }
                        for (run = 1; b + run < blocks && !block_is_zero(w->buf + (b + run) * BLOCK); run++)
                                ;
                        r = ext4_write_run(w, e, m, inode, pos / BLOCK + b, w->buf + b * BLOCK, run);
                        if (r < 0)
                                return r;
                        b += run;
                }
                pos += n;
        }
        return 0;
}

/* The file's data, reading only where SEEK_DATA says there is some. */
int ext4_copy_data(writer *w, const nri_entry *e, int fd, extent_map *m, struct ext2_inode_large *inode) {
        uint64_t size = e->size, next = 0; /* bytes before `next` are done */
        bool seek = nri_entry_may_have_holes(e);

        while (next < size) {
                uint64_t start = next, end = size;
                int r;

                if (seek) {
                        off_t d = lseek(fd, (off_t)next, SEEK_DATA), h;

                        if (d < 0 && errno == ENXIO)
                                break; /* a hole to the end */
                        if (d < 0) {
                                seek = false; /* not supported here: read it all */
                        } else {
                                h = lseek(fd, d, SEEK_HOLE);
                                start = (uint64_t)d / BLOCK * BLOCK;
                                if (start < next)
                                        start = next;
                                if (h >= 0 && (uint64_t)h < size)
                                        end = ((uint64_t)h + BLOCK - 1) / BLOCK * BLOCK;
                                if (end > size)
                                        end = size;
                        }
                }
                r = copy_range(w, e, fd, m, inode, start, end);
                if (r < 0)
                        return r;
                next = end;
        }
        return 0;
}
