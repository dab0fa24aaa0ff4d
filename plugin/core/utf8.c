/* utf8.c: the one decoder and encoder of UTF-8 (utf8.h). */
#include "nix-repart-image/utf8.h"

#include <errno.h>

int nri_utf8_next(const char *s, uint32_t *ret) {
        const unsigned char *p = (const unsigned char *)s;
        uint32_t cp, min;
        int len;

        if (p[0] < 0x80) {
                *ret = p[0];
                return 1;
        }
        if ((p[0] & 0xe0) == 0xc0) {
                len = 2, cp = p[0] & 0x1f, min = 0x80;
        } else if ((p[0] & 0xf0) == 0xe0) {
                len = 3, cp = p[0] & 0x0f, min = 0x800;
        } else if ((p[0] & 0xf8) == 0xf0) {
                len = 4, cp = p[0] & 0x07, min = 0x10000;
        } else {
                /* A continuation byte, or the lead of a 5- or 6-byte form,
                 * which could only encode values beyond U+10FFFF. */
                return -EINVAL;
        }

        /* The NUL terminator is not a continuation byte, so this stops at
         * the end of a truncated string. */
        for (int i = 1; i < len; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return -EINVAL;
                cp = cp << 6 | (p[i] & 0x3f);
        }

        if (cp < min || cp >= 0x110000 || (cp & 0xfffff800) == 0xd800 || (cp >= 0xfdd0 && cp <= 0xfdef) ||
            (cp & 0xfffe) == 0xfffe)
                return -EINVAL;

        *ret = cp;
        return len;
}

size_t nri_utf8_put(char *out, uint32_t c) {
        if (c < 0x80) {
                out[0] = (char)c;
                return 1;
        }
        if (c < 0x800) {
                out[0] = (char)(0xc0 | c >> 6);
                out[1] = (char)(0x80 | (c & 0x3f));
                return 2;
        }
        if (c < 0x10000) {
                out[0] = (char)(0xe0 | c >> 12);
                out[1] = (char)(0x80 | (c >> 6 & 0x3f));
                out[2] = (char)(0x80 | (c & 0x3f));
                return 3;
        }
        out[0] = (char)(0xf0 | c >> 18);
        out[1] = (char)(0x80 | (c >> 12 & 0x3f));
        out[2] = (char)(0x80 | (c >> 6 & 0x3f));
        out[3] = (char)(0x80 | (c & 0x3f));
        return 4;
}

long nri_utf16_length(const char *s) {
        long units = 0;

        if (!s)
                return -EINVAL;
        while (*s) {
                uint32_t cp;
                int len = nri_utf8_next(s, &cp);

                if (len < 0)
                        return len;
                /* Beyond the Basic Multilingual Plane a code point takes a
                 * surrogate pair. */
                units += cp >= 0x10000 ? 2 : 1;
                s += len;
        }
        return units;
}

size_t nri_utf8_char_len(const char *p) {
        unsigned char c = (unsigned char)*p;
        size_t want = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 1;

        if (c >= 0xf5)
                want = 1;
        for (size_t i = 1; i < want; i++)
                if (((unsigned char)p[i] & 0xc0) != 0x80)
                        return 1;
        return want;
}

int nri_utf8_prefix(const char *s, size_t max, size_t *ret_len) {
        size_t len = 0;

        while (s[len]) {
                uint32_t c;
                int l = nri_utf8_next(s + len, &c);

                if (l < 0)
                        return l;
                if (len + (size_t)l > max)
                        break;
                len += (size_t)l;
        }
        *ret_len = len;
        return 0;
}
