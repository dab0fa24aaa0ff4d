/* squashfs.c: a SquashFS written through libsquashfs from the walk (see
 * squashfs.h).
 *
 * libsquashfs writes through an sqfs_file_t; ours (sink) is a byte range of
 * a file: the partition in the image, or a temporary file.  The steps, in
 * the order the format stores them:
 *   superblock (rewritten at the end) and compressor options;
 *   data blocks and fragments: the tree's walk hands each file's descriptor
 *     to the block processor (file_data()), which compresses on `workers`
 *     threads and writes in submission order;
 *   the inode table: files and symlinks in walk order, then directories
 *     deepest first (decreasing walk id: a child always comes after its
 *     parent in the walk), so that each listing names inodes already
 *     written; inode numbers follow that order, the root's is the last;
 *   the directory table, the fragment, export and ID tables; the final
 *     superblock; zeros up to a multiple of 4096. */
#include "squashfs.h"
#include "fs.h"
#include "log.h"
#include "range.h"
#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqfs/block.h>
#include <sqfs/block_processor.h>
#include <sqfs/block_writer.h>
#include <sqfs/compressor.h>
#include <sqfs/dir_writer.h>
#include <sqfs/error.h>
#include <sqfs/frag_table.h>
#include <sqfs/id_table.h>
#include <sqfs/inode.h>
#include <sqfs/io.h>
#include <sqfs/meta_writer.h>
#include <sqfs/super.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_BUF (1u << 20)
#define SLOTS_PER_CHUNK 4096

/* ---- the sink: a byte range of a file ---- */

typedef struct sink {
        sqfs_file_t base;
        int fd;
        uint64_t offset; /* where the file system starts in the file */
        uint64_t limit;  /* bytes it may take */
        uint64_t size;   /* bytes it has now */
        uint64_t high;   /* bytes ever written (truncation leaves some behind) */
        int error;       /* the first errno of an I/O call, negative */
} sink;

static void sink_destroy(sqfs_object_t *o) {
        (void)o; /* embedded in its writer, which owns the descriptor */
}

static int sink_read_at(sqfs_file_t *f, sqfs_u64 off, void *buf, size_t n) {
        sink *s = (sink *)f;
        int r;

        if (off > s->size || n > s->size - off)
                return SQFS_ERROR_OUT_OF_BOUNDS;
        r = nri_pread_all(s->fd, buf, n, s->offset + off);
        if (r < 0) {
                if (!s->error)
                        s->error = r;
                return SQFS_ERROR_IO;
        }
        return 0;
}

static int sink_write_at(sqfs_file_t *f, sqfs_u64 off, const void *buf, size_t n) {
        sink *s = (sink *)f;
        int r;

        if (off > s->limit || n > s->limit - off) {
                if (!s->error)
                        s->error = -ENOSPC;
                return SQFS_ERROR_IO;
        }
        r = nri_pwrite_all(s->fd, buf, n, s->offset + off);
        if (r < 0) {
                if (!s->error)
                        s->error = r;
                return SQFS_ERROR_IO;
        }
        if (off + n > s->size)
                s->size = off + n;
        if (s->size > s->high)
                s->high = s->size;
        return 0;
}

static sqfs_u64 sink_get_size(const sqfs_file_t *f) {
        return ((const sink *)f)->size;
}

static int sink_truncate(sqfs_file_t *f, sqfs_u64 size) {
        sink *s = (sink *)f;

        if (size > s->limit) {
                if (!s->error)
                        s->error = -ENOSPC;
                return SQFS_ERROR_IO;
        }
        s->size = size;
        if (s->size > s->high)
                s->high = s->size;
        return 0;
}

static void sink_init(sink *s, int fd, uint64_t offset, uint64_t limit) {
        *s = (sink){.base = {.base = {.destroy = sink_destroy},
                             .read_at = sink_read_at,
                             .write_at = sink_write_at,
                             .get_size = sink_get_size,
                             .truncate = sink_truncate},
                    .fd = fd,
                    .offset = offset,
                    .limit = limit};
}

