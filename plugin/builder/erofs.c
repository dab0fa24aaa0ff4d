/* erofs.c: an uncompressed EROFS written from the walk (see erofs.h).
 *
 * Three steps, each a function below:
 *   collect()  walks the plan once without reading file data and keeps one
 *              small node per entry (its name, parent, mode, size, link);
 *   layout()   sorts each directory, sizes its dirent blocks, gives every
 *              inode its nid and inline tail and every data block its
 *              address: the whole file system's shape, and so its size;
 *   emit()     walks the plan again and writes each entry where layout()
 *              put it — inodes and inline tails through a sequential buffer
 *              (nids grow in walk order), data blocks straight from the
 *              source with copy_file_range() — then the superblock.
 * The on-disk structures are Linux's fs/erofs/erofs_fs.h; all integers are
 * little-endian. */
#include "nix-repart-image/erofs.h"
#include "nix-repart-image/range.h"

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
#define NO_ID UINT32_MAX

enum { FT_UNKNOWN, FT_REG_FILE, FT_DIR, FT_CHRDEV, FT_BLKDEV, FT_FIFO, FT_SOCK, FT_SYMLINK };

typedef struct enode {
        uint64_t size;    /* files: bytes; symlinks: target length; directories: dirent bytes */
        uint64_t nid;     /* where the inode is: nid * 32 from the start */
        uint64_t blkaddr; /* first whole data block, if any */
        uint32_t parent;  /* the directory it is in */
        uint32_t name;    /* offset of its name in the arena */
        uint32_t inode;   /* itself, or for a second name of a file the first one */
        uint32_t nlink;
        uint32_t ino;      /* the 32-bit inode number for stat on 32-bit machines */
        uint32_t children; /* first of its names in the children array (directories) */
        uint32_t n_children;
        uint32_t target; /* offset of a symlink's target in the arena */
        uint16_t name_len;
        uint16_t mode;
        uint8_t layout; /* FLAT_PLAIN or FLAT_INLINE */
        bool extended;
} enode;

typedef struct efs {
        const nri_erofs_options *o;
        const char *what;
        enode *nodes;
        size_t n_nodes, cap_nodes;
        char *arena;
        size_t arena_len, arena_cap;
        uint32_t *children; /* per directory, its names' ids, sorted by name */
        uint64_t inodes;    /* distinct inodes */
        uint64_t meta_end;  /* bytes of block 0 on that inodes and tails use */
        uint64_t blocks;    /* the file system's size in blocks */
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

static int log_errno(efs *e, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int log_errno(efs *e, int r, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "%s: ", e->what);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, ": %s\n", strerror(-r));
        return r;
}

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

/* ---- collect: the first walk ---- */

static int arena_add(efs *e, const char *s, size_t n, uint32_t *ret) {
        if (e->arena_len + n > UINT32_MAX)
                return -EFBIG;
        if (e->arena_len + n > e->arena_cap) {
                size_t cap = e->arena_cap ? e->arena_cap : 65536;
                char *a;

                while (cap < e->arena_len + n)
                        cap *= 2;
                if (!(a = realloc(e->arena, cap)))
                        return -ENOMEM;
                e->arena = a, e->arena_cap = cap;
        }
        memcpy(e->arena + e->arena_len, s, n);
        *ret = (uint32_t)e->arena_len;
        e->arena_len += n;
        return 0;
}

static int add_node(efs *e, const nri_entry *en, mode_t mode, uint64_t size, enode **ret) {
        enode *n;
        size_t len = strlen(en->name);
        int r;

        if (en->id != e->n_nodes || en->id >= NO_ID)
                return log_errno(e, -EIO, "%s: the walk gave id %zu where %zu was due", en->target, en->id,
                                 e->n_nodes);
        if (len > 255)
                return log_errno(e, -ENAMETOOLONG, "%s", en->target);
        if (e->n_nodes == e->cap_nodes) {
                size_t cap = e->cap_nodes ? 2 * e->cap_nodes : 1024;
                enode *v = realloc(e->nodes, cap * sizeof(*v));

                if (!v)
                        return -ENOMEM;
                e->nodes = v, e->cap_nodes = cap;
        }
        n = &e->nodes[e->n_nodes++];
        *n = (enode){.size = size,
                     .parent = (uint32_t)en->parent,
                     .inode = (uint32_t)en->id,
                     .nlink = 1,
                     .name_len = (uint16_t)len,
                     .mode = (uint16_t)mode};
        r = arena_add(e, en->name, len, &n->name);
        if (r < 0)
                return r;
        if (!S_ISDIR(e->nodes[n->parent].mode))
                return log_errno(e, -EIO, "%s: its parent is no directory", en->target);
        *ret = n;
        return 0;
}

