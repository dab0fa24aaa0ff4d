/* arena.c: a chunked bump allocator.
 *
 * Allocations are carved from chunks kept in a singly linked list; nothing is
 * freed before the whole arena is.  The evaluation of one primop call makes a
 * few hundred small objects at most, so a simple list is enough. */
#include "nix-repart-image/arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Big enough that a typical evaluation fits in one or two chunks, small
 * enough not to matter when an evaluator runs the primop many times. */
#define CHUNK_SIZE ((size_t)16 * 1024)
#define ALIGN alignof(max_align_t)

typedef struct chunk {
        struct chunk *next;
        size_t size; /* usable bytes in data */
        size_t used;
        alignas(max_align_t) unsigned char data[];
} chunk;

struct nri_arena {
        chunk *head; /* the chunk being filled; older ones follow */
};

/* The interface promises that allocation never fails, so that callers need
 * no error path for it: running out of memory in the evaluator is not
 * something a caller could recover from anyway. */
static _Noreturn void out_of_memory(size_t size) {
        fprintf(stderr, "nix-repart-image: out of memory allocating %zu bytes\n", size);
        abort();
}

static chunk *chunk_new(size_t size) {
        chunk *c;

        if (size > SIZE_MAX - sizeof(chunk))
                out_of_memory(size);
        c = malloc(sizeof(chunk) + size);
        if (!c)
                out_of_memory(size);
        c->next = NULL;
        c->size = size;
        c->used = 0;
        return c;
}

nri_arena *nri_arena_new(void) {
        nri_arena *a = malloc(sizeof(*a));

        if (!a)
                out_of_memory(sizeof(*a));
        a->head = NULL;
        return a;
}

void nri_arena_free(nri_arena *a) {
        if (!a)
                return;
        for (chunk *c = a->head, *next; c; c = next) {
                next = c->next;
                free(c);
        }
        free(a);
}

void *nri_alloc(nri_arena *a, size_t size) {
        chunk *c = a->head;
        size_t need;
        void *p;

        /* A zero-sized request still gets a distinct, valid pointer. */
        need = size ? size : 1;
        if (need > SIZE_MAX - (ALIGN - 1))
                out_of_memory(size);
        need = (need + ALIGN - 1) / ALIGN * ALIGN;

        if (need > CHUNK_SIZE / 4) {
                /* A large object gets a chunk of its own, linked behind the
                 * current one so that the free space there is not lost. */
                chunk *big = chunk_new(need);

                big->used = need;
                if (c) {
                        big->next = c->next;
                        c->next = big;
                } else
                        a->head = big;
                memset(big->data, 0, need);
                return big->data;
        }

        if (!c || c->size - c->used < need) {
                c = chunk_new(CHUNK_SIZE);
                c->next = a->head;
                a->head = c;
        }

        p = c->data + c->used;
        c->used += need;
        memset(p, 0, need);
        return p;
}

static char *copy(nri_arena *a, const char *s, size_t len) {
        char *d = nri_alloc(a, len + 1);

        memcpy(d, s, len);
        return d;
}

char *nri_strndup(nri_arena *a, const char *s, size_t n) {
        return copy(a, s, strnlen(s, n));
}

char *nri_strdup(nri_arena *a, const char *s) {
        return copy(a, s, strlen(s));
}

char *nri_vprintf(nri_arena *a, const char *fmt, va_list ap) {
        va_list again;
        char *s;
        int n;

        /* Measure first, then format into arena memory: no temporary heap
         * string to free. */
        va_copy(again, ap);
        n = vsnprintf(NULL, 0, fmt, again);
        va_end(again);
        if (n < 0) {
                /* Only an invalid format or a wide character that cannot be
                 * converted gets here; keep the format as the message rather
                 * than lose it. */
                return nri_strdup(a, fmt);
        }

        s = nri_alloc(a, (size_t)n + 1);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        return s;
}

char *nri_printf(nri_arena *a, const char *fmt, ...) {
        va_list ap;
        char *s;

        va_start(ap, fmt);
        s = nri_vprintf(a, fmt, ap);
        va_end(ap);
        return s;
}