/* ---- the writer ---- */

typedef struct sqw {
        const nri_squashfs_options *o;
        const char *what;
        sink *out;
        nri_tree t;
        sqfs_super_t super;
        sqfs_compressor_t *cmp, *uncmp;
        sqfs_block_writer_t *blkwr;
        sqfs_frag_table_t *frags;
        sqfs_block_processor_t *proc;
        sqfs_id_table_t *ids;
        sqfs_meta_writer_t *im, *dm;
        sqfs_dir_writer_t *dirw;
        /* Per tree node: the file inodes the block processor fills (in
         * chunks that never move: it keeps pointers to them), each inode's
         * number and reference once written. */
        sqfs_inode_generic_t ***chunks;
        size_t n_chunks;
        uint32_t *slot; /* per node: its file inode's slot + 1, 0 for none */
        size_t slot_cap, n_slots;
        uint32_t *ino;
        uint64_t *ref;
        char *buf;
        bool finished; /* the block processor has written everything */
} sqw;

static int sq_fail(sqw *w, int sqfs_err, const char *step) {
        int r = sqfs_err == SQFS_ERROR_ALLOC                 ? -ENOMEM
                : sqfs_err == SQFS_ERROR_IO && w->out->error ? w->out->error
                : sqfs_err == SQFS_ERROR_UNSUPPORTED         ? -EOPNOTSUPP
                : sqfs_err == SQFS_ERROR_ARG_INVALID         ? -EINVAL
                                                             : -EIO;

        if (r == -ENOSPC)
                log_error("%s: the file system does not fit in its %" PRIu64 " bytes (%s)", w->what,
                          w->out->limit, step);
        else
                log_error("%s: %s failed: %s (libsquashfs error %d)", w->what, step, strerror(-r), sqfs_err);
        return r;
}

static sqfs_inode_generic_t **slot_ptr(sqw *w, uint32_t slot) {
        return &w->chunks[slot / SLOTS_PER_CHUNK][slot % SLOTS_PER_CHUNK];
}

static int new_slot(sqw *w, uint32_t *ret) {
        if (w->n_slots == w->n_chunks * SLOTS_PER_CHUNK) {
                sqfs_inode_generic_t ***v = realloc(w->chunks, (w->n_chunks + 1) * sizeof(*v));

                if (!v)
                        return -ENOMEM;
                w->chunks = v;
                if (!(w->chunks[w->n_chunks] = calloc(SLOTS_PER_CHUNK, sizeof(sqfs_inode_generic_t *))))
                        return -ENOMEM;
                w->n_chunks++;
        }
        *ret = (uint32_t)w->n_slots++;
        return 0;
}

static int set_slot(sqw *w, uint32_t id, uint32_t slot) {
        if (id >= w->slot_cap) {
                size_t cap = w->slot_cap ? 2 * w->slot_cap : 1024;
                uint32_t *v;

                while (cap <= id)
                        cap *= 2;
                if (!(v = realloc(w->slot, cap * sizeof(*v))))
                        return -ENOMEM;
                memset(v + w->slot_cap, 0, (cap - w->slot_cap) * sizeof(*v));
                w->slot = v, w->slot_cap = cap;
        }
        w->slot[id] = slot + 1;
        return 0;
}

