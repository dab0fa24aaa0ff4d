/* check.h: the few assertions the unit tests need.  A failed CHECK prints
 * where and what, counts, and lets the test go on; main returns
 * check_result(). */
#pragma once

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                    \
        do {                                                                           \
                check_count++;                                                         \
                if (!(cond)) {                                                         \
                        check_failures++;                                              \
                        fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
                }                                                                      \
        } while (0)

#define CHECK_STR(got, want)                                                           \
        do {                                                                           \
                const char *g_ = (got), *w_ = (want);                                  \
                check_count++;                                                         \
                if (!g_ || !w_ || strcmp(g_, w_) != 0) {                               \
                        check_failures++;                                              \
                        fprintf(stderr, "%s:%d: %s: got \"%s\", want \"%s\"\n", __FILE__, __LINE__, \
                                #got, g_ ? g_ : "(null)", w_ ? w_ : "(null)");         \
                }                                                                      \
        } while (0)

#define CHECK_U64(got, want)                                                           \
        do {                                                                           \
                uint64_t g_ = (got), w_ = (want);                                      \
                check_count++;                                                         \
                if (g_ != w_) {                                                        \
                        check_failures++;                                              \
                        fprintf(stderr, "%s:%d: %s: got %" PRIu64 ", want %" PRIu64 "\n", __FILE__, \
                                __LINE__, #got, g_, w_);                               \
                }                                                                      \
        } while (0)

static inline int check_result(void) {
        printf("%d checks, %d failed\n", check_count, check_failures);
        return check_failures ? 1 : 0;
}

/* Runs fn(arg) with stderr going to a temporary file: what it printed
 * there (malloc'ed; "" when nothing), and its result in *ret. */
static inline char *check_capture_stderr(int (*fn)(void *), void *arg, int *ret) {
        FILE *f = tmpfile();
        int saved = dup(2);
        char *text;
        long n;

        if (!f || saved < 0)
                abort();
        fflush(stderr);
        dup2(fileno(f), 2);
        *ret = fn(arg);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        n = ftell(f);
        text = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
        if (!text)
                abort();
        rewind(f);
        if (n > 0 && fread(text, 1, (size_t)n, f) != (size_t)n)
                abort();
        fclose(f);
        return text;
}
