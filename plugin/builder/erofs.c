/* erofs.c: an uncompressed EROFS written from the walk (see erofs.h).
 *
 * Three steps, each a function below:
 *   the tree   walks the plan once without reading file data and keeps one
 *              small node per entry, each directory's names sorted (tree.h);
 *   layout()   sizes each directory's dirent blocks, gives every
 *              inode its nid and inline tail and every data block its
 *              address: the whole file system's shape, and so its size;
 *   emit()     walks the plan again and writes each entry where layout()
 *              put it — inodes and inline tails through a sequential buffer
 *              (nids grow in walk order), data blocks straight from the
 *              source with copy_file_range() — then the superblock.
 * The on-disk structures are Linux's fs/erofs/erofs_fs.h; all integers are
 * little-endian. */
#include "erofs.h"
#include "fs.h"
#include "log.h"
#include "range.h"
#include "tree.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK NRI_EROFS_BLOCK_SIZE
#define SUPER_OFFSET 1024
#define SUPER_SIZE 128
#define MAGIC UINT32_C(0xE0F5E1E2)
#define COMPAT_SB_CHKSUM 0x1
#define COMPACT_SIZE 32
#define EXTENDED_SIZE 64
#define DIRENT_SIZE 12
#define FLAT_PLAIN 0
#define FLAT_INLINE 2
#define META_BUF (UINT64_C(1) << 20)

enum { FT_UNKNOWN, FT_REG_FILE, FT_DIR, FT_CHRDEV, FT_BLKDEV, FT_FIFO, FT_SOCK, FT_SYMLINK };

/* What layout() decides for each inode (indexed like the tree's nodes). */
typedef struct einode {
        uint64_t size;    /* files: bytes; symlinks: target length; directories: dirent bytes */
        uint64_t nid;     /* where the inode is: nid * 32 from the start */
        uint64_t blkaddr; /* first whole data block, if any */
        uint32_t ino;     /* the 32-bit inode number for stat on 32-bit machines */
        uint8_t layout;   /* FLAT_PLAIN or FLAT_INLINE */
        bool extended;
} einode;

typedef struct efs {
        const nri_erofs_options *o;
        const char *what;
        nri_tree t;
        einode *in;      /* per tree node; only the inodes' entries are used */
        uint64_t inodes; /* distinct inodes */
        uint64_t blocks; /* the file system's size in blocks */
        /* emit() */
        const char *image;
        int fd;
        uint64_t offset;
        uint8_t *meta;        /* META_BUF bytes of metadata being filled */
        uint64_t meta_start;  /* file-system offset of meta[0] */
        uint64_t meta_filled; /* bytes of meta[] that hold something */
        uint8_t *block;       /* one block of scratch */
        size_t next_id;       /* the id the second walk must see next */
} efs;

/* About the file system being written (e->what), with the errno's text
 * (log.h). */
#define log_errno(e, r, fmt, ...) log_error_errno((r), "%s: " fmt ": %m", (e)->what, ##__VA_ARGS__)