/* The tree hands each file to us while the walk has it open. */
static int file_data(void *ctx, const nri_tree *t, uint32_t id, const nri_entry *e, int fd) {
        sqw *w = ctx;
        uint64_t left = e->size;
        uint32_t slot;
        int r, err;

        (void)t;
        r = new_slot(w, &slot);
        if (r >= 0)
                r = set_slot(w, id, slot);
        if (r < 0)
                return r;
        /* mksquashfs without -always-use-fragments: only a file smaller than
         * a block goes into a fragment; a larger one keeps its tail as a
         * short block of its own. */
        err = sqfs_block_processor_begin_file(w->proc, slot_ptr(w, slot), NULL,
                                              e->size > w->super.block_size ? SQFS_BLK_DONT_FRAGMENT : 0);
        if (err) {
                log_error("%s: %s: ", w->what, e->target);
                return sq_fail(w, err, "starting its data");
        }
        while (!err && r >= 0 && left > 0) {
                ssize_t n = read(fd, w->buf, left < READ_BUF ? (size_t)left : READ_BUF);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = n < 0 ? -errno : -EIO;
                        log_error("%s: %s: cannot read %s: %s", w->what, e->target, e->source,
                                  n < 0 ? strerror(-r) : "it is shorter than it was");
                        break;
                }
                err = sqfs_block_processor_append(w->proc, w->buf, (size_t)n);
                left -= (uint64_t)n;
        }
        /* Ended even after a failure: the block processor frees a file's
         * blocks only once it is ended. */
        if (!err)
                err = sqfs_block_processor_end_file(w->proc);
        if (err) {
                log_error("%s: %s: ", w->what, e->target);
                return sq_fail(w, err, "compressing its data");
        }
        if (r >= 0 && !nri_source_unchanged(fd, e->st)) {
                log_error("%s: %s: changed while being read", w->what, e->source);
                r = -ESTALE;
        }
        return r;
}

static int set_common(sqw *w, sqfs_inode_generic_t *inode, uint32_t id) {
        const nri_tree_node *n = &w->t.nodes[id];

        inode->base.mode = (sqfs_u16)n->mode;
        inode->base.mod_time = (sqfs_u32)w->o->timestamp;
        inode->base.inode_number = w->ino[id];
        inode->base.uid_idx = inode->base.gid_idx = 0; /* root, the ID table's only entry */
        return 0;
}

static int write_inode(sqw *w, sqfs_inode_generic_t *inode, uint32_t id) {
        sqfs_u64 block;
        sqfs_u32 offset;
        int err;

        set_common(w, inode, id);
        sqfs_meta_writer_get_position(w->im, &block, &offset);
        w->ref[id] = block << 16 | offset;
        err = sqfs_meta_writer_write_inode(w->im, inode);
        return err ? sq_fail(w, err, "writing an inode") : 0;
}

static int write_leaf(sqw *w, uint32_t id) {
        const nri_tree_node *n = &w->t.nodes[id];
        sqfs_inode_generic_t *inode;
        int r;

        if (S_ISREG(n->mode)) {
                inode = *slot_ptr(w, w->slot[id] - 1);
                if (n->nlink > 1) {
                        if (inode->base.type == SQFS_INODE_FILE && sqfs_inode_make_extended(inode))
                                return sq_fail(w, SQFS_ERROR_INTERNAL, "making a file inode extended");
                        inode->data.file_ext.nlink = n->nlink;
                }
                return write_inode(w, inode, id);
        }
        /* A symlink. */
        inode = calloc(1, sizeof(*inode) + n->size);
        if (!inode)
                return -ENOMEM;
        inode->base.type = SQFS_INODE_SLINK;
        inode->data.slink.nlink = 1;
        inode->data.slink.target_size = (sqfs_u32)n->size;
        inode->payload_bytes_available = inode->payload_bytes_used = (sqfs_u32)n->size;
        memcpy(inode->extra, w->t.names + n->link_target, n->size);
        r = write_inode(w, inode, id);
        free(inode);
        return r;
}

