/* arena.h: one owner for all memory of one evaluation of the primop.
 *
 * The value tree, the spec and every string in them are allocated from one
 * arena and released together by nri_arena_free(), so the validation code has
 * a single happy path and nothing to free on its error paths. */
#pragma once

#include <stdarg.h>
#include <stddef.h>

typedef struct nri_arena nri_arena;

nri_arena *nri_arena_new(void);
void nri_arena_free(nri_arena *a);

/* Zeroed memory; aborts only when the process is out of memory. */
void *nri_alloc(nri_arena *a, size_t size);
char *nri_strdup(nri_arena *a, const char *s);
char *nri_strndup(nri_arena *a, const char *s, size_t n);
char *nri_printf(nri_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *nri_vprintf(nri_arena *a, const char *fmt, va_list ap);