static int on_directory(void *ctx, const nri_entry *en) {
        efs *e = ctx;
        enode *n;
        int r = add_node(e, en, en->mode, 0, &n);

        if (r >= 0)
                n->nlink = 2;
        if (r >= 0)
                e->nodes[n->parent].nlink++;
        return r;
}

static int on_file(void *ctx, const nri_entry *en, int fd) {
        enode *n;

        (void)fd;
        return add_node(ctx, en, en->mode, en->size, &n);
}

static int on_symlink(void *ctx, const nri_entry *en) {
        efs *e = ctx;
        size_t len = strlen(en->link_target);
        enode *n;
        int r;

        if (len == 0 || len >= 4096)
                return log_errno(e, -ENAMETOOLONG, "%s: a symlink target of %zu bytes", en->target, len);
        r = add_node(e, en, en->mode, len, &n);
        if (r >= 0)
                r = arena_add(e, en->link_target, len, &n->target);
        return r;
}

static int on_hardlink(void *ctx, const nri_entry *en) {
        efs *e = ctx;
        enode *n;
        int r;

        if (en->hardlink_id >= e->n_nodes || !S_ISREG(e->nodes[en->hardlink_id].mode))
                return log_errno(e, -EIO, "%s: a hard link to an unknown file", en->target);
        r = add_node(e, en, S_IFREG, 0, &n);
        if (r < 0)
                return r;
        n->inode = (uint32_t)en->hardlink_id;
        if (++e->nodes[n->inode].nlink == 0)
                return log_errno(e, -EMLINK, "%s", en->target);
        return 0;
}

static int collect(efs *e, const nri_plan *plan) {
        nri_visitor v = {.ctx = e,
                         .directory = on_directory,
                         .file = on_file,
                         .symlink = on_symlink,
                         .hardlink = on_hardlink};
        nri_entry root = {.target = "/", .name = "", .id = 0};
        enode *n;
        int r;

        r = add_node(e, &root, S_IFDIR | 0755, 0, &n);
        if (r >= 0)
                n->nlink = 2;
        if (r >= 0)
                r = nri_plan_walk(plan, &v);
        return r;
}

/* ---- layout ---- */

static const efs *sort_fs; /* qsort() has no context argument */

static int name_cmp(const char *a, size_t la, const char *b, size_t lb) {
        int c = memcmp(a, b, la < lb ? la : lb);

        return c ? c : (la > lb) - (la < lb);
}

static int cmp_children(const void *x, const void *y) {
        const enode *a = &sort_fs->nodes[*(const uint32_t *)x], *b = &sort_fs->nodes[*(const uint32_t *)y];

        return name_cmp(sort_fs->arena + a->name, a->name_len, sort_fs->arena + b->name, b->name_len);
}

/* The dirents of directory d in order, "." and ".." among its names:
 * calls f(ctx, name, len, id) for each; id of "." is d, of ".." its parent. */
typedef int (*dirent_fn)(void *ctx, const char *name, size_t len, uint32_t id);

