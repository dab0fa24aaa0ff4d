/* fat-short.c: short names as mtools 4.0 makes them (fat-short.h): its
 * dos_name(), TranslateToDos(), autorename_short(), is_reserved() and
 * contains_illegals(), and the names its wcscasecmp() finds equal. */
#include "fat-short.h"

#include <errno.h>
#include <iconv.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wchar.h>
#include <wctype.h>

#include "nix-repart-image/utf8.h"

struct nri_fat_names {
        locale_t loc; /* C.UTF-8, as mtools runs (vfat.c: LC_ALL=C.UTF-8) */
        iconv_t to;   /* wchar_t -> CP437//TRANSLIT */
        iconv_t from; /* CP437 -> wchar_t */
};

/* What a short name cannot hold (mtools' short_illegals). */
static const char short_illegals[] = ";+=[]',\"*\\<>/?:|";

int nri_fat_names_new(nri_fat_names **ret) {
        nri_fat_names *n = calloc(1, sizeof(*n));

        if (!n)
                return -ENOMEM;
        n->to = n->from = (iconv_t)-1;
        n->loc = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
        if (n->loc) {
                /* mtools' cp_open(): transliterating where it can. */
                n->to = iconv_open("CP437//TRANSLIT", "WCHAR_T");
                if (n->to == (iconv_t)-1)
                        n->to = iconv_open("CP437", "WCHAR_T");
                n->from = iconv_open("WCHAR_T", "CP437");
        }
        if (!n->loc || n->to == (iconv_t)-1 || n->from == (iconv_t)-1) {
                nri_fat_names_free(n);
                return -ENOTSUP;
        }
        *ret = n;
        return 0;
}

void nri_fat_names_free(nri_fat_names *n) {
        if (!n)
                return;
        if (n->to != (iconv_t)-1)
                iconv_close(n->to);
        if (n->from != (iconv_t)-1)
                iconv_close(n->from);
        if (n->loc)
                freelocale(n->loc);
        free(n);
}

enum { CASE_NONE, CASE_UPPER, CASE_LOWER };

/* mtools' safe_iconv() into code page 437: as many bytes as there were
 * characters at most; a '?' (what transliteration makes of a character
 * code page 437 lacks) becomes '_' and makes the name need a long one.
 * Returns the bytes written. */
static size_t to_cp437(nri_fat_names *n, wchar_t *in, size_t count, uint8_t *out, int *flags) {
        char *ip = (char *)in, *op = (char *)out;
        size_t in_left = count * sizeof(wchar_t), out_left = count, len;
        locale_t old = uselocale(n->loc); /* the locale's transliteration table */

        /* mtools loops over characters iconv refused; with //TRANSLIT
         * glibc refuses none (they become '?'), so one call does it.  A
         * transliteration longer than the room left stops it there. */
        if (in_left > 0)
                (void)iconv(n->to, &ip, &in_left, &op, &out_left);
        uselocale(old);
        len = (size_t)(op - (char *)out);
        for (size_t i = 0; i < len; i++)
                if (out[i] == '?') {
                        out[i] = '_';
                        *flags |= NRI_FAT_NEEDS_LONG;
                }
        return len;
}

/* TranslateToDos(): up to `count` characters of `in` (up to `end` when not
 * NULL) upper-cased into `out`; dots and spaces dropped. */
static void translate(nri_fat_names *n, const char *in, const char *end, size_t count, uint8_t *out,
                      int *ret_case, int *flags) {
        wchar_t buf[12];
        size_t i = 0, t = 0;
        const char *p = in;
        int c_case = CASE_NONE;

        while (i < count && (!end || p < end)) {
                uint32_t c;
                int l = nri_utf8_next(p, &c);

                if (l < 0 || c == 0)
                        break; /* vfat.c lets only valid UTF-8 through */
                buf[i++] = (wchar_t)c;
                p += l;
        }
        /* Characters left over: the name was shortened. */
        if ((end && p < end) || (!end && *p && i == count))
                *flags |= NRI_FAT_NEEDS_LONG | NRI_FAT_TRUNCATED;
        for (size_t k = 0; k < i; k++) {
                wint_t c = (wint_t)buf[k];

                if (c == ' ' || c == '.') {
                        *flags |= NRI_FAT_NEEDS_LONG | NRI_FAT_TRUNCATED;
                        continue;
                }
                if (iswcntrl_l(c, n->loc)) {
                        *flags |= NRI_FAT_NEEDS_LONG | NRI_FAT_TRUNCATED;
                        buf[t] = L'_';
                } else if (iswlower_l(c, n->loc)) {
                        buf[t] = (wchar_t)towupper_l(c, n->loc);
                        if (c_case == CASE_UPPER)
                                *flags |= NRI_FAT_NEEDS_LONG;
                        else
                                c_case = CASE_LOWER;
                } else if (iswupper_l(c, n->loc)) {
                        buf[t] = (wchar_t)c;
                        if (c_case == CASE_LOWER)
                                *flags |= NRI_FAT_NEEDS_LONG;
                        else
                                c_case = CASE_UPPER;
                } else {
                        buf[t] = (wchar_t)c;
                }
                t++;
        }
        to_cp437(n, buf, t, out, flags);
        *ret_case = c_case;
}

