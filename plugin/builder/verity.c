/* verity.c: the dm-verity hash tree veritysetup writes (see verity.h).
 *
 * The tree is built in one pass over the data, bottom level first, with one
 * hash block of memory per level: a level's block is written (and its own
 * hash handed to the level above) as soon as it is full, and what is left
 * is flushed bottom up at the end, so memory does not grow with the data.
 * The positions of the levels are cryptsetup's (lib/verity/verity_hash.c,
 * hash_levels()): the level of data block hashes last, the top level right
 * after the superblock. */
#include "verity.h"
#include "log.h"
#include "nix-repart-image/macro.h"
#include "range.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SB_SIZE 512
#define DIGEST NRI_VERITY_ROOT_HASH_SIZE
#define MAX_LEVELS 63 /* cryptsetup's VERITY_MAX_LEVELS */
#define READ_CHUNK (UINT64_C(1) << 20)

typedef struct geometry {
        uint32_t dbs, hbs;
        uint64_t data_blocks;
        int levels;
        uint64_t
            level_block[MAX_LEVELS]; /* first block of each level, in hash blocks from the region start */
        uint64_t level_size[MAX_LEVELS]; /* its blocks */
        uint64_t blocks;                 /* hash blocks the region needs, the superblock's included */
} geometry;

static bool block_size_ok(uint32_t s) {
        return s >= 512 && s <= 4096 && (s & (s - 1)) == 0;
}

static int geometry_init(uint64_t data_size, const nri_verity_options *o, geometry *g) {
        unsigned bits = 0;
        uint64_t pos;

        memset(g, 0, sizeof(*g));
        g->dbs = o->data_block_size ? o->data_block_size : NRI_VERITY_BLOCK_SIZE;
        g->hbs = o->hash_block_size ? o->hash_block_size : NRI_VERITY_BLOCK_SIZE;
        if (!block_size_ok(g->dbs) || !block_size_ok(g->hbs) || data_size == 0 || data_size % g->dbs)
                return -EINVAL;
        g->data_blocks = data_size / g->dbs;
        while ((UINT32_C(1) << (bits + 1)) <= g->hbs / DIGEST)
                bits++;

        while (bits * (unsigned)g->levels < 64 && (g->data_blocks - 1) >> (bits * (unsigned)g->levels))
                g->levels++;
        if (g->levels > MAX_LEVELS)
                return -EINVAL;

        pos = (SB_SIZE + g->hbs - 1) / g->hbs;
        for (int i = g->levels - 1; i >= 0; i--) {
                unsigned shift = bits * (unsigned)(i + 1);

                if (shift > 63)
                        return -EINVAL;
                g->level_block[i] = pos;
                g->level_size[i] =
                    (g->data_blocks >> shift) + ((g->data_blocks & ((UINT64_C(1) << shift) - 1)) != 0);
                pos += g->level_size[i];
        }
        g->blocks = pos;
        return 0;
}

int nri_verity_hash_size(uint64_t data_size, const nri_verity_options *o, uint64_t *ret) {
        geometry g;
        int r = geometry_init(data_size, o, &g);

        if (r < 0)
                return r;
        if (g.blocks > UINT64_MAX / g.hbs)
                return -EINVAL;
        *ret = g.blocks * g.hbs;
        return 0;
}

void nri_verity_derive(const nri_uuid *seed, nri_verity_options *o) {
        static const char salt_token[] = "verity-salt", uuid_token[] = "verity-uuid";
        unsigned len = 0;

        if (!HMAC(EVP_sha256(), seed->b, sizeof(seed->b), (const unsigned char *)salt_token,
                  sizeof(salt_token) - 1, o->salt, &len) ||
            len != NRI_VERITY_SALT_SIZE) {
                fputs("nix-repart-image: HMAC-SHA256 failed in libcrypto\n", stderr);
                abort();
        }
        nri_uuid_derive(seed, uuid_token, sizeof(uuid_token) - 1, &o->uuid);
}

