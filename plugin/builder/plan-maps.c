/* plan-maps.c: the growing strings the walk builds its paths in, and its
 * two hash maps (open addressing, FNV-1a): every target it may reach
 * again, and the files it has seen with several links. */
#include "plan-maps.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int strbuf_set_len(strbuf *b, size_t len) {
        b->len = len;
        b->s[len] = 0;
        return 0;
}

int strbuf_append(strbuf *b, const char *s, size_t n) {
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                char *p;

                while (cap < b->len + n + 1)
                        cap *= 2;
                p = realloc(b->s, cap);
                if (!p)
                        return -ENOMEM;
                b->s = p;
                b->cap = cap;
        }
        memcpy(b->s + b->len, s, n);
        b->len += n;
        b->s[b->len] = 0;
        return 0;
}

int strbuf_assign(strbuf *b, const char *s) {
        b->len = 0;
        if (b->s)
                b->s[0] = 0;
        return strbuf_append(b, s, strlen(s));
}

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h) {
        const unsigned char *c = p;

        /* FNV-1a */
        for (size_t i = 0; i < n; i++) {
                h ^= c[i];
                h *= UINT64_C(0x100000001b3);
        }
        return h;
}

#define HASH_INIT UINT64_C(0xcbf29ce484222325)

/* ---- every target visited: path -> (id, is a directory) ---- */

static target_slot *target_find(target_map *m, const char *path, size_t len) {
        size_t i;

        if (!m->cap)
                return NULL;
        i = hash_bytes(path, len, HASH_INIT) & (m->cap - 1);
        for (;; i = (i + 1) & (m->cap - 1)) {
                target_slot *s = &m->slots[i];

                if (!s->path)
                        return s;
                if (strncmp(s->path, path, len) == 0 && s->path[len] == 0)
                        return s;
        }
}

static int target_grow(target_map *m) {
        target_map g = {.cap = m->cap ? m->cap * 2 : 1024};

        g.slots = calloc(g.cap, sizeof(*g.slots));
        if (!g.slots)
                return -ENOMEM;
        for (size_t i = 0; i < m->cap; i++) {
                target_slot *s = &m->slots[i];

                if (s->path)
                        *target_find(&g, s->path, strlen(s->path)) = *s;
        }
        g.n = m->n;
        free(m->slots);
        *m = g;
        return 0;
}

/* Looks `path` up; *ret is its slot (path == NULL when it is not there). */
int target_lookup(target_map *m, const char *path, size_t len, target_slot **ret) {
        if ((m->n + 1) * 4 > m->cap * 3) {
                int r = target_grow(m);
                if (r < 0)
                        return r;
        }
        *ret = target_find(m, path, len);
        return 0;
}

int target_insert(target_map *m, target_slot *s, const char *path, size_t len, size_t id, bool dir) {
        s->path = strndup(path, len);
        if (!s->path)
                return -ENOMEM;
        s->id = id;
        s->dir = dir;
        m->n++;
        return 0;
}

void target_map_free(target_map *m) {
        for (size_t i = 0; i < m->cap; i++)
                free(m->slots[i].path);
        free(m->slots);
}

/* ---- files with several links: (st_dev, st_ino) -> first target ---- */

static link_slot *link_find(link_map *m, dev_t dev, ino_t ino) {
        uint64_t h = hash_bytes(&dev, sizeof(dev), HASH_INIT);
        size_t i;

        h = hash_bytes(&ino, sizeof(ino), h);
        for (i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
                link_slot *s = &m->slots[i];

                if (!s->target || (s->dev == dev && s->ino == ino))
                        return s;
        }
}

int link_lookup(link_map *m, dev_t dev, ino_t ino, link_slot **ret) {
        if ((m->n + 1) * 4 > m->cap * 3) {
                link_map g = {.cap = m->cap ? m->cap * 2 : 256};

                g.slots = calloc(g.cap, sizeof(*g.slots));
                if (!g.slots)
                        return -ENOMEM;
                for (size_t i = 0; i < m->cap; i++)
                        if (m->slots[i].target)
                                *link_find(&g, m->slots[i].dev, m->slots[i].ino) = m->slots[i];
                g.n = m->n;
                free(m->slots);
                *m = g;
        }
        *ret = link_find(m, dev, ino);
        return 0;
}

void link_map_free(link_map *m) {
        for (size_t i = 0; i < m->cap; i++)
                free(m->slots[i].target);
        free(m->slots);
}
