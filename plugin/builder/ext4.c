/* ext4.c: an ext4 file system written through libext2fs (see ext4.h).
 *
 * The file system is made as mke2fs 1.47 makes it (misc/mke2fs.c: the same
 * library calls in the same order, with the parameters systemd-repart 252's
 * mkfs.ext4 command line and Debian's mke2fs.conf give), then filled the way
 * misc/create_inode.c fills one, with three differences:
 *   - file data does not go through ext2fs_file_write() block by block: each
 *     run of non-zero blocks gets a contiguous range from ext2fs_new_range()
 *     and is mapped with one extent (up to four put in the inode directly);
 *     the bytes are read here to find their blocks of zeros (left as
 *     holes) and written with pwrite() on our own descriptor of the image;
 *   - names are appended to the last block of their directory instead of
 *     ext2fs_link()'s scan of every block (the walk never makes a name
 *     twice, so the scan would only cost time: it made large directories
 *     quadratic), and the last block of each directory being filled stays
 *     in a small cache (DIR_CACHE blocks) and is written once when evicted
 *     or at the end, not read, checksummed and written again per name;
 *   - times, UUIDs and the hash seed come from the options, never from the
 *     clock or a random source.
 * The block allocator's goal moves forward from the start of the file
 * system, so content is packed in the order of the walk. */
#include "ext4-internal.h"
#include "fs.h"
#include "nix-repart-image/macro.h"
#include "nix-repart-image/utf8.h"
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

/* ---- labels ---- */

