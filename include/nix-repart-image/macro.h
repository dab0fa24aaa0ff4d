/* macro.h: the small macros both halves share.
 *
 * The cleanup attributes are systemd's _cleanup_ style: a variable
 * declared _cleanup_free_ (or with its own _cleanup_(f)) is released when
 * it goes out of scope, on every return, so a function has one happy path
 * and no goto ladder; TAKE_PTR()/TAKE_FD() hand the value on instead. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p) {
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Closes a descriptor >= 0, keeping errno (a close on an error path must
 * not replace the error being reported). */
static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;

                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

/* The value of `p`, leaving NULL (or -1) behind for the cleanup. */
#define TAKE_PTR(p)                                                                                         \
        ({                                                                                                  \
                __typeof__(p) take_ = (p);                                                                  \
                (p) = NULL;                                                                                 \
                take_;                                                                                      \
        })
#define TAKE_FD(fd)                                                                                         \
        ({                                                                                                  \
                int take_ = (fd);                                                                           \
                (fd) = -1;                                                                                  \
                take_;                                                                                      \
        })

/* `static inline void func##p(type *p)`: calls func(*p) unless it is NULL,
 * for _cleanup_(func##p). */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                             \
        static inline void func##p(type *p) {                                                               \
                if (*p)                                                                                     \
                        func(*p);                                                                           \
        }

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}