static void put16(uint8_t *p, uint64_t v) {
        p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint64_t v) {
        for (size_t i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v) {
        for (size_t i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- layout ---- */

/* The dirents of directory d in order, "." and ".." among its names:
 * calls f(ctx, name, len, id) for each; id of "." is d, of ".." its parent. */
typedef int (*dirent_fn)(void *ctx, const char *name, size_t len, uint32_t id);

static int for_each_dirent(const nri_tree *t, uint32_t d, dirent_fn f, void *ctx) {
        const nri_tree_node *dn = &t->nodes[d];
        const uint32_t *ch = nri_tree_children(t, d);
        bool dot = false, dotdot = false;
        int r = 0;

        for (uint32_t i = 0; r >= 0 && i <= dn->n_children; i++) {
                bool last = i == dn->n_children;
                const char *name = last ? NULL : nri_tree_name(t, ch[i]);
                size_t len = last ? 0 : t->nodes[ch[i]].name_len;

                if (!dot && (last || nri_tree_name_cmp(".", 1, name, len) < 0))
                        r = f(ctx, ".", 1, d), dot = true;
                if (r >= 0 && !dotdot && (last || nri_tree_name_cmp("..", 2, name, len) < 0))
                        r = f(ctx, "..", 2, dn->parent), dotdot = true;
                if (r >= 0 && !last)
                        r = f(ctx, name, len, ch[i]);
        }
        return r;
}

typedef struct dir_size {
        uint64_t full_blocks, used; /* used: bytes of the last block */
} dir_size;

static int size_dirent(void *ctx, const char *name, size_t len, uint32_t id) {
        dir_size *s = ctx;

        (void)name, (void)id;
        if (s->used + DIRENT_SIZE + len > BLOCK)
                s->full_blocks++, s->used = 0;
        s->used += DIRENT_SIZE + len;
        return 0;
}

static int layout(efs *e) {
        const nri_tree *t = &e->t;
        uint64_t pos = SUPER_OFFSET + SUPER_SIZE, next_block, ino = 0;

        e->in = calloc(t->n_nodes, sizeof(*e->in));
        if (!e->in)
                return -ENOMEM;

        /* Inodes and inline tails, in walk order from nid 36 on. */
        for (size_t i = 0; i < t->n_nodes; i++) {
                const nri_tree_node *n = &t->nodes[i];
                einode *in = &e->in[i];
                uint64_t isz, tail, room;

                if (n->inode != i)
                        continue;
                in->size = n->size;
                if (S_ISDIR(n->mode)) {
                        dir_size s = {0};

                        for_each_dirent(t, (uint32_t)i, size_dirent, &s);
                        in->size = s.full_blocks * BLOCK + s.used;
                }
                in->extended = in->size > UINT32_MAX || n->nlink > UINT16_MAX;
                in->ino = (uint32_t)++ino;
                isz = in->extended ? EXTENDED_SIZE : COMPACT_SIZE;
                tail = in->size % BLOCK;
                pos = (pos + 31) / 32 * 32;
                if (pos % BLOCK + isz > BLOCK)
                        pos = (pos / BLOCK + 1) * BLOCK;
                room = BLOCK - pos % BLOCK - isz;
                in->layout = FLAT_PLAIN;
                if (tail && tail <= room) {
                        in->layout = FLAT_INLINE;
                } else if (tail && tail <= BLOCK - isz && BLOCK - pos % BLOCK < BLOCK - tail) {
                        /* Moving to the next block wastes less than a
                         * block of its own would. */
                        pos = (pos / BLOCK + 1) * BLOCK;
                        in->layout = FLAT_INLINE;
                }
                in->nid = pos / 32;
                pos += isz + (in->layout == FLAT_INLINE ? tail : 0);
        }
        e->inodes = ino;

        /* Whole data blocks, in walk order. */
        next_block = (pos + BLOCK - 1) / BLOCK;
        for (size_t i = 0; i < t->n_nodes; i++) {
                einode *in = &e->in[i];
                uint64_t nb = in->layout == FLAT_INLINE ? in->size / BLOCK : (in->size + BLOCK - 1) / BLOCK;

                if (t->nodes[i].inode != i || nb == 0)
                        continue;
                in->blkaddr = next_block;
                next_block += nb;
        }
        e->blocks = next_block;
        if (e->blocks > UINT32_MAX)
                return log_errno(e, -EFBIG, "%" PRIu64 " blocks of 4096 bytes", e->blocks);
        return 0;
}

/* ---- emit: the second walk ---- */

/* Writes len bytes at file-system offset `at` through the metadata buffer;
 * offsets only grow. */
static int meta_write(efs *e, uint64_t at, const void *p, size_t len) {
        int r;

        if (at < e->meta_start)
                return log_errno(e, -EIO, "internal error: metadata written out of order at %" PRIu64, at);
        if (at + len > e->meta_start + META_BUF) {
                if (e->meta_filled) {
                        r = nri_pwrite_all(e->fd, e->meta, e->meta_filled, e->offset + e->meta_start);
                        if (r < 0)
                                return log_errno(e, r, "%s: cannot write the metadata", e->image);
                }
                memset(e->meta, 0, META_BUF);
                e->meta_start = at / BLOCK * BLOCK;
                e->meta_filled = 0;
        }
        memcpy(e->meta + (at - e->meta_start), p, len);
        if (at + len - e->meta_start > e->meta_filled)
                e->meta_filled = at + len - e->meta_start;
        return 0;
}

static int meta_flush(efs *e) {
        int r = 0;

        if (e->meta_filled)
                r = nri_pwrite_all(e->fd, e->meta, e->meta_filled, e->offset + e->meta_start);
        e->meta_filled = 0;
        return r < 0 ? log_errno(e, r, "%s: cannot write the metadata", e->image) : 0;
}

static int write_inode(efs *e, uint32_t id) {
        const nri_tree_node *n = &e->t.nodes[id];
        const einode *in = &e->in[id];
        uint8_t b[EXTENDED_SIZE] = {0};

        put16(b + 0, (in->extended ? 1 : 0) | in->layout << 1);
        put16(b + 4, n->mode);
        if (in->extended) {
                put64(b + 8, in->size);
                put32(b + 16, in->blkaddr);
                put32(b + 20, in->ino);
                put64(b + 32, (uint64_t)e->o->timestamp);
                put32(b + 44, n->nlink);
        } else {
                put16(b + 6, n->nlink);
                put32(b + 8, in->size);
                put32(b + 16, in->blkaddr);
                put32(b + 20, in->ino);
        }
        return meta_write(e, in->nid * 32, b, in->extended ? EXTENDED_SIZE : COMPACT_SIZE);
}

/* The last partial block of an inode's data: inline after the inode, or into
 * its last data block. */
static int write_tail(efs *e, uint32_t id, const void *p, size_t len) {
        const einode *in = &e->in[id];
        uint64_t at;
        int r;

        if (len == 0)
                return 0;
        if (in->layout == FLAT_INLINE)
                return meta_write(e, in->nid * 32 + (in->extended ? EXTENDED_SIZE : COMPACT_SIZE), p, len);
        at = (in->blkaddr + in->size / BLOCK) * BLOCK;
        r = nri_pwrite_all(e->fd, p, len, e->offset + at);
        return r < 0 ? log_errno(e, r, "%s: cannot write at %" PRIu64, e->image, e->offset + at) : 0;
}

typedef struct dir_writer {
        efs *e;
        uint32_t dir;
        uint64_t block;   /* index of the block being filled */
        uint32_t count;   /* dirents in it */
        size_t names_len; /* bytes of names in it */
        struct {
                uint64_t nid;
                uint8_t type;
                const char *name;
                size_t len;
        } ent[BLOCK / DIRENT_SIZE];
} dir_writer;

static uint8_t file_type(mode_t m) {
        return S_ISREG(m) ? FT_REG_FILE : S_ISDIR(m) ? FT_DIR : S_ISLNK(m) ? FT_SYMLINK : FT_UNKNOWN;
}

/* Writes the dirent block being filled: whole ones to the data blocks, the
 * last (partial) one as the tail. */
static int dir_flush_block(dir_writer *w, bool last) {
        efs *e = w->e;
        const einode *in = &e->in[w->dir];
        size_t at = (size_t)w->count * DIRENT_SIZE;
        int r;

        memset(e->block, 0, BLOCK);
        for (uint32_t i = 0; i < w->count; i++) {
                uint8_t *d = e->block + (size_t)i * DIRENT_SIZE;

                put64(d, w->ent[i].nid);
                put16(d + 8, at);
                d[10] = w->ent[i].type;
                memcpy(e->block + at, w->ent[i].name, w->ent[i].len);
                at += w->ent[i].len;
        }
        if (last && w->block * BLOCK + at != in->size)
                return log_errno(e, -EIO,
                                 "internal error: a directory of %" PRIu64 " bytes came out as %" PRIu64,
                                 in->size, w->block * BLOCK + at);
        if (last && at < BLOCK) {
                r = write_tail(e, w->dir, e->block, at);
        } else {
                uint64_t off = e->offset + (in->blkaddr + w->block) * BLOCK;

                r = nri_pwrite_all(e->fd, e->block, BLOCK, off);
                if (r < 0)
                        log_errno(e, r, "%s: cannot write at %" PRIu64, e->image, off);
        }
        w->block++, w->count = 0, w->names_len = 0;
        return r;
}

static int add_dirent(void *ctx, const char *name, size_t len, uint32_t id) {
        dir_writer *w = ctx;
        uint32_t ino = w->e->t.nodes[id].inode;
        int r;

        if ((w->count + 1) * DIRENT_SIZE + w->names_len + len > BLOCK && (r = dir_flush_block(w, false)) < 0)
                return r;
        w->ent[w->count].nid = w->e->in[ino].nid;
        w->ent[w->count].type = file_type(w->e->t.nodes[ino].mode);
        w->ent[w->count].name = name;
        w->ent[w->count].len = len;
        w->count++;
        w->names_len += len;
        return 0;
}

static int emit_directory(efs *e, uint32_t id) {
        dir_writer *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        w->e = e, w->dir = id;
        r = write_inode(e, id);
        if (r >= 0)
                r = for_each_dirent(&e->t, id, add_dirent, w);
        if (r >= 0)
                r = dir_flush_block(w, true);
        free(w);
        return r;
}

/* The second walk must give the entries of the first, in the same order. */
static int next_entry(efs *e, const nri_entry *en, mode_t type) {
        const nri_tree_node *n = en->id < e->t.n_nodes ? &e->t.nodes[en->id] : NULL;

        if (en->id != e->next_id || !n || (n->mode & S_IFMT) != type ||
            (S_ISREG(type) && n->size != en->size) ||
            (S_ISLNK(type) && strcmp(en->link_target, e->t.names + n->link_target)))
                return log_errno(e, -EIO, "%s: the plan changed between the two walks", en->target);
        e->next_id++;
        return 0;
}

static int emit_dir_cb(void *ctx, const nri_entry *en) {
        efs *e = ctx;
        int r = next_entry(e, en, S_IFDIR);

        return r < 0 ? r : emit_directory(e, (uint32_t)en->id);
}

static int emit_file_cb(void *ctx, const nri_entry *en, int fd) {
        efs *e = ctx;
        uint32_t id = (uint32_t)en->id;
        uint64_t size = en->size, whole = size / BLOCK * BLOCK;
        int r = next_entry(e, en, S_IFREG);

        if (r >= 0 && e->t.nodes[id].inode != id)
                return 0; /* a further name, written by its directory (ignore_hardlinks makes none) */
        if (r >= 0)
                r = write_inode(e, id);
        if (r >= 0 && whole) {
                r = nri_copy_data(fd, 0, e->fd, e->offset + e->in[id].blkaddr * BLOCK, whole);
                if (r < 0)
                        return log_errno(e, r, "%s: cannot copy %s", en->target, en->source);
        }
        if (r >= 0 && size > whole) {
                r = nri_pread_all(fd, e->block, (size_t)(size - whole), whole);
                if (r < 0)
                        return log_errno(e, r, "%s: cannot read %s", en->target, en->source);
                r = write_tail(e, id, e->block, (size_t)(size - whole));
        }
        /* Its bytes copied: still the file it was? */
        if (r >= 0 && !nri_source_unchanged(fd, en->st))
                return log_errno(e, -ESTALE, "%s: changed while being read", en->source);
        return r;
}

static int emit_symlink_cb(void *ctx, const nri_entry *en) {
        efs *e = ctx;
        int r = next_entry(e, en, S_IFLNK);

        if (r >= 0)
                r = write_inode(e, (uint32_t)en->id);
        if (r >= 0)
                r = write_tail(e, (uint32_t)en->id, en->link_target, e->t.nodes[en->id].size);
        return r;
}

static int emit_hardlink_cb(void *ctx, const nri_entry *en) {
        efs *e = ctx;

        /* Nothing but the name, which its directory wrote. */
        return next_entry(e, en, S_IFREG);
}

/* CRC32C as Linux's crc32c() computes it: no final inversion. */
static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n) {
        while (n--) {
                crc ^= *p++;
                for (int k = 0; k < 8; k++)
                        crc = crc >> 1 ^ (UINT32_C(0x82F63B78) & (0u - (crc & 1)));
        }
        return crc;
}

static int write_superblock(efs *e) {
        const char *label = e->o->label;
        uint8_t *b = e->block, *sb = b + SUPER_OFFSET;
        int r = nri_pread_all(e->fd, b, BLOCK, e->offset);

        if (r < 0)
                return log_errno(e, r, "%s: cannot read back block 0", e->image);
        memset(sb, 0, SUPER_SIZE);
        put32(sb + 0, MAGIC);
        put32(sb + 8, COMPAT_SB_CHKSUM);
        sb[12] = 12; /* 4096-byte blocks */
        put16(sb + 14, e->in[0].nid);
        put64(sb + 16, e->inodes);
        put64(sb + 24, (uint64_t)e->o->timestamp);
        put32(sb + 36, e->blocks);
        memcpy(sb + 48, e->o->uuid.b, 16);
        if (label)
                memcpy(sb + 64, label, strlen(label));
        put32(sb + 4, crc32c(UINT32_MAX, sb, BLOCK - SUPER_OFFSET));
        r = nri_pwrite_all(e->fd, b, BLOCK, e->offset);
        return r < 0 ? log_errno(e, r, "%s: cannot write the superblock", e->image) : 0;
}

static int emit(efs *e, const nri_plan *plan) {
        nri_visitor v = {.ctx = e,
                         .directory = emit_dir_cb,
                         .file = emit_file_cb,
                         .symlink = emit_symlink_cb,
                         .hardlink = emit_hardlink_cb};
        int r;

        e->meta = calloc(1, META_BUF);
        if (!e->meta)
                return -ENOMEM;
        e->next_id = 1;
        r = emit_directory(e, 0);
        if (r >= 0)
                r = nri_plan_walk(plan, &v);
        if (r >= 0 && e->next_id != e->t.n_nodes)
                r = log_errno(e, -EIO, "the plan changed between the two walks");
        if (r >= 0)
                r = meta_flush(e);
        if (r >= 0)
                r = write_superblock(e);
        return r;
}

/* ---- the two entry points ---- */

static void efs_free(efs *e) {
        nri_tree_free(&e->t);
        free(e->in);
        free(e->meta);
        free(e->block);
}

static int prepare(efs *e, const nri_plan *plan, const nri_erofs_options *o) {
        int r;

        *e = (efs){.o = o, .what = o->what ? o->what : "erofs", .fd = -1};
        if (o->timestamp < 0 || (o->label && strlen(o->label) > NRI_EROFS_LABEL_MAX)) {
                log_error(
                    "%s: bad options: timestamp %" PRId64 " (0 or more), label of %zu bytes (at most %d)",
                    e->what, o->timestamp, o->label ? strlen(o->label) : (size_t)0, NRI_EROFS_LABEL_MAX);
                return -EINVAL;
        }
        e->block = malloc(BLOCK);
        if (!e->block)
                return -ENOMEM;
        r = nri_tree_collect(plan, e->what, NULL, NULL, &e->t);
        for (size_t i = 0; r >= 0 && i < e->t.n_nodes; i++)
                if (S_ISLNK(e->t.nodes[i].mode) && (e->t.nodes[i].size == 0 || e->t.nodes[i].size >= BLOCK))
                        r = log_errno(e, -ENAMETOOLONG, "a symlink target of %" PRIu64 " bytes",
                                      e->t.nodes[i].size);
        if (r >= 0)
                r = layout(e);
        return r;
}

int nri_erofs_size(const nri_plan *plan, const nri_erofs_options *o, uint64_t *ret) {
        efs e;
        int r = prepare(&e, plan, o);

        if (r == -ENOMEM)
                log_error("%s: out of memory", e.what);
        if (r >= 0)
                *ret = e.blocks * BLOCK;
        efs_free(&e);
        return r;
}

int nri_erofs_write(const char *image_path, uint64_t offset, uint64_t size, const nri_erofs_options *o,
                    const nri_plan *plan) {
        efs e;
        int r = prepare(&e, plan, o);

        if (r == -ENOMEM)
                log_error("%s: out of memory", e.what);
        if (r >= 0 && e.blocks * BLOCK > size) {
                log_error("%s: the content needs %" PRIu64 " bytes of erofs, the partition has %" PRIu64 "",
                          e.what, e.blocks * BLOCK, size);
                r = -ENOSPC;
        }
        if (r >= 0) {
                e.image = image_path, e.offset = offset;
                r = nri_range_open(image_path, offset, size, e.what, &e.fd);
        }
        if (r >= 0 && (r = nri_range_clear(e.fd, offset, size)) < 0)
                log_errno(&e, r, "%s: cannot clear %" PRIu64 "+%" PRIu64, image_path, offset, size);
        if (r >= 0)
                r = emit(&e, plan);
        if (r == -ENOMEM)
                log_error("%s: out of memory", e.what);
        if (e.fd >= 0 && close(e.fd) < 0 && r >= 0)
                r = log_errno(&e, -errno, "%s", image_path);
        efs_free(&e);
        return r;
}

/* ---- the file-system table's writer (fs.h) ---- */

static void erofs_options(const nri_fs_part *fp, nri_erofs_options *ret) {
        /* No label: systemd-repart gives mkfs.erofs none (the partition's
         * label is in the GPT). */
        *ret = (nri_erofs_options){
            .uuid = fp->p->fs_uuid,
            .timestamp = fp->plan->mtime,
            .what = fp->what,
        };
}

/* Minimize=best (and guess, which is the same for a read-only format): the
 * exact size, from a walk that reads no file data. */
static int best_size(nri_fs_part *fp, uint64_t *ret) {
        nri_erofs_options o;

        erofs_options(fp, &o);
        return nri_erofs_size(fp->plan, &o, ret);
}

static int write_fs(const nri_fs_part *fp) {
        nri_erofs_options o;

        erofs_options(fp, &o);
        return nri_erofs_write(fp->image, fp->offset, fp->size, &o, fp->plan);
}

const nri_fs_writer nri_erofs_fs = {
    .best_size = best_size,
    .write = write_fs,
};
