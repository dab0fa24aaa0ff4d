/* plan-dedup.c: the content of the files the walk deduplicates
 * (nri_plan.dedup_dir): their SHA-256, and a hash map (open addressing)
 * from (size, permission bits, SHA-256) to the first name seen. */
#include "plan-dedup.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nix-repart-image/macro.h"

#define READ_SIZE (256 * 1024)

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);

int content_hash(content_map *m, int fd, uint64_t size, uint8_t ret[NRI_CONTENT_HASH_SIZE]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint64_t off = 0;
        unsigned len = 0;

        if (!ctx)
                return -ENOMEM;
        if (!m->buf) {
                m->buf = malloc(READ_SIZE);
                if (!m->buf)
                        return -ENOMEM;
        }
        if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
                return -EIO;
        while (off < size) {
                size_t want = size - off < READ_SIZE ? (size_t)(size - off) : READ_SIZE;
                ssize_t n = pread(fd, m->buf, want, (off_t)off);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -ESTALE; /* shorter than it was: changed while being read */
                if (EVP_DigestUpdate(ctx, m->buf, (size_t)n) != 1)
                        return -EIO;
                off += (uint64_t)n;
        }
        if (EVP_DigestFinal_ex(ctx, ret, &len) != 1 || len != NRI_CONTENT_HASH_SIZE)
                return -EIO;
        return 0;
}

static content_slot *content_find(content_map *m, uint64_t size, mode_t perm,
                                  const uint8_t hash[NRI_CONTENT_HASH_SIZE]) {
        uint64_t h;
        size_t i;

        memcpy(&h, hash, sizeof(h)); /* a SHA-256 is spread well enough */
        for (i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
                content_slot *s = &m->slots[i];

                if (!s->target || (s->size == size && s->perm == perm &&
                                   memcmp(s->hash, hash, NRI_CONTENT_HASH_SIZE) == 0))
                        return s;
        }
}

int content_lookup(content_map *m, uint64_t size, mode_t perm, const uint8_t hash[NRI_CONTENT_HASH_SIZE],
                   content_slot **ret) {
        if ((m->n + 1) * 4 > m->cap * 3) {
                content_map g = {.cap = m->cap ? m->cap * 2 : 256};

                g.slots = calloc(g.cap, sizeof(*g.slots));
                if (!g.slots)
                        return -ENOMEM;
                for (size_t i = 0; i < m->cap; i++)
                        if (m->slots[i].target)
                                *content_find(&g, m->slots[i].size, m->slots[i].perm, m->slots[i].hash) =
                                    m->slots[i];
                free(m->slots); /* only the slots: the size map and the buffer stay */
                m->slots = g.slots;
                m->cap = g.cap;
        }
        *ret = content_find(m, size, perm, hash);
        return 0;
}

static size_slot *size_find(size_slot *slots, size_t cap, uint64_t size, mode_t perm) {
        uint64_t h = (size ^ ((uint64_t)perm << 48)) * UINT64_C(0x9e3779b97f4a7c15);
        size_t i;

        for (i = (h >> 32) & (cap - 1);; i = (i + 1) & (cap - 1)) {
                size_slot *s = &slots[i];

                if (!s->source || (s->size == size && s->perm == perm))
                        return s;
        }
}

int size_lookup(content_map *m, uint64_t size, mode_t perm, size_slot **ret) {
        if ((m->n_sizes + 1) * 4 > m->cap_sizes * 3) {
                size_t cap = m->cap_sizes ? m->cap_sizes * 2 : 256;
                size_slot *g = calloc(cap, sizeof(*g));

                if (!g)
                        return -ENOMEM;
                for (size_t i = 0; i < m->cap_sizes; i++)
                        if (m->sizes[i].source)
                                *size_find(g, cap, m->sizes[i].size, m->sizes[i].perm) = m->sizes[i];
                free(m->sizes);
                m->sizes = g;
                m->cap_sizes = cap;
        }
        *ret = size_find(m->sizes, m->cap_sizes, size, perm);
        return 0;
}

void content_map_free(content_map *m) {
        for (size_t i = 0; i < m->cap; i++)
                free(m->slots[i].target);
        free(m->slots);
        for (size_t i = 0; i < m->cap_sizes; i++) {
                free(m->sizes[i].source);
                free(m->sizes[i].target);
        }
        free(m->sizes);
        free(m->buf);
}