static int write_directory(sqw *w, uint32_t id) {
        const nri_tree_node *n = &w->t.nodes[id];
        const uint32_t *ch = nri_tree_children(&w->t, id);
        sqfs_inode_generic_t *inode;
        uint32_t parent_ino = id == 0 ? w->ino[0] + 1 : w->ino[n->parent];
        int err, r;

        err = sqfs_dir_writer_begin(w->dirw, 0);
        for (uint32_t i = 0; !err && i < n->n_children; i++) {
                uint32_t c = w->t.nodes[ch[i]].inode;

                err = sqfs_dir_writer_add_entry(w->dirw, nri_tree_name(&w->t, ch[i]), w->ino[c], w->ref[c],
                                                (sqfs_u16)w->t.nodes[c].mode);
        }
        if (!err)
                err = sqfs_dir_writer_end(w->dirw);
        if (err)
                return sq_fail(w, err, "writing a directory listing");
        inode = sqfs_dir_writer_create_inode(w->dirw, n->nlink, 0xFFFFFFFF, parent_ino);
        if (!inode)
                return -ENOMEM;
        if (inode->base.type == SQFS_INODE_DIR)
                inode->data.dir.nlink = n->nlink;
        else
                inode->data.dir_ext.nlink = n->nlink;
        r = write_inode(w, inode, id);
        free(inode);
        return r;
}

/* The inode and directory tables, as the file header says. */
static int write_tables(sqw *w) {
        size_t n = w->t.n_nodes;
        uint32_t next = 0;
        int err, r = 0;

        w->ino = calloc(n, sizeof(*w->ino));
        w->ref = calloc(n, sizeof(*w->ref));
        if (!w->ino || !w->ref)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (w->t.nodes[i].inode == i && !S_ISDIR(w->t.nodes[i].mode))
                        w->ino[i] = ++next;
        for (size_t i = n; i-- > 0;)
                if (S_ISDIR(w->t.nodes[i].mode))
                        w->ino[i] = ++next;

        w->super.inode_table_start = w->out->size;
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (w->t.nodes[i].inode == i && !S_ISDIR(w->t.nodes[i].mode))
                        r = write_leaf(w, (uint32_t)i);
        for (size_t i = n; r >= 0 && i-- > 0;)
                if (S_ISDIR(w->t.nodes[i].mode))
                        r = write_directory(w, (uint32_t)i);
        if (r < 0)
                return r;
        w->super.inode_count = next;
        w->super.root_inode_ref = w->ref[0];
        if ((err = sqfs_meta_writer_flush(w->im)) || (err = sqfs_meta_writer_flush(w->dm)))
                return sq_fail(w, err, "writing the inode table");
        w->super.directory_table_start = w->out->size;
        err = sqfs_meta_write_write_to_file(w->dm);
        return err ? sq_fail(w, err, "writing the directory table") : 0;
}