static int for_each_dirent(const efs *e, uint32_t d, dirent_fn f, void *ctx) {
        const enode *dn = &e->nodes[d];
        bool dot = false, dotdot = false;
        int r = 0;

        for (uint32_t i = 0; r >= 0 && i <= dn->n_children; i++) {
                const enode *c = i < dn->n_children ? &e->nodes[e->children[dn->children + i]] : NULL;
                const char *name = c ? e->arena + c->name : "\xff";
                size_t len = c ? c->name_len : 1;

                if (!dot && name_cmp(".", 1, name, len) < 0)
                        r = f(ctx, ".", 1, d), dot = true;
                if (r >= 0 && !dotdot && name_cmp("..", 2, name, len) < 0)
                        r = f(ctx, "..", 2, dn->parent), dotdot = true;
                if (r >= 0 && c)
                        r = f(ctx, name, len, e->children[dn->children + i]);
        }
        return r;
}

typedef struct dir_size {
        uint64_t full_blocks, used; /* used: bytes of the last block */
        uint32_t entries;           /* in the last block */
} dir_size;

static int size_dirent(void *ctx, const char *name, size_t len, uint32_t id) {
        dir_size *s = ctx;

        (void)name, (void)id;
        if (s->used + DIRENT_SIZE + len > BLOCK)
                s->full_blocks++, s->used = 0, s->entries = 0;
        s->used += DIRENT_SIZE + len;
        s->entries++;
        return 0;
}

static uint64_t tail_of(const enode *n) {
        return n->size % BLOCK;
}

