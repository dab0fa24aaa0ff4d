/* ext4.c: an ext4 file system written through libext2fs (see ext4.h).
 *
 * The file system is made as mke2fs 1.47 makes it (misc/mke2fs.c: the same
 * library calls in the same order, with the parameters systemd-repart 252's
 * mkfs.ext4 command line and Debian's mke2fs.conf give), then filled the way
 * misc/create_inode.c fills one, with three differences:
 *   - file data does not go through ext2fs_file_write() block by block: each
 *     run of non-zero blocks gets a contiguous range from ext2fs_new_range()
 *     and is mapped with one extent (up to four put in the inode directly);
 *     the bytes go there on our own descriptor of the image: a file
 *     measuring found no block of zeros in is copied by the kernel
 *     (copy_file_range()), on a worker thread while the walk goes on
 *     (worker.h), the others are read here to find their zeros and written
 *     with pwrite();
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
#include "ext4.h"
#include "fs.h"
#include "log.h"
#include "nix-repart-image/utf8.h"
#include "worker.h"

#include <errno.h>
#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>
#include <ext2fs/ext3_extents.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK NRI_EXT4_BLOCK_SIZE
#define INODE_RATIO 16384 /* mke2fs.conf [defaults] inode_ratio */
#define INODE_SIZE 256    /* mkfs.ext4 -I 256 */
#define FLEX_BG_LOG 4     /* mke2fs's default flex_bg_size 16 */
#define COPY_BUFFER (UINT64_C(2) * 1024 * 1024)
#define MAX_EXTENT_LEN 32768 /* EXT_INIT_MAX_LEN */
#define DIR_CACHE 64         /* directory blocks kept in memory (256 KiB) */
/* ext4's timestamp range with extra fields: 32 bits and 2 epoch bits. */
#define TIME_MAX ((INT64_C(1) << 34) - 1)

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

/* ---- making the file system: mke2fs's steps ---- */

/* What PRS() in mke2fs.c puts into fs_param for systemd-repart 252's
 * `mkfs.ext4 -I 256 -O has_journal -m 0 -T default` with Debian's
 * mke2fs.conf: base_features plus the ext4 features, default mount options
 * acl,user_xattr, 4096-byte blocks, inode_ratio 16384, flex_bg size 16. */
static void fs_params(struct ext2_super_block *p, blk64_t blocks) {
        uint64_t inodes = blocks * BLOCK / INODE_RATIO;

        memset(p, 0, sizeof(*p));
        p->s_rev_level = EXT2_DYNAMIC_REV;
        p->s_log_block_size = 2; /* 1024 << 2 */
        ext2fs_set_feature_sparse_super(p);
        ext2fs_set_feature_large_file(p);
        ext2fs_set_feature_filetype(p);
        ext2fs_set_feature_resize_inode(p);
        ext2fs_set_feature_dir_index(p);
        ext2fs_set_feature_xattr(p);
        ext2fs_set_feature_journal(p);
        ext2fs_set_feature_extents(p);
        ext2fs_set_feature_huge_file(p);
        ext2fs_set_feature_flex_bg(p);
        ext2fs_set_feature_metadata_csum(p);
        ext2fs_set_feature_64bit(p);
        ext2fs_set_feature_dir_nlink(p);
        ext2fs_set_feature_extra_isize(p);
        if (blocks > UINT32_MAX) /* as mke2fs: no resize inode past 2^32 blocks */
                ext2fs_clear_feature_resize_inode(p);
        p->s_default_mount_opts = EXT2_DEFM_XATTR_USER | EXT2_DEFM_ACL;
        p->s_log_groups_per_flex = FLEX_BG_LOG;
        p->s_inode_size = INODE_SIZE;
        p->s_desc_size = EXT2_MIN_DESC_SIZE_64BIT;
        p->s_inodes_count = inodes > UINT32_MAX ? UINT32_MAX : (uint32_t)inodes;
        ext2fs_blocks_count_set(p, blocks);
        ext2fs_r_blocks_count_set(p, 0); /* -m 0 */
}

/* A new file system's superblock and group tables, in memory: mke2fs's
 * main() up to the overhead count.  *ret_overhead is the blocks the tables
 * take, *ret_journal the journal's size (0: too small for one). */