static int setup(sqw *w) {
        const char *name = w->o->compressor ? w->o->compressor : "gzip";
        uint32_t bs = w->o->block_size ? w->o->block_size : SQFS_DEFAULT_BLOCK_SIZE;
        sqfs_block_processor_desc_t desc = {0};
        sqfs_compressor_config_t cfg;
        sqfs_u16 idx;
        int id = sqfs_compressor_id_from_name(name), err;

        if (id < 0 || !strcmp(name, "lzo")) {
                log_error("%s: the compressor \"%s\" is not one of gzip, xz, lzma, lz4, zstd", w->what,
                          name);
                return -EOPNOTSUPP;
        }
        if (bs < SQFS_MIN_BLOCK_SIZE || bs > SQFS_MAX_BLOCK_SIZE || (bs & (bs - 1))) {
                log_error("%s: a block size of %" PRIu32 " is no power of two from 4096 to 1048576", w->what,
                          bs);
                return -EINVAL;
        }
        err = sqfs_compressor_config_init(&cfg, (SQFS_COMPRESSOR)id, bs, 0);
        if (!err && w->o->level)
                cfg.level = w->o->level;
        if (!err)
                err = sqfs_compressor_create(&cfg, &w->cmp);
        if (err) {
                log_error("%s: cannot make a %s compressor at level %u: libsquashfs error %d", w->what, name,
                          w->o->level, err);
                return err == SQFS_ERROR_ALLOC         ? -ENOMEM
                       : err == SQFS_ERROR_UNSUPPORTED ? -EOPNOTSUPP
                                                       : -EINVAL;
        }
        cfg.flags |= SQFS_COMP_FLAG_UNCOMPRESS;
        if ((err = sqfs_compressor_create(&cfg, &w->uncmp)))
                return sq_fail(w, err, "making the decompressor that checks duplicates");

        if ((err = sqfs_super_init(&w->super, bs, (sqfs_u32)w->o->timestamp, (SQFS_COMPRESSOR)id)))
                return sq_fail(w, err, "making the superblock");
        w->super.flags |= SQFS_FLAG_NO_XATTRS;
        if ((err = sqfs_super_write(&w->super, &w->out->base)))
                return sq_fail(w, err, "writing the superblock");
        err = w->cmp->write_options(w->cmp, &w->out->base);
        if (err < 0)
                return sq_fail(w, err, "writing the compressor options");
        if (err > 0)
                w->super.flags |= SQFS_FLAG_COMPRESSOR_OPTIONS;

        w->blkwr = sqfs_block_writer_create(&w->out->base, NRI_SQUASHFS_PAD, 0);
        w->frags = sqfs_frag_table_create(0);
        w->ids = sqfs_id_table_create(0);
        w->im = sqfs_meta_writer_create(&w->out->base, w->cmp, 0);
        w->dm = sqfs_meta_writer_create(&w->out->base, w->cmp, SQFS_META_WRITER_KEEP_IN_MEMORY);
        w->dirw = w->dm ? sqfs_dir_writer_create(w->dm, SQFS_DIR_WRITER_CREATE_EXPORT_TABLE) : NULL;
        w->buf = malloc(READ_BUF);
        if (!w->blkwr || !w->frags || !w->ids || !w->im || !w->dm || !w->dirw || !w->buf)
                return -ENOMEM;
        if ((err = sqfs_id_table_id_to_index(w->ids, 0, &idx)))
                return sq_fail(w, err, "making the ID table");

        desc.size = sizeof(desc);
        desc.max_block_size = bs;
        desc.num_workers = w->o->workers ? w->o->workers : 1;
        desc.max_backlog = 10 * desc.num_workers;
        desc.cmp = w->cmp;
        desc.wr = w->blkwr;
        desc.tbl = w->frags;
        desc.file = &w->out->base;
        desc.uncmp = w->uncmp;
        err = sqfs_block_processor_create_ex(&desc, &w->proc);
        return err ? sq_fail(w, err, "starting the block processor") : 0;
}

static int finish(sqw *w) {
        static const char zeros[NRI_SQUASHFS_PAD];
        uint64_t used;
        int err, r;

        err = sqfs_block_processor_finish(w->proc);
        w->finished = true;
        if (err)
                return sq_fail(w, err, "compressing the file data");
        r = write_tables(w);
        if (r < 0)
                return r;
        if ((err = sqfs_frag_table_write(w->frags, &w->out->base, &w->super, w->cmp)))
                return sq_fail(w, err, "writing the fragment table");
        if ((err = sqfs_dir_writer_write_export_table(w->dirw, &w->out->base, w->cmp, w->ino[0], w->ref[0],
                                                      &w->super)))
                return sq_fail(w, err, "writing the export table");
        if ((err = sqfs_id_table_write(w->ids, &w->out->base, &w->super, w->cmp)))
                return sq_fail(w, err, "writing the ID table");
        w->super.bytes_used = w->out->size;
        /* Tails of files larger than a block are not fragments (file_data()),
         * as mksquashfs's superblock says by default; libsquashfs's fragment
         * table sets always-use-fragments. */
        w->super.flags &= ~SQFS_FLAG_ALWAYS_FRAGMENTS;
        if ((err = sqfs_super_write(&w->super, &w->out->base)))
                return sq_fail(w, err, "writing the superblock");
        used = (w->out->size + NRI_SQUASHFS_PAD - 1) / NRI_SQUASHFS_PAD * NRI_SQUASHFS_PAD;
        if (used > w->out->size &&
            (err = w->out->base.write_at(&w->out->base, w->out->size, zeros, (size_t)(used - w->out->size))))
                return sq_fail(w, err, "padding the file system");
        /* What deduplication truncated away may still be there beyond. */
        if (w->out->high > used) {
                r = nri_range_clear(w->out->fd, w->out->offset + used, w->out->high - used);
                if (r < 0)
                        return sq_fail(w, SQFS_ERROR_IO, "clearing what follows the file system");
        }
        return 0;
}