void nri_verity_partition_uuids(const uint8_t root_hash[NRI_VERITY_ROOT_HASH_SIZE], nri_uuid *ret_data,
                                nri_uuid *ret_hash) {
        memcpy(ret_data->b, root_hash, 16);
        memcpy(ret_hash->b, root_hash + NRI_VERITY_ROOT_HASH_SIZE - 16, 16);
}

/* ---- the tree ---- */

typedef struct tree {
        const char *what;
        const char *hash_path;
        int fd;
        uint64_t hash_offset;
        geometry g;
        EVP_MD_CTX *salted; /* SHA-256 that has seen the salt */
        EVP_MD_CTX *ctx;
        uint8_t *level_buf[MAX_LEVELS];
        uint32_t level_n[MAX_LEVELS];       /* hashes in the level's current block */
        uint64_t level_written[MAX_LEVELS]; /* its blocks written */
        uint8_t root[DIGEST];
        bool have_root;
} tree;

static int hash_block(tree *t, const void *block, size_t n, uint8_t out[DIGEST]) {
        unsigned len = 0;

        if (!EVP_MD_CTX_copy_ex(t->ctx, t->salted) || !EVP_DigestUpdate(t->ctx, block, n) ||
            !EVP_DigestFinal_ex(t->ctx, out, &len) || len != DIGEST) {
                log_error("%s: SHA-256 failed in libcrypto", t->what);
                return -EIO;
        }
        return 0;
}

static int push_hash(tree *t, int level, const uint8_t digest[DIGEST]);

/* Writes the level's current block, zero-padded, and hands its hash up. */
static int flush_level(tree *t, int level) {
        uint64_t block = t->g.level_block[level] + t->level_written[level];
        uint8_t digest[DIGEST];
        int r;

        if (t->level_n[level] == 0)
                return 0;
        if (t->level_written[level] >= t->g.level_size[level]) {
                log_error("%s: internal error: level %d of the hash tree overflows", t->what, level);
                return -EIO;
        }
        r = nri_pwrite_all(t->fd, t->level_buf[level], t->g.hbs, t->hash_offset + block * t->g.hbs);
        if (r < 0) {
                log_error_errno(r, "%s: %s: cannot write the hash tree: %m", t->what, t->hash_path);
                return r;
        }
        r = hash_block(t, t->level_buf[level], t->g.hbs, digest);
        if (r < 0)
                return r;
        memset(t->level_buf[level], 0, t->g.hbs);
        t->level_n[level] = 0;
        t->level_written[level]++;
        return push_hash(t, level + 1, digest);
}

static int push_hash(tree *t, int level, const uint8_t digest[DIGEST]) {
        if (level == t->g.levels) {
                if (t->have_root) {
                        log_error("%s: internal error: the hash tree has two roots", t->what);
                        return -EIO;
                }
                memcpy(t->root, digest, DIGEST);
                t->have_root = true;
                return 0;
        }
        memcpy(t->level_buf[level] + (size_t)t->level_n[level] * DIGEST, digest, DIGEST);
        if (++t->level_n[level] == t->g.hbs / DIGEST)
                return flush_level(t, level);
        return 0;
}

/* Hashes the data region block by block; whole blocks inside a hole of the
 * file get the hash of a block of zeros, computed once. */