static errcode_t fs_create(const char *name, uint64_t offset, blk64_t blocks, const nri_ext4_options *o,
                           ext2_filsys *ret, blk64_t *ret_overhead,
                           struct ext2fs_journal_params *ret_journal, const char **ret_call) {
        struct ext2_super_block param;
        ext2_filsys fs = NULL;
        blk64_t overhead;
        errcode_t err;
        char opt[64];

        fs_params(&param, blocks);
        *ret_call = "ext2fs_initialize";
        err = ext2fs_initialize(name, EXT2_FLAG_64BITS, &param, unix_io_manager, &fs);
        if (err)
                return err;
        if (offset) {
                snprintf(opt, sizeof(opt), "offset=%" PRIu64, offset);
                *ret_call = "io_channel_set_options";
                err = io_channel_set_options(fs->io, opt);
                if (err)
                        goto fail;
        }

        fs->super->s_max_mnt_count = -1; /* enable_periodic_fsck = 0 */
        fs->super->s_def_hash_version = EXT2_HASH_HALF_MD4;
        fs->super->s_checksum_type = EXT2_CRC32C_CHKSUM;
        fs->super->s_kbytes_written = 0; /* would count our writes: not part of the content */
        /* Before the tables: their checksums are seeded from the UUID. */
        if (o) {
                memcpy(fs->super->s_uuid, o->uuid.b, sizeof(fs->super->s_uuid));
                memcpy(fs->super->s_hash_seed, o->hash_seed.b, sizeof(fs->super->s_hash_seed));
        }
        ext2fs_init_csum_seed(fs);

        *ret_call = "ext2fs_allocate_tables";
        err = ext2fs_allocate_tables(fs);
        if (err)
                goto fail;
        *ret_call = "ext2fs_convert_subcluster_bitmap";
        err = ext2fs_convert_subcluster_bitmap(fs, &fs->block_map);
        if (err)
                goto fail;
        *ret_call = "ext2fs_count_used_clusters";
        err = ext2fs_count_used_clusters(fs, fs->super->s_first_data_block,
                                         ext2fs_blocks_count(fs->super) - 1, &overhead);
        if (err)
                goto fail;
        /* mke2fs: "Filesystem too small for a journal" leaves the journal out. */
        if (ext2fs_get_journal_params(ret_journal, fs) != 0) {
                memset(ret_journal, 0, sizeof(*ret_journal));
                ext2fs_clear_feature_journal(fs->super);
        }
        *ret_overhead = overhead;
        *ret = fs;
        return 0;
fail:
        ext2fs_free(fs);
        return err;
}

/* ---- the writer ---- */

/* The worker's side of copies (see worker.h): it alone uses this while the
 * walk goes on. */
typedef struct copier {
        int fd; /* the image */
        const char *image;
        const char *what;
        bool copy_file_range; /* false once the kernel refused it */
        char *buf;            /* COPY_BUFFER bytes, where it did */
} copier;

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
        char *cbuf;   /* the same, for the copier's */
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
        copier copier;      /* the worker's, once it runs */
        nri_worker *worker; /* NULL: copies are made in the walk */
        nri_job last_copy;  /* the current file's last copy, not queued yet */
        bool has_last_copy;
} writer;