static void sqw_free(sqw *w) {
        /* libsquashfs 1.2 frees the blocks still queued in a block processor
         * only when they are processed: after a failure, let them be. */
        if (w->proc && !w->finished)
                (void)sqfs_block_processor_sync(w->proc);
        sqfs_destroy(w->proc); /* before what it uses */
        sqfs_destroy(w->dirw);
        sqfs_destroy(w->dm);
        sqfs_destroy(w->im);
        sqfs_destroy(w->ids);
        sqfs_destroy(w->frags);
        sqfs_destroy(w->blkwr);
        sqfs_destroy(w->uncmp);
        sqfs_destroy(w->cmp);
        for (size_t i = 0; i < w->n_chunks; i++) {
                for (size_t j = 0; j < SLOTS_PER_CHUNK; j++)
                        free(w->chunks[i][j]);
                free(w->chunks[i]);
        }
        free(w->chunks);
        free(w->slot);
        free(w->ino);
        free(w->ref);
        free(w->buf);
        nri_tree_free(&w->t);
}

/* Writes the file system into the sink. */
static int build(sink *out, const nri_plan *plan, const nri_squashfs_options *o) {
        sqw w = {.o = o, .what = o->what ? o->what : "squashfs", .out = out};
        int r;

        if (o->timestamp < 0 || o->timestamp > UINT32_MAX) {
                log_error("%s: the timestamp %" PRId64 " is outside SquashFS's 0 to 2^32-1", w.what,
                          o->timestamp);
                return -EINVAL;
        }
        r = setup(&w);
        if (r >= 0)
                r = nri_tree_collect(plan, w.what, file_data, &w, &w.t);
        for (size_t i = 0; r >= 0 && i < w.t.n_nodes; i++)
                if (S_ISREG(w.t.nodes[i].mode) && w.t.nodes[i].inode == i && (i >= w.slot_cap || !w.slot[i]))
                        r = sq_fail(&w, SQFS_ERROR_INTERNAL, "finding a file's inode");
        if (r >= 0)
                r = finish(&w);
        if (r == -ENOMEM)
                log_error("%s: out of memory", w.what);
        sqw_free(&w);
        return r;
}

/* ---- the entry points ---- */

int nri_squashfs_write(const char *image_path, uint64_t offset, uint64_t size, const nri_squashfs_options *o,
                       const nri_plan *plan, uint64_t *ret_used) {
        const char *what = o->what ? o->what : "squashfs";
        sink s;
        int fd, r;

        r = nri_range_open(image_path, offset, size, what, &fd);
        if (r < 0)
                return r;
        r = nri_range_clear(fd, offset, size);
        if (r < 0)
                log_error("%s: %s: cannot clear %" PRIu64 "+%" PRIu64 ": %s", what, image_path, offset, size,
                          strerror(-r));
        sink_init(&s, fd, offset, size);
        if (r >= 0)
                r = build(&s, plan, o);
        if (r >= 0 && ret_used)
                *ret_used = (s.size + NRI_SQUASHFS_PAD - 1) / NRI_SQUASHFS_PAD * NRI_SQUASHFS_PAD;
        if (close(fd) < 0 && r >= 0) {
                r = -errno;
                log_error_errno(r, "%s: %s: %m", what, image_path);
        }
        return r;
}

struct nri_squashfs_image {
        int fd;
        uint64_t size;
        const char *what;
};