static int hash_data(tree *t, int fd, const char *data_path, uint64_t off, uint64_t size) {
        uint8_t zero_digest[DIGEST], digest[DIGEST];
        uint8_t *buf = NULL;
        uint64_t pos = 0, data_start = 0, data_end = 0; /* [data_start, data_end): known data, relative */
        bool seek = true;
        int r;

        buf = calloc(1, READ_CHUNK);
        if (!buf)
                return -ENOMEM;
        r = hash_block(t, buf, t->g.dbs, zero_digest);

        while (r >= 0 && pos < size) {
                if (pos >= data_end && seek) {
                        off_t d = lseek(fd, (off_t)(off + pos), SEEK_DATA), h;

                        if (d < 0 && errno == ENXIO)
                                d = (off_t)(off + size);
                        if (d < 0) { /* no SEEK_DATA here: read everything */
                                seek = false;
                                data_start = pos, data_end = size;
                        } else {
                                data_start = (uint64_t)d - off < size ? (uint64_t)d - off : size;
                                h = data_start < size ? lseek(fd, (off_t)(off + data_start), SEEK_HOLE) : -1;
                                data_end = h < 0                      ? size
                                           : (uint64_t)h - off < size ? (uint64_t)h - off
                                                                      : size;
                        }
                }
                if (data_start > pos && (data_start - pos) >= t->g.dbs) {
                        uint64_t n = (data_start - pos) / t->g.dbs;

                        for (uint64_t i = 0; r >= 0 && i < n; i++)
                                r = push_hash(t, 0, zero_digest);
                        pos += n * t->g.dbs;
                        continue;
                }
                {
                        /* From pos (within a block that has data) to the end
                         * of the data, whole blocks, at most READ_CHUNK. */
                        uint64_t end = data_end > pos ? data_end : pos + 1;
                        uint64_t n;

                        end = (end + t->g.dbs - 1) / t->g.dbs * t->g.dbs;
                        if (end > size)
                                end = size;
                        n = end - pos < READ_CHUNK ? end - pos : READ_CHUNK;
                        r = nri_pread_all(fd, buf, (size_t)n, off + pos);
                        if (r < 0) {
                                log_error("%s: %s: cannot read the data at %" PRIu64 ": %s", t->what,
                                          data_path, off + pos, strerror(-r));
                                break;
                        }
                        for (uint64_t i = 0; r >= 0 && i < n; i += t->g.dbs) {
                                r = hash_block(t, buf + i, t->g.dbs, digest);
                                if (r >= 0)
                                        r = push_hash(t, 0, digest);
                        }
                        pos += n;
                }
        }
        free(buf);
        return r;
}