static int log_ext2(const writer *w, errcode_t err, const char *call, const char *path) {
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

/* About the file system being written (w->what, "partition root"), with
 * the errno's text (log.h). */
#define log_fs_errno(w, r, fmt, ...) log_error_errno((r), "%s: " fmt ": %m", (w)->what, ##__VA_ARGS__)

static node *node_at(writer *w, size_t id) {
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

static int pwrite_full(int fd, const char *p, size_t n, uint64_t off) {
        while (n > 0) {
                ssize_t k = pwrite(fd, p, n, (off_t)off);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= k;
                off += k;
        }
        return 0;
}

/* A new inode near its parent, counted as used, with the fields every
 * inode we make shares. */
static int new_inode(writer *w, const nri_entry *e, uint16_t mode, ext2_ino_t *ret,
                     struct ext2_inode_large *inode) {
        const node *parent = &w->nodes[e->parent];
        errcode_t err;

        err = ext2fs_new_inode(w->fs, parent->ino, mode, NULL, ret);
        if (err)
                return log_ext2(w, err, "ext2fs_new_inode", e->target);
        ext2fs_inode_alloc_stats2(w->fs, *ret, +1, LINUX_S_ISDIR(mode));

        memset(inode, 0, sizeof(*inode));
        inode->i_mode = mode;
        inode->i_links_count = 1;
        inode->i_extra_isize = sizeof(struct ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE;
        set_times(w, inode);
        return 0;
}

static int write_inode(writer *w, ext2_ino_t ino, struct ext2_inode_large *inode, const char *path) {
        errcode_t err = ext2fs_write_inode_full(w->fs, ino, (struct ext2_inode *)inode, sizeof(*inode));

        return err ? log_ext2(w, err, "ext2fs_write_inode_full", path) : 0;
}

/* Maps the extents of a new inode in order.  Up to INODE_EXTENTS of them
 * fit in the inode itself (most files have one): those are kept here and
 * put in the inode by extent_finish(), as libext2fs would put them, without
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

static extent_map extent_map_new(ext2_filsys fs, ext2_ino_t ino, struct ext2_inode_large *inode) {
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
static errcode_t extent_finish(extent_map *m) {
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

static void extent_map_free(extent_map *m) {
        if (m->h)
                ext2fs_extent_free(m->h);
        m->h = NULL;
}

/* Allocates the next block and maps it as the inode's only extent (block 0):
 * a directory's first block, a long symlink's target. */
static int map_one_block(writer *w, ext2_ino_t ino, struct ext2_inode_large *inode, const char *path,
                         blk64_t *ret) {
        extent_map m = extent_map_new(w->fs, ino, inode);
        blk64_t blk;
        errcode_t err;

        err = ext2fs_new_block2(w->fs, w->goal, NULL, &blk);
        if (err)
                return log_ext2(w, err, "ext2fs_new_block2", path);
        ext2fs_block_alloc_stats2(w->fs, blk, +1);
        w->goal = blk + 1;
        ext2fs_iblk_set(w->fs, (struct ext2_inode *)inode, 1);
        m.cur = (struct ext2fs_extent){.e_lblk = 0, .e_pblk = blk, .e_len = 1};
        err = extent_finish(&m);
        extent_map_free(&m);
        if (err)
                return log_ext2(w, err, "ext2fs_extent_insert", path);
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

/* ---- copies, by the worker ---- */

/* A job: job->length bytes of the source at job->offset to the image at
 * job->to, in the kernel (copy_file_range()), or, where it cannot (another
 * file system on an older kernel, a seccomp filter), through the buffer. */
static int copy_job(void *ctx, const nri_job *job) {
        copier *c = ctx;
        uint64_t src_off = job->offset, dst_off = job->to, n = job->length;

        while (n > 0) {
                size_t chunk = n < COPY_BUFFER ? n : COPY_BUFFER;
                ssize_t k;

                if (c->copy_file_range) {
                        loff_t in = (loff_t)src_off, out = (loff_t)dst_off;

                        k = copy_file_range(job->fd, &in, c->fd, &out, n < SSIZE_MAX ? n : SSIZE_MAX, 0);
                        if (k < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP ||
                                      errno == ENOSYS || errno == EPERM)) {
                                c->copy_file_range = false;
                                continue;
                        }
                } else {
                        k = pread(job->fd, c->buf, chunk, (off_t)src_off);
                        if (k > 0) {
                                int r = pwrite_full(c->fd, c->buf, (size_t)k, dst_off);

                                if (r < 0) {
                                        log_error_errno(r, "%s: %s: cannot write %s into it: %m", c->what,
                                                        c->image, job->source);
                                        return r;
                                }
                        }
                }
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        int r = -errno;

                        log_error_errno(r, "%s: %s: cannot copy into %s: %m", c->what, job->source,
                                        c->image);
                        return r;
                }
                if (k == 0) {
                        log_error("%s: %s: shorter than it was, changed while being read", c->what,
                                  job->source);
                        return -ESTALE;
                }
                src_off += k;
                dst_off += k;
                n -= k;
        }
        if (job->verify && !nri_source_unchanged(job->fd, &job->verify_st)) {
                log_error("%s: %s: changed while being read", c->what, job->source);
                return -ESTALE;
        }
        return 0;
}

/* Copies n bytes of the file at src_off to the image at dst_off: done here
 * where there is no worker; else queued, on a duplicate of fd, or, for a
 * file's last range, kept in w->last_copy for on_file() to give the worker
 * the walk's own descriptor once nothing else can fail. */
static int copy_bytes(writer *w, const nri_entry *e, int fd, uint64_t src_off, uint64_t dst_off, uint64_t n,
                      bool last) {
        nri_job job = {.fd = fd, .source = e->source, .offset = src_off, .length = n, .to = dst_off};

        if (!w->worker)
                return copy_job(&w->copier, &job);
        if (last) {
                w->last_copy = job;
                w->has_last_copy = true;
                return 0;
        }
        return nri_worker_queue(w->worker, &job);
}

/* Writes `count` blocks at logical block `lblk` of a file: into as few
 * contiguous ranges as the free space allows, starting at the goal.  Their
 * bytes are `data`, or, when it is NULL, the file's own at the same place
 * (read from fd, up to its size: the rest of the last block stays zeros). */
static int write_run(writer *w, const nri_entry *e, int fd, extent_map *m, struct ext2_inode_large *inode,
                     blk64_t lblk, const char *data, blk64_t count) {
        while (count > 0) {
                blk64_t pblk, plen;
                errcode_t err;
                int r;

                err = ext2fs_new_range(w->fs, 0, w->goal, count, NULL, &pblk, &plen);
                if (err)
                        return log_ext2(w, err, "ext2fs_new_range", e->target);
                if (plen > count)
                        plen = count;
                ext2fs_block_alloc_stats_range(w->fs, pblk, plen, +1);
                if (data) {
                        r = pwrite_full(w->fd, data, plen * BLOCK, w->offset + pblk * BLOCK);
                        if (r < 0)
                                return log_fs_errno(w, r, "%s: cannot write %s", w->image, e->target);
                        data += plen * BLOCK;
                } else {
                        uint64_t from = lblk * BLOCK, n = plen * BLOCK;

                        r = copy_bytes(w, e, fd, from, w->offset + pblk * BLOCK,
                                       e->size - from < n ? e->size - from : n, plen == count);
                        if (r < 0)
                                return r;
                }
                err = extent_add(m, lblk, pblk, plen);
                if (!err)
                        err = ext2fs_iblk_add_blocks(w->fs, (struct ext2_inode *)inode, plen);
                if (err)
                        return log_ext2(w, err, "ext2fs_extent_insert", e->target);
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
                        r = write_run(w, e, fd, m, inode, pos / BLOCK + b, w->buf + b * BLOCK, run);
                        if (r < 0)
                                return r;
                        b += run;
                }
                pos += n;
        }
        return 0;
}

/* The file's data, reading only where SEEK_DATA says there is some. */
static int copy_data(writer *w, const nri_entry *e, int fd, extent_map *m, struct ext2_inode_large *inode) {
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

/* ---- directories ---- */

static int dc_write(writer *w, struct dir_cache *c) {
        errcode_t err;

        if (!c->dirty)
                return 0;
        err = ext2fs_write_dir_block4(w->fs, c->pblk, c->buf, 0, c->ino);
        if (err)
                return log_ext2(w, err, "ext2fs_write_dir_block4", "(directory block)");
        c->dirty = false;
        return 0;
}

static int dc_flush(writer *w) {
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
static int dc_get(writer *w, blk64_t pblk, ext2_ino_t ino, bool load, const char *path,
                  struct dir_cache **ret) {
        struct dir_cache *c = NULL;
        errcode_t err;
        int r;

        for (size_t i = 0; i < DIR_CACHE; i++) {
                if (w->dc[i].pblk == pblk) {
                        c = &w->dc[i];
                        goto found;
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
                        return log_ext2(w, err, "ext2fs_read_dir_block4", path);
        }
        c->pblk = pblk;
        c->ino = ino;
found:
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
                return log_ext2(w, err, "ext2fs_read_inode", path);
        d->dir_blocks = EXT2_I_SIZE(&inode) / BLOCK;
        err = ext2fs_bmap2(w->fs, d->ino, &inode, NULL, 0, d->dir_blocks - 1, NULL, &pblk);
        if (err)
                return log_ext2(w, err, "ext2fs_bmap2", path);
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
                return log_ext2(w, err, "ext2fs_new_block2", path);
        ext2fs_block_alloc_stats2(w->fs, blk, +1);

        r = dc_get(w, blk, d->ino, false, path, &c);
        if (r < 0)
                return r;
        c->dirty = true;
        memset(c->buf, 0, BLOCK);
        err = ext2fs_set_rec_len(w->fs, BLOCK - csum, (struct ext2_dir_entry *)c->buf);
        if (err)
                return log_ext2(w, err, "ext2fs_set_rec_len", path);
        if (csum)
                ext2fs_initialize_dirent_tail(w->fs, EXT2_DIRENT_TAIL(c->buf, BLOCK));

        err = ext2fs_read_inode_full(w->fs, d->ino, (struct ext2_inode *)&inode, sizeof(inode));
        if (err)
                return log_ext2(w, err, "ext2fs_read_inode_full", path);
        err = ext2fs_extent_open2(w->fs, d->ino, (struct ext2_inode *)&inode, &h);
        if (err)
                return log_ext2(w, err, "ext2fs_extent_open2", path);
        err = ext2fs_extent_set_bmap(h, d->dir_blocks, blk, 0);
        ext2fs_extent_free(h);
        if (err)
                return log_ext2(w, err, "ext2fs_extent_set_bmap", path);
        err =
            ext2fs_inode_size_set(w->fs, (struct ext2_inode *)&inode, (uint64_t)(d->dir_blocks + 1) * BLOCK);
        if (!err)
                err = ext2fs_iblk_add_blocks(w->fs, (struct ext2_inode *)&inode, 1);
        if (err)
                return log_ext2(w, err, "ext2fs_inode_size_set", path);
        r = write_inode(w, d->ino, &inode, path);
        if (r < 0)
                return r;
        d->dir_blocks++;
        d->last_pblk = blk;
        *ret = c;
        return 0;
}

/* Adds the name of `path` (its last component) for inode `ino` to the
 * directory with id `parent`. */
static int dir_add(writer *w, size_t parent, const char *name, ext2_ino_t ino, int file_type,
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

        r = dc_get(w, d->last_pblk, d->ino, true, path, &c);
        if (r < 0)
                return r;
        /* The last entry of the block holds its free space. */
        for (;;) {
                de = (struct ext2_dir_entry *)(c->buf + off);
                err = ext2fs_get_rec_len(w->fs, de, &rec_len);
                if (err || rec_len < 8 || off + rec_len > limit)
                        return log_ext2(w, err ? err : EXT2_ET_DIR_CORRUPTED, "ext2fs_get_rec_len", path);
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
static int add_links(writer *w, ext2_ino_t ino, bool dir, const char *path) {
        struct ext2_inode inode;
        errcode_t err;

        err = ext2fs_read_inode(w->fs, ino, &inode);
        if (err)
                return log_ext2(w, err, "ext2fs_read_inode", path);
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
                return log_ext2(w, err, "ext2fs_write_inode", path);
        return 0;
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

        n = node_at(w, e->id);
        if (!n)
                return -ENOMEM;
        r = new_inode(w, e, LINUX_S_IFDIR | (e->mode & 07777), &ino, &inode);
        if (r < 0)
                return r;
        inode.i_links_count = 2;
        ext2fs_inode_size_set(w->fs, (struct ext2_inode *)&inode, BLOCK);
        r = map_one_block(w, ino, &inode, e->target, &blk);
        if (r < 0)
                return r;
        r = write_inode(w, ino, &inode, e->target);
        if (r < 0)
                return r;

        err = ext2fs_new_dir_block(w->fs, ino, parent, &block);
        if (err)
                return log_ext2(w, err, "ext2fs_new_dir_block", e->target);
        r = dc_get(w, blk, ino, false, e->target, &c);
        if (r == 0) {
                memcpy(c->buf, block, BLOCK);
                c->dirty = true;
        }
        ext2fs_free_mem(&block);
        if (r < 0)
                return r;

        n = &w->nodes[e->id];
        *n = (node){.ino = ino, .dir_blocks = 1, .last_pblk = blk};
        r = dir_add(w, e->parent, e->name, ino, EXT2_FT_DIR, e->target);
        if (r < 0)
                return r;
        return add_links(w, parent, true, e->target);
}

static int on_file(void *ctx, const nri_entry *e, int fd) {
        writer *w = ctx;
        struct ext2_inode_large inode;
        extent_map m;
        ext2_ino_t ino;
        errcode_t err;
        node *n;
        int r;

        n = node_at(w, e->id);
        if (!n)
                return -ENOMEM;
        r = new_inode(w, e, LINUX_S_IFREG | (e->mode & 07777), &ino, &inode);
        if (r < 0)
                return r;
        err = ext2fs_inode_size_set(w->fs, (struct ext2_inode *)&inode, e->size);
        if (err)
                return log_ext2(w, err, "ext2fs_inode_size_set", e->target);
        m = extent_map_new(w->fs, ino, &inode);
        w->has_last_copy = false;
        if (e->size >= COPY_BUFFER) /* readahead's own window covers the rest */
                (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        if (nri_plan_dense_has(w->o->dense, e->id)) /* no need to look for zeros */
                r = write_run(w, e, fd, &m, &inode, 0, NULL, (e->size + BLOCK - 1) / BLOCK);
        else
                r = copy_data(w, e, fd, &m, &inode);
        if (r >= 0) {
                err = extent_finish(&m);
                if (err)
                        r = log_ext2(w, err, "ext2fs_extent_insert", e->target);
        }
        extent_map_free(&m);
        if (r < 0)
                return r;
        r = write_inode(w, ino, &inode, e->target);
        if (r < 0)
                return r;
        w->nodes[e->id].ino = ino;
        r = dir_add(w, e->parent, e->name, ino, EXT2_FT_REG_FILE, e->target);
        if (r < 0)
                return r;

        w->files++;
        w->bytes += e->size;
        if (w->o->progress)
                w->o->progress(w->o->progress_ctx, w->files, w->bytes);
        /* Its bytes read here (or by the worker): still the file it was? */
        if (!w->has_last_copy)
                return nri_source_unchanged(fd, e->st)
                           ? 0
                           : log_fs_errno(w, -ESTALE, "%s: changed while being read", e->source);
        /* Last, when nothing else can fail: the walk's descriptor goes to
         * the worker with the file's (usually only) copy, which checks it
         * once the bytes are copied. */
        w->has_last_copy = false;
        w->last_copy.verify = true;
        w->last_copy.verify_st = *e->st;
        r = nri_worker_give(w->worker, &w->last_copy);
        return r < 0 ? r : NRI_VISIT_KEPT_FD;
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
        n = node_at(w, e->id);
        if (!n)
                return -ENOMEM;
        r = new_inode(w, e, LINUX_S_IFLNK | (e->mode & 07777), &ino, &inode);
        if (r < 0)
                return r;
        ext2fs_inode_size_set(w->fs, (struct ext2_inode *)&inode, len);
        if (len < sizeof(inode.i_block)) {
                /* A fast symlink: the target in i_block, no extents. */
                memcpy(inode.i_block, e->link_target, len);
        } else {
                blk64_t blk;

                r = map_one_block(w, ino, &inode, e->target, &blk);
                if (r < 0)
                        return r;
                memset(w->dirbuf, 0, BLOCK);
                memcpy(w->dirbuf, e->link_target, len);
                r = pwrite_full(w->fd, w->dirbuf, BLOCK, w->offset + blk * BLOCK);
                if (r < 0)
                        return log_fs_errno(w, r, "%s: cannot write %s", w->image, e->target);
        }
        r = write_inode(w, ino, &inode, e->target);
        if (r < 0)
                return r;
        w->nodes[e->id].ino = ino;
        return dir_add(w, e->parent, e->name, ino, EXT2_FT_SYMLINK, e->target);
}

static int on_hardlink(void *ctx, const nri_entry *e) {
        writer *w = ctx;
        ext2_ino_t ino = w->nodes[e->hardlink_id].ino;
        node *n;
        int r;

        n = node_at(w, e->id);
        if (!n)
                return -ENOMEM;
        n->ino = ino;
        r = dir_add(w, e->parent, e->name, ino, EXT2_FT_REG_FILE, e->target);
        if (r < 0)
                return r;
        return add_links(w, ino, false, e->target);
}

/* ---- mke2fs's steps after the tables ---- */

static int make_base(writer *w, const struct ext2fs_journal_params *jp, blk64_t overhead) {
        ext2_filsys fs = w->fs;
        struct ext2_inode_large zero = {0};
        ext2_ino_t lpf;
        errcode_t err;

        /* write_reserved_inodes(): with metadata_csum they need checksums */
        for (ext2_ino_t i = 1; i < EXT2_FIRST_INODE(fs->super); i++) {
                err = ext2fs_write_inode_full(fs, i, (struct ext2_inode *)&zero, sizeof(zero));
                if (err)
                        return log_ext2(w, err, "ext2fs_write_inode_full", "(reserved inodes)");
        }
        /* create_root_dir() */
        err = ext2fs_mkdir(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, 0);
        if (err)
                return log_ext2(w, err, "ext2fs_mkdir", "/");
        /* create_lost_and_found(): mode 0700, 16 KiB */
        fs->umask = 077;
        err = ext2fs_mkdir(fs, EXT2_ROOT_INO, 0, "lost+found");
        fs->umask = 022;
        if (err)
                return log_ext2(w, err, "ext2fs_mkdir", "/lost+found");
        err = ext2fs_lookup(fs, EXT2_ROOT_INO, "lost+found", strlen("lost+found"), 0, &lpf);
        if (err)
                return log_ext2(w, err, "ext2fs_lookup", "/lost+found");
        w->lost_found = lpf;
        for (unsigned size = BLOCK; size < 16 * 1024; size += BLOCK) {
                err = ext2fs_expand_dir(fs, lpf);
                if (err)
                        return log_ext2(w, err, "ext2fs_expand_dir", "/lost+found");
        }
        /* reserve_inodes() */
        for (ext2_ino_t i = EXT2_ROOT_INO + 1; i < EXT2_FIRST_INODE(fs->super); i++)
                ext2fs_inode_alloc_stats2(fs, i, +1, 0);
        ext2fs_mark_ib_dirty(fs);
        /* create_bad_block_inode() */
        ext2fs_mark_inode_bitmap2(fs->inode_map, EXT2_BAD_INO);
        ext2fs_inode_alloc_stats2(fs, EXT2_BAD_INO, +1, 0);
        err = ext2fs_update_bb_inode(fs, NULL);
        if (err)
                return log_ext2(w, err, "ext2fs_update_bb_inode", "(bad blocks inode)");
        if (ext2fs_has_feature_resize_inode(fs->super)) {
                err = ext2fs_create_resize_inode(fs);
                if (err)
                        return log_ext2(w, err, "ext2fs_create_resize_inode", "(resize inode)");
        }
        if (jp->num_journal_blocks) {
                /* The range was cleared: the journal's blocks read as zeros
                 * without writing them (what lazy_journal_init skips). */
                err = ext2fs_add_journal_inode3(fs, (struct ext2fs_journal_params *)jp, ~0ULL,
                                                EXT2_MKJOURNAL_NO_MNT_CHECK | EXT2_MKJOURNAL_LAZYINIT);
                if (err)
                        return log_ext2(w, err, "ext2fs_add_journal_inode3", "(journal)");
                overhead += EXT2FS_NUM_B2C(fs, jp->num_journal_blocks + jp->num_fc_blocks);
        }
        overhead += fs->super->s_first_data_block;
        fs->super->s_overhead_clusters = overhead;
        return 0;
}

/* The inodes libext2fs made have the timestamp's low 32 bits (fs->now);
 * past 2038 they need its epoch bits too. */
static int fix_times(writer *w) {
        static const ext2_ino_t inos[] = {EXT2_BAD_INO, EXT2_ROOT_INO, EXT2_RESIZE_INO, EXT2_JOURNAL_INO,
                                          11};

        if (w->t_extra == 0)
                return 0;
        for (size_t i = 0; i < sizeof(inos) / sizeof(*inos); i++) {
                struct ext2_inode_large inode;
                errcode_t err;
                int r;

                if (!ext2fs_test_inode_bitmap2(w->fs->inode_map, inos[i]))
                        continue;
                err = ext2fs_read_inode_full(w->fs, inos[i], (struct ext2_inode *)&inode, sizeof(inode));
                if (err)
                        return log_ext2(w, err, "ext2fs_read_inode_full", "(special inodes)");
                if (inode.i_mode == 0 && inos[i] != EXT2_BAD_INO)
                        continue; /* no resize inode or journal */
                inode.i_atime_extra = inode.i_ctime_extra = inode.i_mtime_extra = w->t_extra;
                if (inode.i_crtime)
                        inode.i_crtime_extra = w->t_extra;
                r = write_inode(w, inos[i], &inode, "(special inodes)");
                if (r < 0)
                        return r;
        }
        return 0;
}

static int clear_range(writer *w, uint64_t size) {
        static const char zeros[64 * 1024];

        if (fallocate(w->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)w->offset, (off_t)size) == 0)
                return 0;
        if (errno != EOPNOTSUPP && errno != ENOSYS)
                return log_fs_errno(w, -errno, "%s: cannot clear bytes %" PRIu64 "+%" PRIu64, w->image,
                                    w->offset, size);
        for (uint64_t done = 0; done < size;) {
                size_t n = size - done < sizeof(zeros) ? size - done : sizeof(zeros);
                int r = pwrite_full(w->fd, zeros, n, w->offset + done);

                if (r < 0)
                        return log_fs_errno(w, r, "%s: cannot clear bytes %" PRIu64 "+%" PRIu64, w->image,
                                            w->offset, size);
                done += n;
        }
        return 0;
}

int nri_ext4_write(const char *image_path, uint64_t offset, uint64_t size, const nri_ext4_options *o,
                   const nri_plan *plan) {
        writer w = {
            .o = o,
            .what = o->what ? o->what : "ext4",
            .image = image_path,
            .fd = -1,
            .offset = offset,
        };
        struct ext2fs_journal_params jp;
        nri_visitor v = {
            .ctx = &w,
            .directory = on_directory,
            .file = on_file,
            .symlink = on_symlink,
            .hardlink = on_hardlink,
        };
        blk64_t blocks = size / BLOCK, overhead;
        const char *call;
        char *label = NULL;
        struct stat st;
        errcode_t err;
        int64_t t = o->timestamp;
        int r, r2;

        initialize_ext2_error_table();
        if (t < 0 || t > TIME_MAX) {
                log_error("%s: timestamp %" PRId64 " is out of ext4's range 0…%" PRId64 "", w.what, t,
                          TIME_MAX);
                return -EINVAL;
        }
        /* ext4: seconds = (int32_t)lo + (epoch << 32) */
        w.t_lo = (uint32_t)t;
        w.t_extra = (uint32_t)((t - (int32_t)w.t_lo) >> 32) & EXT4_EPOCH_MASK;
        if (o->label) {
                r = nri_ext4_mangle_label(o->label, &label);
                if (r < 0) {
                        log_error("%s: label \"%s\" is not valid UTF-8", w.what, o->label);
                        return r;
                }
        }

        w.fd = open(image_path, O_RDWR | O_CLOEXEC);
        if (w.fd < 0) {
                r = log_fs_errno(&w, -errno, "%s: cannot open", image_path);
                goto out;
        }
        if (fstat(w.fd, &st) < 0) {
                r = log_fs_errno(&w, -errno, "%s: cannot stat", image_path);
                goto out;
        }
        if ((uint64_t)st.st_size < offset || (uint64_t)st.st_size - offset < blocks * BLOCK) {
                log_error("%s: %s is %jd bytes, too small for %" PRIu64 " bytes at offset %" PRIu64 "",
                          w.what, image_path, (intmax_t)st.st_size, (uint64_t)(blocks * BLOCK), offset);
                r = -EINVAL;
                goto out;
        }
        w.buf = malloc(COPY_BUFFER);
        w.cbuf = malloc(COPY_BUFFER);
        w.dirbuf = malloc(BLOCK);
        w.dcbuf = malloc((size_t)DIR_CACHE * BLOCK);
        if (!w.buf || !w.cbuf || !w.dirbuf || !w.dcbuf || !node_at(&w, 0)) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < DIR_CACHE; i++)
                w.dc[i].buf = w.dcbuf + i * BLOCK;
        r = clear_range(&w, blocks * BLOCK);
        if (r < 0)
                goto out;

        err = fs_create(image_path, offset, blocks, o, &w.fs, &overhead, &jp, &call);
        if (err) {
                log_error("%s: cannot make a file system of %" PRIu64 " bytes in %s: %s failed: %s", w.what,
                          (uint64_t)(blocks * BLOCK), image_path, call, error_message(err));
                r = err == EXT2_ET_TOOSMALL ? -ENOSPC : -EIO;
                goto out;
        }
        /* Nothing from the clock: libext2fs stamps what it makes with
         * fs->now, and reads 0 as "now", so the timestamp 0 is given with a
         * bit above the 32 the fields keep. */
        w.fs->now = t ? (time_t)t : (time_t)1 << 32;
        memset(w.fs->super->s_volume_name, 0, sizeof(w.fs->super->s_volume_name));
        if (label)
                memcpy(w.fs->super->s_volume_name, label, strlen(label));
        w.fs->super->s_mkfs_time = w.fs->super->s_wtime = w.fs->super->s_mtime = w.fs->super->s_lastcheck =
            w.t_lo;
        w.fs->super->s_mkfs_time_hi = w.fs->super->s_wtime_hi = w.fs->super->s_mtime_hi =
            w.fs->super->s_lastcheck_hi = (uint8_t)(t >> 32);
        ext2fs_mark_super_dirty(w.fs);

        r = make_base(&w, &jp, overhead);
        if (r < 0)
                goto out;
        w.nodes[0] = (node){.ino = EXT2_ROOT_INO};
        /* What the plan puts at /lost+found goes into the directory
         * mke2fs makes (ids from 1, plan.h), as `mke2fs -d` merges a
         * source's lost+found into it. */
        for (size_t i = 0; plan->existing && plan->existing[i]; i++) {
                if (strcmp(plan->existing[i], "/lost+found") != 0 || !node_at(&w, i + 1)) {
                        log_error("%s: %s is not a directory ext4 makes", w.what, plan->existing[i]);
                        r = -EINVAL;
                        goto out;
                }
                w.nodes[i + 1] = (node){.ino = w.lost_found};
        }
        w.goal = w.fs->super->s_first_data_block;

        /* File data is copied by a worker while the walk goes on. */
        w.copier = (copier){
            .fd = w.fd, .image = image_path, .what = w.what, .copy_file_range = true, .buf = w.cbuf};
        if (nri_worker_new(copy_job, &w.copier, &w.worker) < 0)
                w.worker = NULL;
        r = nri_plan_walk(plan, &v);
        r2 = nri_worker_finish(w.worker);
        w.worker = NULL;
        if (r >= 0 && r2 < 0)
                r = r2;
        if (r < 0)
                goto out;
        r = dc_flush(&w);
        if (r < 0)
                goto out;
        r = fix_times(&w);
        if (r < 0)
                goto out;

        /* No fsync: the image is a build output, and Nix syncs no output
         * (nor does any other builder); a build that stops before its end
         * leaves no output at all (build.c renames the image last). */
        err = ext2fs_close2(w.fs, EXT2_FLAG_FLUSH_NO_SYNC);
        if (!err)
                w.fs = NULL; /* freed */
        if (err) {
                log_error("%s: %s: ext2fs_close2 failed: %s", w.what, image_path, error_message(err));
                r = -EIO;
                goto out;
        }
out:
        if (w.fs)
                ext2fs_free(w.fs);
        if (w.fd >= 0)
                close(w.fd);
        free(w.buf);
        free(w.cbuf);
        free(w.dirbuf);
        free(w.dcbuf);
        free(w.nodes);
        free(label);
        return r;
}

/* ---- Minimize=guess ---- */

/* What a file system of `blocks` blocks has for content after mke2fs's
 * tables, journal, root directory, lost+found and resize inode. */
static int layout_room(blk64_t blocks, uint64_t *ret_blocks, uint64_t *ret_inodes) {
        struct ext2fs_journal_params jp;
        blk64_t overhead, taken;
        const char *call;
        ext2_filsys fs;
        errcode_t err;

        err = fs_create("/dev/null", 0, blocks, NULL, &fs, &overhead, &jp, &call);
        if (err == EXT2_ET_TOOSMALL) {
                *ret_blocks = *ret_inodes = 0;
                return 0;
        }
        if (err) {
                log_error("ext4: cannot lay out a file system of %" PRIu64 " blocks: %s failed: %s",
                          (uint64_t)blocks, call, error_message(err));
                return -EIO;
        }
        taken = overhead + jp.num_journal_blocks + jp.num_fc_blocks + 1 /* root */ + 4 /* lost+found */ +
                (ext2fs_has_feature_resize_inode(fs->super) ? 1 : 0);
        blocks = ext2fs_blocks_count(fs->super);
        *ret_blocks = blocks > taken ? blocks - taken : 0;
        *ret_inodes = fs->super->s_inodes_count - EXT2_FIRST_INODE(fs->super); /* lost+found is the first */
        ext2fs_free(fs);
        return 0;
}

int nri_ext4_min_size(const nri_plan_stats *st, uint64_t *ret) {
        uint64_t inodes = st->files + st->directories + st->symlinks;
        uint64_t entries = inodes + st->hardlinks, dirs = st->directories + 1 /* the root */;
        uint64_t dir_blocks, need, bytes, size;

        initialize_ext2_error_table();
        /* Directories: "." and ".." (24 bytes), entries of at most name + 11
         * bytes, appended block by block to blocks of 4096 - 12 (checksum)
         * bytes that an entry (263 bytes at most) may leave unused. */
        dir_blocks = dirs + (24 * dirs + st->name_bytes + 11 * entries) / (BLOCK - 12 - 264) + 1;
        need = st->data_blocks_4k + st->long_symlinks + dir_blocks;
        /* Extent tree leaves: a directory grows a block at a time wherever
         * the allocator is, so one of five blocks or more may need one; a
         * file's data is contiguous but for 128 MiB extents and the group
         * tables it crosses, and the runs of zeros it skips pay for their own
         * extents. */
        need += dir_blocks / 4 + st->data_blocks_4k / 340 + 1;
        if (need > UINT64_MAX / BLOCK / 2)
                return -EOVERFLOW;
        bytes = need * BLOCK + inodes * INODE_SIZE;
        size = (bytes + bytes / 2 + BLOCK - 1) / BLOCK * BLOCK;
        if (size < NRI_EXT4_MIN_SIZE)
                size = NRI_EXT4_MIN_SIZE;

        /* The journal and the tables grow with the size: grow until it fits. */
        for (int i = 0; i < 200; i++) {
                uint64_t room_blocks, room_inodes, grow = size / 32;
                int r;

                r = layout_room(size / BLOCK, &room_blocks, &room_inodes);
                if (r < 0)
                        return r;
                if (room_blocks >= need && room_inodes >= inodes) {
                        *ret = size;
                        return 0;
                }
                if (room_blocks < need && (need - room_blocks) * BLOCK * 9 / 8 > grow)
                        grow = (need - room_blocks) * BLOCK * 9 / 8;
                if (room_inodes < inodes && (inodes - room_inodes) * INODE_RATIO * 9 / 8 > grow)
                        grow = (inodes - room_inodes) * INODE_RATIO * 9 / 8;
                if (size > UINT64_MAX / 2 - grow)
                        return -EOVERFLOW;
                size = (size + grow + BLOCK - 1) / BLOCK * BLOCK;
        }
        return -EOVERFLOW;
}

/* ---- the file-system table's writer (fs.h) ---- */

static int guess_size(const nri_fs_part *fp, const nri_plan_stats *st, uint64_t *ret) {
        (void)fp;
        return nri_ext4_min_size(st, ret);
}

static int write_fs(const nri_fs_part *fp) {
        const nri_partition *p = fp->p;
        nri_ext4_options o = {
            .uuid = p->fs_uuid,
            .label = p->label,
            .timestamp = fp->plan->mtime,
            .what = fp->what,
            .progress = fp->verbose ? nri_fs_progress : NULL,
            .progress_ctx = (void *)fp,
            .dense = &fp->dense,
        };

        /* systemd-repart leaves the directory hash seed to mke2fs, which
         * draws it at random; ours is derived so the image is reproducible. */
        nri_uuid_derive(&p->fs_uuid, "directory-hash-seed", strlen("directory-hash-seed"), &o.hash_seed);
        return nri_ext4_write(fp->image, fp->offset, fp->size, &o, fp->plan);
}

const nri_fs_writer nri_ext4_fs = {
    .guess_size = guess_size,
    .write = write_fs,
    .wants_dense = true,
};