static int layout(efs *e) {
        uint64_t pos = SUPER_OFFSET + SUPER_SIZE, next_block, ino = 0;
        uint32_t *fill;

        /* Children, sorted. */
        for (size_t i = 1; i < e->n_nodes; i++)
                e->nodes[e->nodes[i].parent].n_children++;
        e->children = malloc((e->n_nodes ? e->n_nodes : 1) * sizeof(*e->children));
        fill = calloc(e->n_nodes, sizeof(*fill));
        if (!e->children || !fill) {
                free(fill);
                return -ENOMEM;
        }
        for (size_t i = 0, at = 0; i < e->n_nodes; i++)
                if (S_ISDIR(e->nodes[i].mode))
                        e->nodes[i].children = (uint32_t)at, at += e->nodes[i].n_children;
        for (size_t i = 1; i < e->n_nodes; i++) {
                enode *p = &e->nodes[e->nodes[i].parent];

                e->children[p->children + fill[e->nodes[i].parent]++] = (uint32_t)i;
        }
        free(fill);
        sort_fs = e;
        for (size_t i = 0; i < e->n_nodes; i++)
                if (S_ISDIR(e->nodes[i].mode))
                        qsort(e->children + e->nodes[i].children, e->nodes[i].n_children, sizeof(uint32_t),
                              cmp_children);

        /* Inodes and inline tails, in walk order from nid 36 on. */
        for (size_t i = 0; i < e->n_nodes; i++) {
                enode *n = &e->nodes[i];
                uint64_t isz, tail, room;

                if (n->inode != i)
                        continue;
                if (S_ISDIR(n->mode)) {
                        dir_size s = {0};

                        for_each_dirent(e, (uint32_t)i, size_dirent, &s);
                        n->size = s.full_blocks * BLOCK + s.used;
                }
                n->extended = n->size > UINT32_MAX || n->nlink > UINT16_MAX;
                n->ino = (uint32_t)++ino;
                isz = n->extended ? EXTENDED_SIZE : COMPACT_SIZE;
                tail = tail_of(n);
                pos = (pos + 31) / 32 * 32;
                if (pos % BLOCK + isz > BLOCK)
                        pos = (pos / BLOCK + 1) * BLOCK;
                room = BLOCK - pos % BLOCK - isz;
                n->layout = FLAT_PLAIN;
                if (tail && tail <= room) {
                        n->layout = FLAT_INLINE;
                } else if (tail && tail <= BLOCK - isz && BLOCK - pos % BLOCK < BLOCK - tail) {
                        /* Moving to the next block wastes less than a
                         * block of its own would. */
                        pos = (pos / BLOCK + 1) * BLOCK;
                        n->layout = FLAT_INLINE;
                }
                n->nid = pos / 32;
                pos += isz + (n->layout == FLAT_INLINE ? tail : 0);
        }
        e->inodes = ino;
        e->meta_end = pos;

        /* Whole data blocks, in walk order. */
        next_block = (pos + BLOCK - 1) / BLOCK;
        for (size_t i = 0; i < e->n_nodes; i++) {
                enode *n = &e->nodes[i];
                uint64_t nb = n->layout == FLAT_INLINE ? n->size / BLOCK : (n->size + BLOCK - 1) / BLOCK;

                if (n->inode != i || nb == 0)
                        continue;
                n->blkaddr = next_block;
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

static int write_inode(efs *e, const enode *n) {
        uint8_t b[EXTENDED_SIZE] = {0};
        uint64_t blk = n->blkaddr;

        put16(b + 0, (n->extended ? 1 : 0) | n->layout << 1);
        put16(b + 4, n->mode);
        if (n->extended) {
                put64(b + 8, n->size);
                put32(b + 16, blk);
                put32(b + 20, n->ino);
                put64(b + 32, (uint64_t)e->o->timestamp);
                put32(b + 44, n->nlink);
        } else {
                put16(b + 6, n->nlink);
                put32(b + 8, n->size);
                put32(b + 16, blk);
                put32(b + 20, n->ino);
        }
        return meta_write(e, n->nid * 32, b, n->extended ? EXTENDED_SIZE : COMPACT_SIZE);
}

/* The last partial block of n's data: inline after its inode, or into its
 * last data block. */
static int write_tail(efs *e, const enode *n, const void *p, size_t len) {
        uint64_t at;
        int r;

        if (len == 0)
                return 0;
        if (n->layout == FLAT_INLINE)
                return meta_write(e, n->nid * 32 + (n->extended ? EXTENDED_SIZE : COMPACT_SIZE), p, len);
        at = (n->blkaddr + n->size / BLOCK) * BLOCK;
        r = nri_pwrite_all(e->fd, p, len, e->offset + at);
        return r < 0 ? log_errno(e, r, "%s: cannot write at %" PRIu64, e->image, e->offset + at) : 0;
}

typedef struct dir_writer {
        efs *e;
        const enode *dir;
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
        size_t at = (size_t)w->count * DIRENT_SIZE, used;
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
        used = at;
        if (last && w->block * BLOCK + used != w->dir->size)
                return log_errno(e, -EIO,
                                 "internal error: a directory of %" PRIu64 " bytes came out as %" PRIu64,
                                 w->dir->size, w->block * BLOCK + used);
        if (last && used < BLOCK) {
                r = write_tail(e, w->dir, e->block, used);
        } else {
                uint64_t off = e->offset + (w->dir->blkaddr + w->block) * BLOCK;

                r = nri_pwrite_all(e->fd, e->block, BLOCK, off);
                if (r < 0)
                        log_errno(e, r, "%s: cannot write at %" PRIu64, e->image, off);
        }
        w->block++, w->count = 0, w->names_len = 0;
        return r;
}

static int add_dirent(void *ctx, const char *name, size_t len, uint32_t id) {
        dir_writer *w = ctx;
        const enode *t = &w->e->nodes[w->e->nodes[id].inode];
        int r;

        if ((w->count + 1) * DIRENT_SIZE + w->names_len + len > BLOCK && (r = dir_flush_block(w, false)) < 0)
                return r;
        w->ent[w->count].nid = t->nid;
        w->ent[w->count].type = file_type(t->mode);
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
        w->e = e, w->dir = &e->nodes[id];
        r = write_inode(e, w->dir);
        if (r >= 0)
                r = for_each_dirent(e, id, add_dirent, w);
        if (r >= 0)
                r = dir_flush_block(w, true);
        free(w);
        return r;
}

static int next_entry(efs *e, const nri_entry *en, enode **ret) {
        if (en->id != e->next_id || en->id >= e->n_nodes)
                return log_errno(e, -EIO, "%s: the plan changed between the two walks", en->target);
        e->next_id++;
        *ret = &e->nodes[en->id];
        return 0;
}

static int emit_dir_cb(void *ctx, const nri_entry *en) {
        efs *e = ctx;
        enode *n = NULL;
        int r = next_entry(e, en, &n);

        return r < 0 ? r : emit_directory(e, (uint32_t)en->id);
}

static int emit_file_cb(void *ctx, const nri_entry *en, int fd) {
        efs *e = ctx;
        uint64_t whole;
        enode *n = NULL;
        int r = next_entry(e, en, &n);

        if (r < 0)
                return r;
        if (en->size != n->size || !S_ISREG(n->mode))
                return log_errno(e, -EIO, "%s: %s changed between the two walks", en->target, en->source);
        r = write_inode(e, n);
        whole = n->size / BLOCK * BLOCK;
        if (r >= 0 && whole) {
                r = nri_copy_data(fd, 0, e->fd, e->offset + n->blkaddr * BLOCK, whole);
                if (r < 0)
                        return log_errno(e, r, "%s: cannot copy %s", en->target, en->source);
        }
        if (r >= 0 && n->size > whole) {
                r = nri_pread_all(fd, e->block, (size_t)(n->size - whole), whole);
                if (r < 0)
                        return log_errno(e, r, "%s: cannot read %s", en->target, en->source);
                r = write_tail(e, n, e->block, (size_t)(n->size - whole));
        }
        return r;
}

static int emit_symlink_cb(void *ctx, const nri_entry *en) {
        efs *e = ctx;
        enode *n = NULL;
        int r = next_entry(e, en, &n);

        if (r < 0)
                return r;
        if (strlen(en->link_target) != n->size || memcmp(en->link_target, e->arena + n->target, n->size))
                return log_errno(e, -EIO, "%s: the symlink changed between the two walks", en->target);
        r = write_inode(e, n);
        if (r >= 0)
                r = write_tail(e, n, e->arena + n->target, n->size);
        return r;
}

static int emit_hardlink_cb(void *ctx, const nri_entry *en) {
        efs *e = ctx;
        enode *n;

        /* Nothing but the name, which its directory wrote. */
        return next_entry(e, en, &n);
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
        put16(sb + 14, e->nodes[0].nid);
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
        if (r >= 0 && e->next_id != e->n_nodes)
                r = log_errno(e, -EIO, "the plan changed between the two walks");
        if (r >= 0)
                r = meta_flush(e);
        if (r >= 0)
                r = write_superblock(e);
        return r;
}

/* ---- the two entry points ---- */

static void efs_free(efs *e) {
        free(e->nodes);
        free(e->arena);
        free(e->children);
        free(e->meta);
        free(e->block);
}

static int prepare(efs *e, const nri_plan *plan, const nri_erofs_options *o) {
        int r;

        *e = (efs){.o = o, .what = o->what ? o->what : "erofs", .fd = -1};
        if (o->timestamp < 0 || (o->label && strlen(o->label) > NRI_EROFS_LABEL_MAX)) {
                fprintf(stderr,
                        "%s: bad options: timestamp %" PRId64
                        " (0 or more), label of %zu bytes (at most %d)\n",
                        e->what, o->timestamp, o->label ? strlen(o->label) : (size_t)0, NRI_EROFS_LABEL_MAX);
                return -EINVAL;
        }
        e->block = malloc(BLOCK);
        e->nodes = calloc(1, sizeof(*e->nodes));
        if (!e->block || !e->nodes)
                return -ENOMEM;
        e->cap_nodes = 1;
        r = collect(e, plan);
        if (r >= 0)
                r = layout(e);
        return r;
}

int nri_erofs_size(const nri_plan *plan, const nri_erofs_options *o, uint64_t *ret) {
        efs e;
        int r = prepare(&e, plan, o);

        if (r == -ENOMEM)
                fprintf(stderr, "%s: out of memory\n", e.what);
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
                fprintf(stderr, "%s: out of memory\n", e.what);
        if (r >= 0 && e.blocks * BLOCK > size) {
                fprintf(stderr,
                        "%s: the content needs %" PRIu64 " bytes of erofs, the partition has %" PRIu64 "\n",
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
                fprintf(stderr, "%s: out of memory\n", e.what);
        if (e.fd >= 0 && close(e.fd) < 0 && r >= 0)
                r = log_errno(&e, -errno, "%s", image_path);
        efs_free(&e);
        return r;
}