static void put_le(uint8_t *p, uint64_t v, size_t n) {
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static int write_superblock(tree *t, const nri_verity_options *o) {
        uint8_t sb[SB_SIZE] = {0};
        int r;

        memcpy(sb, "verity\0\0", 8);
        put_le(sb + 8, 1, 4);  /* superblock version */
        put_le(sb + 12, 1, 4); /* hash type: normal */
        memcpy(sb + 16, o->uuid.b, 16);
        memcpy(sb + 32, "sha256", 6);
        put_le(sb + 64, t->g.dbs, 4);
        put_le(sb + 68, t->g.hbs, 4);
        put_le(sb + 72, t->g.data_blocks, 8);
        put_le(sb + 80, NRI_VERITY_SALT_SIZE, 2);
        memcpy(sb + 88, o->salt, NRI_VERITY_SALT_SIZE);
        r = nri_pwrite_all(t->fd, sb, sizeof(sb), t->hash_offset);
        if (r < 0)
                log_error_errno(r, "%s: %s: cannot write the verity superblock: %m", t->what, t->hash_path);
        return r;
}

static int open_data(const char *path, uint64_t off, uint64_t size, const char *what, int *ret_fd,
                     struct stat *ret_st) {
        int fd = open(path, O_RDONLY | O_CLOEXEC), r;

        if (fd < 0 || fstat(fd, ret_st) < 0) {
                r = -errno;
                log_error_errno(r, "%s: %s: cannot open the data: %m", what, path);
                if (fd >= 0)
                        close(fd);
                return r;
        }
        if (off > UINT64_MAX - size || (uint64_t)ret_st->st_size < off + size) {
                log_error("%s: %s: the data range %" PRIu64 "+%" PRIu64 " goes beyond the file's %" PRIu64
                          " bytes",
                          what, path, off, size, (uint64_t)ret_st->st_size);
                close(fd);
                return -EINVAL;
        }
        *ret_fd = fd;
        return 0;
}

/* The tree's own: released however nri_verity_write() returns. */
static void tree_done(tree *t) {
        for (int i = 0; i < MAX_LEVELS; i++)
                free(t->level_buf[i]);
        EVP_MD_CTX_free(t->salted);
        EVP_MD_CTX_free(t->ctx);
        if (t->fd >= 0)
                close(t->fd);
}

int nri_verity_write(const char *data_path, uint64_t data_offset, uint64_t data_size, const char *hash_path,
                     uint64_t hash_offset, uint64_t hash_size, const nri_verity_options *o,
                     uint8_t ret_root_hash[NRI_VERITY_ROOT_HASH_SIZE]) {
        _cleanup_(tree_done) tree t = {.what = o->what ? o->what : "verity",
                                       .hash_path = hash_path,
                                       .fd = -1,
                                       .hash_offset = hash_offset};
        _cleanup_close_ int data_fd = -1;
        struct stat dst, hst;
        int r;

        r = geometry_init(data_size, o, &t.g);
        if (r < 0) {
                log_error("%s: bad verity parameters: data of %" PRIu64 " bytes (a positive multiple of "
                          "the data block size), block sizes %" PRIu32 " and %" PRIu32
                          " (powers of two from 512 to 4096)",
                          t.what, data_size, o->data_block_size, o->hash_block_size);
                return r;
        }
        if (hash_size < t.g.blocks * t.g.hbs) {
                log_error("%s: the hash tree of %" PRIu64 " bytes of data needs %" PRIu64
                          " bytes, the hash partition has %" PRIu64 "",
                          t.what, data_size, t.g.blocks * t.g.hbs, hash_size);
                return -ENOSPC;
        }
        r = open_data(data_path, data_offset, data_size, t.what, &data_fd, &dst);
        if (r < 0)
                return r;
        r = nri_range_open(hash_path, hash_offset, hash_size, t.what, &t.fd);
        if (r < 0)
                return r;
        if (fstat(t.fd, &hst) < 0)
                return -errno;
        if (dst.st_dev == hst.st_dev && dst.st_ino == hst.st_ino && data_offset < hash_offset + hash_size &&
            hash_offset < data_offset + data_size) {
                log_error("%s: the data range %" PRIu64 "+%" PRIu64 " and the hash range %" PRIu64
                          "+%" PRIu64 " of %s overlap",
                          t.what, data_offset, data_size, hash_offset, hash_size, hash_path);
                return -EINVAL;
        }

        t.salted = EVP_MD_CTX_new();
        t.ctx = EVP_MD_CTX_new();
        if (!t.salted || !t.ctx || !EVP_DigestInit_ex(t.salted, EVP_sha256(), NULL) ||
            !EVP_DigestUpdate(t.salted, o->salt, NRI_VERITY_SALT_SIZE)) {
                log_error("%s: cannot set up SHA-256 in libcrypto", t.what);
                return -ENOMEM;
        }
        for (int i = 0; i < t.g.levels; i++)
                if (!(t.level_buf[i] = calloc(1, t.g.hbs)))
                        return -ENOMEM;

        r = nri_range_clear(t.fd, hash_offset, hash_size);
        if (r < 0)
                return log_error_errno(r, "%s: %s: cannot clear the hash range: %m", t.what, hash_path);
        r = write_superblock(&t, o);
        if (r < 0)
                return r;
        r = hash_data(&t, data_fd, data_path, data_offset, data_size);
        for (int i = 0; r >= 0 && i < t.g.levels; i++)
                r = flush_level(&t, i);
        if (r < 0)
                return r;
        for (int i = 0; i < t.g.levels; i++)
                if (t.level_written[i] != t.g.level_size[i])
                        r = -EIO;
        if (r < 0 || !t.have_root) {
                log_error("%s: internal error: the hash tree does not have the shape cryptsetup gives it",
                          t.what);
                return -EIO;
        }
        if (close(TAKE_FD(t.fd)) < 0)
                return log_error_errno(-errno, "%s: %s: %m", t.what, hash_path);
        memcpy(ret_root_hash, t.root, DIGEST);
        return 0;
}
