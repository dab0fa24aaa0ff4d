/* parse.c: the value parsers of systemd 252, so that a repartConfig value
 * means here what it means in a repart.d file.
 *
 * Where systemd's behaviour looks odd ("1 " is a size but "1K " is not, "010"
 * is octal for Flags=), it is kept on purpose: a configuration that works
 * with systemd-repart must work here, and one that fails there fails here. */
#include "nix-repart-image/parse.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* systemd's WHITESPACE: what its parsers skip; \v and \f are not in it. */
#define WHITESPACE " \t\n\r"

static bool is_ascii_digit(char c) {
        return c >= '0' && c <= '9';
}

static const char *skip_prefix(const char *s, const char *prefix) {
        size_t n = strlen(prefix);

        return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

int nri_parse_size(const char *s, uint64_t base, uint64_t *ret) {
        /* Largest first: a component may only be followed by components with
         * a smaller suffix ("1G 512M"), and the empty suffix matches
         * anything, so it must come last. */
        static const char *const suffixes[] = {"E", "P", "T", "G", "M", "K", "B", ""};
        static const unsigned exponents[] = {6, 5, 4, 3, 2, 1, 0, 0};
        const size_t n_suffixes = sizeof(suffixes) / sizeof(suffixes[0]);
        unsigned long long factors[sizeof(suffixes) / sizeof(suffixes[0])];
        unsigned long long total = 0;
        size_t start = 0;
        const char *p = s;

        if (!s || (base != 1000 && base != 1024))
                return -EINVAL;

        for (size_t i = 0; i < n_suffixes; i++) {
                factors[i] = 1;
                for (unsigned j = 0; j < exponents[i]; j++)
                        factors[i] *= base;
        }

        do {
                unsigned long long l, part;
                double frac = 0;
                const char *q;
                char *e;
                size_t i;

                p += strspn(p, WHITESPACE);

                errno = 0;
                l = strtoull(p, &e, 10);
                if (errno > 0)
                        return -errno;
                if (e == p)
                        return -EINVAL;
                /* strtoull() happily negates; a size cannot be negative.
                 * Look past any white space strtoull() skipped itself. */
                for (q = p; isspace((unsigned char)*q); q++)
                        ;
                if (*q == '-')
                        return -ERANGE;

                if (*e == '.') {
                        e++;
                        /* Only digits: strtoull() would also take a sign or
                         * white space here.  "10.M" is valid, as in systemd. */
                        if (is_ascii_digit(*e)) {
                                unsigned long long l2;
                                char *e2;

                                l2 = strtoull(e, &e2, 10);
                                if (errno > 0)
                                        return -errno;
                                frac = (double)l2;
                                for (; e < e2; e++)
                                        frac /= 10;
                        }
                }

                e += strspn(e, WHITESPACE);

                for (i = start; i < n_suffixes; i++)
                        if (skip_prefix(e, suffixes[i]))
                                break;
                if (i >= n_suffixes)
                        return -EINVAL;

                if (l + (frac > 0) > ULLONG_MAX / factors[i])
                        return -ERANGE;
                part = l * factors[i] + (unsigned long long)(frac * (double)factors[i]);
                if (part > ULLONG_MAX - total)
                        return -ERANGE;
                total += part;

                p = e + strlen(suffixes[i]);
                start = i + 1;
        } while (*p);

        *ret = total;
        return 0;
}

int nri_parse_boolean(const char *s) {
        static const char *const yes[] = {"1", "yes", "y", "true", "t", "on"};
        static const char *const no[] = {"0", "no", "n", "false", "f", "off"};

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
        for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        return -EINVAL;
}

/* systemd's mangle_base(): Python-style "0b" and "0o" prefixes pick the
 * base; everything else is left to strtoull()/strtol() with base 0, which
 * also takes "0x" and C's leading-zero octal. */
static const char *mangle_base(const char *s, int *base) {
        const char *k;

        if ((k = skip_prefix(s, "0b")) || (k = skip_prefix(s, "0B"))) {
                *base = 2;
                return k;
        }
        if ((k = skip_prefix(s, "0o")) || (k = skip_prefix(s, "0O"))) {
                *base = 8;
                return k;
        }
        *base = 0;
        return s;
}

/* systemd's parsers skip leading white space; here values arrive with it
 * already stripped (as systemd's config parser strips them), so any left is
 * a mistake in the value rather than in the file's layout. */
static bool starts_with_space(const char *s) {
        return isspace((unsigned char)s[0]);
}

int nri_parse_u64(const char *s, uint64_t *ret) {
        unsigned long long l;
        char *x = NULL;
        int base;

        if (!s || starts_with_space(s))
                return -EINVAL;

        s = mangle_base(s, &base);

        errno = 0;
        l = strtoull(s, &x, base);
        if (errno > 0)
                return -errno;
        if (!x || x == s || *x != 0)
                return -EINVAL;
        /* strtoull() turns "-1" into ULLONG_MAX; "-0" is still zero. */
        if (l != 0 && s[0] == '-')
                return -ERANGE;

        *ret = (uint64_t)l;
        return 0;
}

int nri_parse_i32(const char *s, int32_t *ret) {
        char *x = NULL;
        long l;
        int base;

        if (!s || starts_with_space(s))
                return -EINVAL;

        s = mangle_base(s, &base);

        errno = 0;
        l = strtol(s, &x, base);
        if (errno > 0)
                return -errno;
        if (!x || x == s || *x != 0)
                return -EINVAL;
        if (l < INT32_MIN || l > INT32_MAX)
                return -ERANGE;

        *ret = (int32_t)l;
        return 0;
}

uint64_t nri_round_down(uint64_t v, uint64_t to) {
        if (to == 0)
                return v;
        return v / to * to;
}

uint64_t nri_round_up(uint64_t v, uint64_t to) {
        uint64_t n;

        if (to == 0)
                return v;
        /* Dividing first cannot overflow, unlike v + to - 1. */
        n = v / to + (v % to != 0);
        if (n > UINT64_MAX / to)
                return UINT64_MAX;
        return n * to;
}