int nri_squashfs_build(const nri_plan *plan, const nri_squashfs_options *o, const char *tmp_dir,
                       nri_squashfs_image **ret) {
        const char *what = o->what ? o->what : "squashfs";
        nri_squashfs_image *img;
        sink s;
        int fd, r;

        fd = open(tmp_dir, O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);
        if (fd < 0) {
                r = -errno;
                log_error_errno(r, "%s: cannot make a temporary file in %s: %m", what, tmp_dir);
                return r;
        }
        sink_init(&s, fd, 0, UINT64_MAX / 2);
        r = build(&s, plan, o);
        if (r >= 0 && !(img = malloc(sizeof(*img))))
                r = -ENOMEM;
        if (r < 0) {
                close(fd);
                return r;
        }
        *img = (nri_squashfs_image){.fd = fd,
                                    .size = (s.size + NRI_SQUASHFS_PAD - 1) / NRI_SQUASHFS_PAD *
                                            NRI_SQUASHFS_PAD,
                                    .what = what};
        *ret = img;
        return 0;
}

uint64_t nri_squashfs_image_size(const nri_squashfs_image *img) {
        return img->size;
}

int nri_squashfs_image_place(const nri_squashfs_image *img, const char *image_path, uint64_t offset,
                             uint64_t size) {
        int fd, r;

        if (size < img->size) {
                log_error("%s: the file system has %" PRIu64 " bytes, the partition %" PRIu64 "", img->what,
                          img->size, size);
                return -ENOSPC;
        }
        r = nri_range_open(image_path, offset, size, img->what, &fd);
        if (r < 0)
                return r;
        r = nri_range_clear(fd, offset, size);
        if (r >= 0)
                r = nri_copy_data(img->fd, 0, fd, offset, img->size);
        if (r < 0)
                log_error("%s: %s: cannot copy the file system to %" PRIu64 ": %s", img->what, image_path,
                          offset, strerror(-r));
        if (close(fd) < 0 && r >= 0) {
                r = -errno;
                log_error_errno(r, "%s: %s: %m", img->what, image_path);
        }
        return r;
}

void nri_squashfs_image_free(nri_squashfs_image *img) {
        if (!img)
                return;
        close(img->fd);
        free(img);
}

/* ---- the file-system table's writer (fs.h) ---- */

static void squashfs_options(const nri_fs_part *fp, nri_squashfs_options *ret) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);

        /* mksquashfs's defaults, as systemd-repart 252 runs it; the threads
         * change the time, never the bytes (squashfs.h). */
        *ret = (nri_squashfs_options){
            .timestamp = fp->plan->mtime,
            .workers = cpus > 0 ? (unsigned)(cpus < 8 ? cpus : 8) : 1,
            .what = fp->what,
        };
}

/* Minimize=best (and guess): its size is known only once compressed, so the
 * file system is built aside, in the output directory (where placing it can
 * share blocks), and kept for write_fs(). */
static int best_size(nri_fs_part *fp, uint64_t *ret) {
        nri_squashfs_options o;
        nri_squashfs_image *img = NULL;
        int r;

        squashfs_options(fp, &o);
        r = nri_squashfs_build(fp->plan, &o, fp->tmp_dir, &img);
        if (r < 0)
                return r;
        fp->state = img;
        *ret = nri_squashfs_image_size(img);
        return 0;
}

static int write_fs(const nri_fs_part *fp) {
        nri_squashfs_options o;

        if (fp->state)
                return nri_squashfs_image_place(fp->state, fp->image, fp->offset, fp->size);
        squashfs_options(fp, &o);
        return nri_squashfs_write(fp->image, fp->offset, fp->size, &o, fp->plan, NULL);
}

static void done(nri_fs_part *fp) {
        nri_squashfs_image_free(fp->state);
        fp->state = NULL;
}

const nri_fs_writer nri_squashfs_fs = {
    .best_size = best_size,
    .write = write_fs,
    .done = done,
};