void nri_fat_short_name(nri_fat_names *n, const char *name, nri_fat_short *ret) {
        const char *ext;
        int base_case, ext_case = CASE_UPPER, flags = 0;
        size_t skip = strspn(name, ". ");

        memset(ret->name, ' ', sizeof(ret->name));
        if (skip) {
                name += skip;
                flags = NRI_FAT_NEEDS_LONG | NRI_FAT_TRUNCATED;
        }
        ext = strrchr(name, '.');
        translate(n, name, ext, 8, ret->name, &base_case, &flags);
        if (ext)
                translate(n, ext + 1, NULL, 3, ret->name + 8, &ext_case, &flags);
        if (flags & NRI_FAT_TRUNCATED)
                nri_fat_autorename(ret->name, false);
        if (!flags) {
                if (base_case == CASE_LOWER)
                        flags |= NRI_FAT_CASE_BASE;
                if (ext_case == CASE_LOWER)
                        flags |= NRI_FAT_CASE_EXT;
        }
        /* 0xe5 marks a deleted entry; FAT writes it 0x05. */
        if (ret->name[0] == 0xe5)
                ret->name[0] = 0x05;
        ret->flags = flags;
}

void nri_fat_autorename(uint8_t name[11], bool bump) {
        char buf[12 + 8];
        int tildapos = -1, dotpos;
        unsigned seqnum = 0, maxseq = 0;
        char keep;

        memcpy(buf, name, 11);
        buf[11] = 0;
        for (char *p = buf; *p; p++)
                if (strchr(short_illegals, *p)) {
                        *p = '_';
                        bump = false;
                }
        /* The number after the last '~' of the base, if it ends in one. */
        for (dotpos = 0; buf[dotpos] && dotpos < 8 && buf[dotpos] != ' '; dotpos++) {
                if (buf[dotpos] == '~') {
                        tildapos = dotpos;
                        seqnum = 0;
                        maxseq = 1;
                } else if (buf[dotpos] >= '0' && buf[dotpos] <= '9') {
                        seqnum = seqnum * 10 + (unsigned)(buf[dotpos] - '0');
                        maxseq *= 10;
                } else {
                        tildapos = -1;
                }
        }
        if (tildapos == -1) {
                if (dotpos > 8 - 2) {
                        tildapos = 8 - 2;
                        dotpos = 8;
                } else {
                        tildapos = dotpos;
                        dotpos += 2;
                }
                seqnum = 1;
        } else {
                /* A '~' with no digit after it: mtools writes "~0" there,
                 * one character longer than the room it made, and leaves a
                 * NUL in the extension (an entry fsck.vfat rejects); here
                 * it is "~1", as it would be with bump. */
                if (bump || (maxseq == 1 && seqnum == 0))
                        seqnum++;
                if (seqnum > 999999) {
                        seqnum = 1;
                        tildapos = dotpos - 2;
                }
                if (seqnum == maxseq) { /* one digit more */
                        if (dotpos >= 8)
                                tildapos--;
                        else
                                dotpos++;
                }
        }
        keep = buf[dotpos];
        snprintf(buf + tildapos, sizeof(buf) - (size_t)tildapos, "~%u", seqnum);
        buf[dotpos] = keep;
        memcpy(name, buf, 11);
}

bool nri_fat_short_refused(const uint8_t name[11]) {
        static const char *const dev3[] = {"CON", "AUX", "PRN", "NUL", "   "};
        static const char *const dev4[] = {"COM", "LPT"};
        const char *s = (const char *)name;

        for (size_t i = 0; i < sizeof(dev3) / sizeof(dev3[0]); i++)
                if (strncasecmp(s, dev3[i], 3) == 0 && memcmp(s + 3, "     ", 5) == 0)
                        return true;
        for (size_t i = 0; i < sizeof(dev4) / sizeof(dev4[0]); i++)
                if (strncasecmp(s, dev4[i], 3) == 0 && s[3] >= '1' && s[3] <= '4' &&
                    memcmp(s + 4, "    ", 4) == 0)
                        return true;
        for (size_t i = 0; i < 11 && name[i]; i++)
                if ((name[i] < ' ' && name[i] != 5) || strchr(short_illegals, name[i]))
                        return true;
        return false;
}

