/* errbuf.h: the caller's buffer for a message, as the builder's pieces that
 * report through one (layout.h, gpt.h) fill it. */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* Formats the message into errbuf (cut to errlen); nothing when errbuf is
 * NULL or errlen 0. */
static inline void nri_errbuf_set(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void nri_errbuf_set(char *errbuf, size_t errlen, const char *fmt, ...) {
        va_list ap;

        if (!errbuf || errlen == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
}
