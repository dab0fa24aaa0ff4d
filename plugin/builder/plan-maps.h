/* plan-maps.h: the growing strings and hash maps of the walk (plan-maps.c).
 * Private to plan.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A growing string, for the source and target paths of the walk. */
typedef struct strbuf {
        char *s;
        size_t len, cap;
} strbuf;

typedef struct target_slot {
        char *path; /* owned; NULL: empty */
        size_t id;
        bool dir;
} target_slot;

typedef struct target_map {
        target_slot *slots;
        size_t n, cap; /* cap: a power of two */
} target_map;

typedef struct link_slot {
        dev_t dev;
        ino_t ino;
        char *target; /* owned; NULL: empty */
        size_t id;
} link_slot;

typedef struct link_map {
        link_slot *slots;
        size_t n, cap;
} link_map;

int strbuf_set_len(strbuf *b, size_t len);
int strbuf_append(strbuf *b, const char *s, size_t n);
int strbuf_assign(strbuf *b, const char *s);

/* Every target visited: path -> (id, is a directory).  Looks `path` (len
 * bytes) up; *ret is its slot (path == NULL when it is not there), which
 * target_insert() fills. */
int target_lookup(target_map *m, const char *path, size_t len, target_slot **ret);
int target_insert(target_map *m, target_slot *s, const char *path, size_t len, size_t id, bool dir);
void target_map_free(target_map *m);

/* Files with several links: (st_dev, st_ino) -> the first target; *ret
 * its slot (target == NULL when new). */
int link_lookup(link_map *m, dev_t dev, ino_t ino, link_slot **ret);
void link_map_free(link_map *m);
