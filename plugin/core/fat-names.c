/* fat-names.c: the file names FAT can hold as mtools writes them.  One rule
 * for both halves: the evaluator checks the targets it knows, the builder
 * every name it copies. */
#include "nix-repart-image/fat-names.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wctype.h>

#include "nix-repart-image/file-systems.h"
#include "nix-repart-image/utf8.h"

locale_t nri_fat_locale(void) {
        static locale_t utf8;
        static bool made;

        if (!made) {
                utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
                made = true;
        }
        return utf8;
}

/* Whether mtools stores `name` as a short 8.3 name alone, without long-name
 * entries: as its dos_name() decides, when nothing has to be dropped or
 * changed to make one — no leading dot or space, no space or further dot,
 * at most 8 + 3 characters, no control character, neither part in mixed
 * case.  (mtools also writes a long name when code page 437 lacks a
 * character; not counted here, so this may say yes where it would not.) */
static bool stored_as_short_name(const char *name, locale_t utf8) {
        const char *dot = strrchr(name, '.');
        size_t count[2] = {0};
        bool upper[2] = {false}, lower[2] = {false};

        if (name[0] == '.' || name[0] == ' ')
                return false;
        for (const char *p = name; *p;) {
                uint32_t c;
                int l = nri_utf8_next(p, &c), part = dot && p > dot;

                if (l < 0)
                        return false;
                if (p != dot) {
                        if (c == ' ' || c == '.' || c < 0x20 || (c >= 0x7f && c < 0xa0))
                                return false;
                        count[part]++;
                        if (utf8 ? iswlower_l((wint_t)c, utf8) : (c >= 'a' && c <= 'z'))
                                lower[part] = true;
                        else if (utf8 ? iswupper_l((wint_t)c, utf8) : (c >= 'A' && c <= 'Z'))
                                upper[part] = true;
                }
                p += l;
        }
        return count[0] <= 8 && count[1] <= 3 && !(upper[0] && lower[0]) && !(upper[1] && lower[1]);
}

const char *nri_fat_name_problem(const char *name, locale_t utf8, char *buf, size_t size) {
        static const char *const reserved[] = {"CON",  "AUX",  "PRN",  "NUL",  "COM1", "COM2",
                                               "COM3", "COM4", "LPT1", "LPT2", "LPT3", "LPT4"};
        size_t units = 0, len = strlen(name);
        bool non_ascii = false;

        if (len == 0)
                return "empty file name";
        for (const char *p = name; *p;) {
                uint32_t c;
                int l = nri_utf8_next(p, &c);

                if (l < 0)
                        return "the name is not UTF-8, FAT stores names as UTF-16";
                if (c < 0x20)
                        return "FAT names cannot contain control characters";
                if (c < 0x80 && strchr("\"*/:<>?\\|", (int)c)) {
                        snprintf(buf, size, "FAT names cannot contain '%c'", (char)c);
                        return buf;
                }
                /* mtools keeps the low 16 bits of each character of a long
                 * name: U+1F600 would be written as U+F600. */
                if (c > 0xffff) {
                        snprintf(buf, size,
                                 "mtools cannot write characters outside the Basic Multilingual Plane (here "
                                 "U+%04" PRIX32 ") to FAT names",
                                 c);
                        return buf;
                }
                non_ascii |= c >= 0x80;
                units++;
                p += l;
        }
        /* Stored as a short name alone, a name outside ASCII goes through code
         * page 437 by iconv's transliteration and upper case ('ł.txt' becomes
         * 'L.TXT', 'über' is read back as 'Über'): not the name it was. */
        if (non_ascii && stored_as_short_name(name, utf8))
                return "a name that fits 8.3 and has characters outside ASCII is stored by mtools as a "
                       "short "
                       "name only, in code page 437, which does not keep it as it is; FAT here holds such a "
                       "name only if it is longer than 8.3, has a space, or mixes upper and lower case";
        if (units > 255) {
                snprintf(buf, size, "the name is %zu UTF-16 units long, FAT holds at most 255", units);
                return buf;
        }
        if (name[len - 1] == '.' || name[len - 1] == ' ')
                return name[len - 1] == '.' ? "FAT drops a trailing dot from names"
                                            : "FAT drops a trailing space from names";
        for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
                if (strcasecmp(name, reserved[i]) == 0) {
                        snprintf(buf, size, "%s is a reserved DOS device name", reserved[i]);
                        return buf;
                }
        return NULL;
}

char *nri_fat_fold(const char *path, locale_t utf8) {
        char *out = malloc(strlen(path) * 2 + 1), *o = out;

        if (!out)
                return NULL;
        for (const char *p = path; *p;) {
                uint32_t c;
                int l = nri_utf8_next(p, &c);

                if (l < 0) {
                        free(out);
                        errno = EINVAL;
                        return NULL;
                }
                if (utf8)
                        c = (uint32_t)towupper_l((wint_t)c, utf8);
                else if (c >= 'a' && c <= 'z')
                        c -= 'a' - 'A';
                o += nri_utf8_put(o, c);
                p += l;
        }
        *o = '\0';
        return out;
}

/* ---- the rules of the file-system table (file-systems.h) ---------------- */

static const char *name_problem(const char *name, char *buf, size_t size) {
        return nri_fat_name_problem(name, nri_fat_locale(), buf, size);
}

static char *fold(const char *path) {
        return nri_fat_fold(path, nri_fat_locale());
}

const nri_name_rules nri_fat_name_rules = {
    .family = "FAT",
    .problem = name_problem,
    .fold = fold,
};