int nri_ext4_mangle_label(const char *label, char **ret) {
        size_t len;
        char *s;
        int r;

        r = nri_utf8_prefix(label, NRI_EXT4_LABEL_MAX, &len);
        if (r < 0)
                return r;
        s = strndup(label, len);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* ---- inodes ---- */

int ext4_log_ext2(const writer *w, errcode_t err, const char *call, const char *path) {
        if (err == EXT2_ET_BLOCK_ALLOC_FAIL || err == EXT2_ET_INODE_ALLOC_FAIL ||
            err == EXT2_ET_DIR_NO_SPACE || err == ENOSPC) {
                log_error("%s: no room for %s: the file system of %" PRIu64 " bytes is full (%s: %s)",
                          w->what, path, (uint64_t)ext2fs_blocks_count(w->fs->super) * BLOCK, call,
                          error_message(err));
                return -ENOSPC;
        }
        log_error("%s: %s: %s failed: %s", w->what, path, call, error_message(err));
        return err > 0 && err < 4096 ? -(int)err : -EIO;
}

node *ext4_node(writer *w, size_t id) {
        if (id >= w->n_nodes) {
                size_t n = w->n_nodes ? w->n_nodes : 1024;
                node *p;

                while (n <= id)
                        n *= 2;
                p = realloc(w->nodes, n * sizeof(*p));
                if (!p)
                        return NULL;
                memset(p + w->n_nodes, 0, (n - w->n_nodes) * sizeof(*p));
                w->nodes = p;
                w->n_nodes = n;
        }
        return &w->nodes[id];
}

static void set_times(const writer *w, struct ext2_inode_large *inode) {
        inode->i_atime = inode->i_ctime = inode->i_mtime = inode->i_crtime = w->t_lo;
        inode->i_atime_extra = inode->i_ctime_extra = inode->i_mtime_extra = inode->i_crtime_extra =
            w->t_extra;
}

/* A new inode near its parent, counted as used, with the fields every
 * inode we make shares. */
int ext4_new_inode(writer *w, const nri_entry *e, uint16_t mode, ext2_ino_t *ret,
                   struct ext2_inode_large *inode) {
        const node *parent = &w->nodes[e->parent];
        errcode_t err;

        err = ext2fs_new_inode(w->fs, parent->ino, mode, NULL, ret);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_new_inode", e->target);
        ext2fs_inode_alloc_stats2(w->fs, *ret, +1, LINUX_S_ISDIR(mode));

        memset(inode, 0, sizeof(*inode));
        inode->i_mode = mode;
        inode->i_links_count = 1;
        inode->i_extra_isize = sizeof(struct ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE;
        set_times(w, inode);
        return 0;
}

int ext4_write_inode(writer *w, ext2_ino_t ino, struct ext2_inode_large *inode, const char *path) {
        errcode_t err = ext2fs_write_inode_full(w->fs, ino, (struct ext2_inode *)inode, sizeof(*inode));

        return err ? ext4_log_ext2(w, err, "ext2fs_write_inode_full", path) : 0;
}

/* ---- the visitor ---- */

static int on_directory(void *ctx, const nri_entry *e) {
        writer *w = ctx;
        struct ext2_inode_large inode;
        ext2_ino_t ino, parent = w->nodes[e->parent].ino;
        struct dir_cache *c;
        char *block = NULL;
        node *n;
        blk64_t blk;
        errcode_t err;
        int r;

        n = ext4_node(w, e->id);
        if (!n)
                return -ENOMEM;
        r = ext4_new_inode(w, e, LINUX_S_IFDIR | (e->mode & 07777), &ino, &inode);
        if (r < 0)
                return r;
        inode.i_links_count = 2;
        ext2fs_inode_size_set(w->fs, (struct ext2_inode *)&inode, BLOCK);
        r = ext4_map_one_block(w, ino, &inode, e->target, &blk);
        if (r < 0)
                return r;
        r = ext4_write_inode(w, ino, &inode, e->target);
        if (r < 0)
                return r;

        err = ext2fs_new_dir_block(w->fs, ino, parent, &block);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_new_dir_block", e->target);
        r = ext4_dc_get(w, blk, ino, false, e->target, &c);
        if (r == 0) {
                memcpy(c->buf, block, BLOCK);
                c->dirty = true;
        }
        ext2fs_free_mem(&block);
        if (r < 0)
                return r;

        n = &w->nodes[e->id];
        *n = (node){.ino = ino, .dir_blocks = 1, .last_pblk = blk};
        r = ext4_dir_add(w, e->parent, e->name, ino, EXT2_FT_DIR, e->target);
        if (r < 0)
                return r;
        return ext4_add_links(w, parent, true, e->target);
}

static int on_file(void *ctx, const nri_entry *e, int fd) {
        writer *w = ctx;
        struct ext2_inode_large inode;
        extent_map m;
        ext2_ino_t ino;
        errcode_t err;
        node *n;
        int r;

        n = ext4_node(w, e->id);
        if (!n)
                return -ENOMEM;
        r = ext4_new_inode(w, e, LINUX_S_IFREG | (e->mode & 07777), &ino, &inode);
        if (r < 0)
                return r;
        err = ext2fs_inode_size_set(w->fs, (struct ext2_inode *)&inode, e->size);
        if (err)
                return ext4_log_ext2(w, err, "ext2fs_inode_size_set", e->target);
        m = ext4_extent_map_new(w->fs, ino, &inode);
        if (e->size >= COPY_BUFFER) /* readahead's own window covers the rest */
                (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        if (w->o->dry_run)
                r = ext4_write_run(w, e, &m, &inode, 0, NULL, (e->size + BLOCK - 1) / BLOCK);
        else
                r = ext4_copy_data(w, e, fd, &m, &inode);
        if (r >= 0) {
                err = ext4_extent_finish(&m);
                if (err)
                        r = ext4_log_ext2(w, err, "ext2fs_extent_insert", e->target);
        }
        ext4_extent_map_free(&m);
        if (r < 0)
                return r;
        r = ext4_write_inode(w, ino, &inode, e->target);
        if (r < 0)
                return r;
        w->nodes[e->id].ino = ino;
        r = ext4_dir_add(w, e->parent, e->name, ino, EXT2_FT_REG_FILE, e->target);
        if (r < 0)
                return r;

        w->files++;
        w->bytes += e->size;
        if (w->o->progress)
                w->o->progress(w->o->progress_ctx, w->files, w->bytes);
        /* Its bytes read: still the file it was? */
        return nri_source_unchanged(fd, e->st)
                   ? 0
                   : log_fs_errno(w, -ESTALE, "%s: changed while being read", e->source);
}

static int on_symlink(void *ctx, const nri_entry *e) {
        writer *w = ctx;
        struct ext2_inode_large inode;
        size_t len = strlen(e->link_target);
        ext2_ino_t ino;
        node *n;
        int r;

        if (len >= BLOCK) {
                log_error("%s: %s: symlink target of %zu bytes, ext4 holds at most %d", w->what, e->target,
                          len, BLOCK - 1);
                return -ENAMETOOLONG;
        }
        n = ext4_node(w, e->id);
        if (!n)
                return -ENOMEM;
        r = ext4_new_inode(w, e, LINUX_S_IFLNK | (e->mode & 07777), &ino, &inode);
        if (r < 0)
                return r;
        ext2fs_inode_size_set(w->fs, (struct ext2_inode *)&inode, len);
        if (len < sizeof(inode.i_block)) {
                /* A fast symlink: the target in i_block, no extents. */
                memcpy(inode.i_block, e->link_target, len);
        } else {
                blk64_t blk;

                r = ext4_map_one_block(w, ino, &inode, e->target, &blk);
                if (r < 0)
                        return r;
                memset(w->dirbuf, 0, BLOCK);
                memcpy(w->dirbuf, e->link_target, len);
                r = nri_pwrite_all(w->fd, w->dirbuf, BLOCK, w->offset + blk * BLOCK);
                if (r < 0)
                        return log_fs_errno(w, r, "%s: cannot write %s", w->image, e->target);
        }
        r = ext4_write_inode(w, ino, &inode, e->target);
        if (r < 0)
                return r;
        w->nodes[e->id].ino = ino;
        return ext4_dir_add(w, e->parent, e->name, ino, EXT2_FT_SYMLINK, e->target);
}

static int on_hardlink(void *ctx, const nri_entry *e) {
        writer *w = ctx;
        ext2_ino_t ino = w->nodes[e->hardlink_id].ino;
        node *n;
        int r;

        n = ext4_node(w, e->id);
        if (!n)
                return -ENOMEM;
        n->ino = ino;
        r = ext4_dir_add(w, e->parent, e->name, ino, EXT2_FT_REG_FILE, e->target);
        if (r < 0)
                return r;
        return ext4_add_links(w, ino, false, e->target);
}

/* The writer's own: released however nri_ext4_write() returns. */
static void writer_done(writer *w) {
        if (w->fs)
                ext2fs_free(w->fs);
        if (w->fd >= 0)
                close(w->fd);
        free(w->buf);
        free(w->dirbuf);
        free(w->dcbuf);
        free(w->nodes);
}

/* The options' timestamp as ext4 stores it: seconds = (int32_t)lo +
 * (epoch << 32). */
static int set_timestamp(writer *w, int64_t t) {
        if (t < 0 || t > TIME_MAX) {
                log_error("%s: timestamp %" PRId64 " is out of ext4's range 0…%" PRId64 "", w->what, t,
                          TIME_MAX);
                return -EINVAL;
        }
        w->t_lo = (uint32_t)t;
        w->t_extra = (uint32_t)((t - (int32_t)w->t_lo) >> 32) & EXT4_EPOCH_MASK;
        return 0;
}

/* The image, open on w->fd and large enough; the writer's buffers; the
 * range cleared. */
static int open_range(writer *w, uint64_t size) {
        int r;

        r = nri_range_open(w->image, w->offset, size, w->what, &w->fd);
        if (r < 0)
                return r;
        w->buf = malloc(COPY_BUFFER);
        w->dirbuf = malloc(BLOCK);
        w->dcbuf = malloc((size_t)DIR_CACHE * BLOCK);
        if (!w->buf || !w->dirbuf || !w->dcbuf || !ext4_node(w, 0))
                return -ENOMEM;
        for (size_t i = 0; i < DIR_CACHE; i++)
                w->dc[i].buf = w->dcbuf + i * BLOCK;
        r = nri_range_clear(w->fd, w->offset, size);
        if (r < 0)
                return log_fs_errno(w, r, "%s: cannot clear bytes %" PRIu64 "+%" PRIu64, w->image, w->offset,
                                    size);
        return 0;
}

/* The file system as mke2fs makes it, before any content: tables, label,
 * times, root, lost+found, journal. */
static int make_fs(writer *w, blk64_t blocks, const char *label) {
        struct ext2fs_journal_params jp;
        blk64_t overhead;
        const char *call;
        errcode_t err;
        int64_t t = w->o->timestamp;
        struct ext2_super_block *sb;

        err = ext4_fs_create(w->image, w->offset, blocks, w->o, &w->fs, &overhead, &jp, &call);
        if (err) {
                log_error("%s: cannot make a file system of %" PRIu64 " bytes in %s: %s failed: %s", w->what,
                          (uint64_t)(blocks * BLOCK), w->image, call, error_message(err));
                return err == EXT2_ET_TOOSMALL ? -ENOSPC : -EIO;
        }
        /* Nothing from the clock: libext2fs stamps what it makes with
         * fs->now, and reads 0 as "now", so the timestamp 0 is given with a
         * bit above the 32 the fields keep. */
        w->fs->now = t ? (time_t)t : (time_t)1 << 32;
        sb = w->fs->super;
        memset(sb->s_volume_name, 0, sizeof(sb->s_volume_name));
        if (label)
                memcpy(sb->s_volume_name, label, strlen(label));
        sb->s_mkfs_time = sb->s_wtime = sb->s_mtime = sb->s_lastcheck = w->t_lo;
        sb->s_mkfs_time_hi = sb->s_wtime_hi = sb->s_mtime_hi = sb->s_lastcheck_hi = (uint8_t)(t >> 32);
        ext2fs_mark_super_dirty(w->fs);
        return ext4_make_base(w, &jp, overhead);
}

/* The ids the walk gives what the file system has before it: the root (0),
 * and what the plan puts at /lost+found goes into the directory mke2fs
 * makes (ids from 1, plan.h), as `mke2fs -d` merges a source's lost+found
 * into it. */
static int adopt_existing(writer *w, const nri_plan *plan) {
        w->nodes[0] = (node){.ino = EXT2_ROOT_INO};
        for (size_t i = 0; plan->existing && plan->existing[i]; i++) {
                if (strcmp(plan->existing[i], "/lost+found") != 0 || !ext4_node(w, i + 1)) {
                        log_error("%s: %s is not a directory ext4 makes", w->what, plan->existing[i]);
                        return -EINVAL;
                }
                w->nodes[i + 1] = (node){.ino = w->lost_found};
        }
        return 0;
}

/* The plan's content, walked once. */
static int fill(writer *w, const nri_plan *plan) {
        nri_visitor v = {
            .ctx = w,
            .directory = on_directory,
            .file = on_file,
            .symlink = on_symlink,
            .hardlink = on_hardlink,
        };
        int r;

        w->goal = w->fs->super->s_first_data_block;
        r = nri_plan_walk(plan, &v);
        if (r >= 0)
                r = ext4_dc_flush(w);
        if (r >= 0)
                r = ext4_fix_times(w);
        return r;
}

/* No fsync: the image is a build output, and Nix syncs no output (nor does
 * any other builder); a build that stops before its end leaves no output
 * at all (build.c renames the image last). */
static int close_fs(writer *w) {
        errcode_t err;

        if (w->o->free)
                *w->o->free = (struct nri_ext4_free){.blocks = ext2fs_free_blocks_count(w->fs->super),
                                                     .inodes = w->fs->super->s_free_inodes_count};
        err = ext2fs_close2(w->fs, EXT2_FLAG_FLUSH_NO_SYNC);

        if (err) {
                log_error("%s: %s: ext2fs_close2 failed: %s", w->what, w->image, error_message(err));
                return -EIO;
        }
        w->fs = NULL; /* freed */
        return 0;
}

int nri_ext4_write(const char *image_path, uint64_t offset, uint64_t size, const nri_ext4_options *o,
                   const nri_plan *plan) {
        _cleanup_(writer_done) writer w = {
            .o = o,
            .what = o->what ? o->what : "ext4",
            .image = image_path,
            .fd = -1,
            .offset = offset,
        };
        _cleanup_free_ char *label = NULL;
        blk64_t blocks = size / BLOCK;
        int r;

        initialize_ext2_error_table();
        r = set_timestamp(&w, o->timestamp);
        if (r < 0)
                return r;
        if (o->label && nri_ext4_mangle_label(o->label, &label) < 0) {
                log_error("%s: label \"%s\" is not valid UTF-8", w.what, o->label);
                return -EINVAL;
        }
        r = open_range(&w, blocks * BLOCK);
        if (r >= 0)
                r = make_fs(&w, blocks, label);
        if (r >= 0)
                r = adopt_existing(&w, plan);
        if (r >= 0)
                r = fill(&w, plan);
        if (r >= 0)
                r = close_fs(&w);
        return r;
}

/* ---- the file-system table's writer (fs.h) ---- */

static int guess_size(const nri_fs_part *fp, const nri_plan_stats *st, uint64_t *ret) {
        (void)fp;
        return nri_ext4_min_size(st, ret);
}

/* The options the partition's file system is written with. */
static nri_ext4_options options_of(const nri_fs_part *fp) {
        const nri_partition *p = fp->p;
        nri_ext4_options o = {
            .uuid = p->fs_uuid,
            .label = p->label,
            .timestamp = fp->plan->mtime,
            .what = fp->what,
        };

        /* systemd-repart leaves the directory hash seed to mke2fs, which
         * draws it at random; ours is derived so the image is reproducible. */
        nri_uuid_derive(&p->fs_uuid, "directory-hash-seed", strlen("directory-hash-seed"), &o.hash_seed);
        return o;
}

static int best_size(nri_fs_part *fp, uint64_t *ret) {
        nri_ext4_options o = options_of(fp);
        nri_plan_stats st;
        int r;

        r = nri_plan_measure(fp->plan, &st);
        if (r < 0)
                return log_error_errno(r, "%s: cannot read its content: %m", fp->what);
        fp->total = st;
        fp->has_total = true;
        return nri_ext4_best_size(fp->plan, &st, &o, ret);
}

static int write_fs(const nri_fs_part *fp) {
        nri_ext4_options o = options_of(fp);
        nri_fs_progress_state ps = {.fp = fp};

        if (fp->verbose) {
                o.progress = nri_fs_progress;
                o.progress_ctx = &ps;
                nri_fs_progress(&ps, 0, 0); /* the clock starts */
        }

        return nri_ext4_write(fp->image, fp->offset, fp->size, &o, fp->plan);
}

const nri_fs_writer nri_ext4_fs = {
    .guess_size = guess_size,
    .best_size = best_size,
    .write = write_fs,
};