/* `count` characters, each through towlower(), as UTF-8. */
static char *fold(nri_fat_names *n, const wchar_t *w, size_t count) {
        char *out = malloc(count * 4 + 1), *o = out;

        if (!out)
                return NULL;
        for (size_t i = 0; i < count; i++)
                o += nri_utf8_put(o, (uint32_t)towlower_l((wint_t)w[i], n->loc));
        *o = 0;
        return out;
}

char *nri_fat_key_long(nri_fat_names *n, const char *name) {
        size_t len = strlen(name), count = 0;
        wchar_t *w = malloc((len + 1) * sizeof(wchar_t));
        char *key;

        if (!w)
                return NULL;
        for (const char *p = name; *p;) {
                uint32_t c;
                int l = nri_utf8_next(p, &c);

                if (l < 0)
                        break;
                w[count++] = (wchar_t)c;
                p += l;
        }
        key = fold(n, w, count);
        free(w);
        return key;
}

/* unix_name(): "BASE.EXT", each part up to its first space, through code
 * page 437. */
char *nri_fat_key_short(nri_fat_names *n, const uint8_t name[11]) {
        char text[13], *ip = text, *op;
        wchar_t w[13];
        size_t base = 0, ext = 0, len, in_left, out_left;

        /* strncpy() and strchr(' '): each part up to a space or a NUL
         * (one that autorename_short() may leave). */
        while (base < 8 && name[base] != ' ' && name[base])
                base++;
        while (ext < 3 && name[8 + ext] != ' ' && name[8 + ext])
                ext++;
        memcpy(text, name, base);
        if (base && text[0] == 0x05)
                text[0] = (char)0xe5;
        len = base;
        if (ext) {
                text[len++] = '.';
                memcpy(text + len, name + 8, ext);
                len += ext;
        }
        in_left = len;
        out_left = sizeof(w);
        op = (char *)w;
        if (len > 0 && iconv(n->from, &ip, &in_left, &op, &out_left) == (size_t)-1)
                return NULL;
        return fold(n, w, (size_t)((wchar_t *)op - w));
}

/* ---- mtools' directory cache hash (dirCache.c: calcHash()) --------------- */

static uint32_t rol(uint32_t v, int shift) {
        return v << shift | v >> (32 - shift);
}

static uint32_t calc_hash(nri_fat_names *n, const wchar_t *w, size_t count) {
        uint32_t h = 0;

        for (uint32_t i = 0; i < count; i++) {
                uint32_t c = (uint32_t)towupper_l((wint_t)w[i], n->loc);

                h = rol(h, 5);
                h ^= (c * (c + 2)) ^ (i * (i + 2));
        }
        h = h * (h + 2);
        h ^= (h & 0xfff) << 12;
        h ^= (h & 0xff000) << 24;
        return h;
}

uint32_t nri_fat_hash_long(nri_fat_names *n, const char *name) {
        wchar_t w[256];
        size_t count = 0;

        for (const char *p = name; *p && count < 256;) {
                uint32_t c;
                int l = nri_utf8_next(p, &c);

                if (l < 0)
                        break;
                w[count++] = (wchar_t)c;
                p += l;
        }
        return calc_hash(n, w, count);
}

/* `len` bytes of code page 437 as wide characters; the count. */
static size_t from_cp437(nri_fat_names *n, const char *in, size_t len, wchar_t *out, size_t room) {
        char *ip = (char *)in, *op = (char *)out;
        size_t in_left = len, out_left = room * sizeof(wchar_t);

        if (len > 0)
                (void)iconv(n->from, &ip, &in_left, &op, &out_left);
        return (size_t)((wchar_t *)op - out);
}

uint32_t nri_fat_hash_short(nri_fat_names *n, const uint8_t name[11]) {
        char text[13];
        wchar_t w[13];
        size_t base = 0, ext = 0, len;

        while (base < 8 && name[base] != ' ' && name[base])
                base++;
        while (ext < 3 && name[8 + ext] != ' ' && name[8 + ext])
                ext++;
        memcpy(text, name, base);
        if (base && text[0] == 0x05)
                text[0] = (char)0xe5;
        len = base;
        if (ext) {
                text[len++] = '.';
                memcpy(text + len, name + 8, ext);
                len += ext;
        }
        return calc_hash(n, w, from_cp437(n, text, len, w, 13));
}

uint32_t nri_fat_hash_label(nri_fat_names *n, const uint8_t name[11]) {
        wchar_t w[12];

        return calc_hash(n, w, from_cp437(n, (const char *)name, 11, w, 12));
}
