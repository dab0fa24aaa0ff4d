/* utf8.h: one code point into UTF-8, for the FAT writer's names (vfat.c,
 * fat-short.c, fat-fill.c). */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* One code point (below U+110000) as UTF-8 into out (room for 4 bytes);
 * the bytes written.  Reading is nri_utf8_next() (parse.h). */
static inline size_t utf8_put(char *out, uint32_t c) {
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
