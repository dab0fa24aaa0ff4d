/* spec-rules.c: what a spec may hold (spec-rules.h), for the evaluator's
 * checks of an expression and the builder's of the spec it reads. */
#include "nix-repart-image/spec-rules.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "nix-repart-image/labels.h"
#include "nix-repart-image/macro.h"
#include "nix-repart-image/utf8.h"

/* ---- values in messages ------------------------------------------------- */

/* A value in a message: quoted, with the characters that would make the
 * message ambiguous escaped. */
const char *nri_quote(nri_arena *a, const char *s) {
        size_t n = 2;
        char *out, *o;

        for (const char *p = s; *p; p++)
                n += (*p == '"' || *p == '\\') ? 2 : ((unsigned char)*p < 0x20 ? 4 : 1);
        out = o = nri_alloc(a, n + 1);
        *o++ = '"';
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p == '"' || *p == '\\') {
                        *o++ = '\\';
                        *o++ = (char)*p;
                } else if (*p < 0x20) {
                        o += sprintf(o, "\\x%02x", *p);
                } else {
                        *o++ = (char)*p;
                }
        }
        *o++ = '"';
        *o = 0;
        return out;
}

/* ---- names the spec carries ----------------------------------------------- */

/* The image's name and version make its file name (<name>_<version>.raw)
 * and the derivation's name: keep to what both accept. */
const char *nri_why_not_file_name_part(nri_arena *a, const char *s) {
        if (!*s)
                return "must not be empty";
        if (s[0] == '.')
                return nri_printf(a, "%s must not start with '.'", nri_quote(a, s));
        if (strlen(s) > 100)
                return nri_printf(a, "%s is longer than 100 characters", nri_quote(a, s));
        for (const char *p = s; *p; p++)
                if (!(isalnum((unsigned char)*p) || strchr("._+-", *p)))
                        return nri_printf(a,
                                          "%s cannot be part of the image's file name: character %s is not "
                                          "allowed (use letters, digits, '.', '_', '+' and '-')",
                                          nri_quote(a, s),
                                          nri_quote(a, nri_strndup(a, p, nri_utf8_char_len(p))));
        return NULL;
}

/* The attribute name becomes the definition file <name>.conf. */
const char *nri_why_not_partition_name(nri_arena *a, const char *s) {
        if (!*s)
                return "a partition name must not be empty";
        if (s[0] == '.')
                return "a partition name must not start with '.': it names a definition file, and "
                       "systemd-repart ignores hidden ones";
        if (strlen(s) > NRI_NAME_MAX - strlen(".conf"))
                return nri_printf(a, "the partition name is longer than %zu characters",
                                  NRI_NAME_MAX - strlen(".conf"));
        for (const char *p = s; *p; p++)
                if (!(isalnum((unsigned char)*p) || strchr("._-", *p)))
                        return nri_printf(
                            a,
                            "character %s is not allowed in a partition name: it names the "
                            "partition's definition file (use letters, digits, '.', '_' and '-')",
                            nri_quote(a, nri_strndup(a, p, nri_utf8_char_len(p))));
        return NULL;
}

/* systemd: gpt_partition_label_valid(), for a label with its specifiers
 * expanded, and what libfdisk can write (labels.h).  The empty label is a
 * valid one there, and here. */
const char *nri_why_not_label(nri_arena *a, const char *label) {
        long units = nri_utf16_length(label);
        const char *why;

        if (units < 0)
                return nri_printf(a, "%s is not valid UTF-8", nri_quote(a, label));
        if (units > NRI_GPT_LABEL_MAX_UTF16)
                return nri_printf(a, "%s is %ld UTF-16 code units long; a GPT partition label holds %d",
                                  nri_quote(a, label), units, NRI_GPT_LABEL_MAX_UTF16);
        why = nri_gpt_label_problem(label);
        if (why)
                return nri_printf(a, "%s %s", nri_quote(a, label), why);
        return NULL;
}

/* The specifiers of systemd-repart's split_name_printf() that describe the
 * partition (nri_split_name_expand()); the machine-describing ones are
 * refused at evaluation (plugin/eval/validate.c). */
const char *nri_why_not_split_name(nri_arena *a, const char *t) {
        if (!*t)
                return "the split name must not be empty";
        if (strchr(t, '/'))
                return nri_printf(a, "%s names a file and cannot contain '/'", nri_quote(a, t));
        for (const char *p = t; *p; p++) {
                if (*p != '%')
                        continue;
                if (!p[1] || !strchr("tTUn%", p[1]))
                        return nri_printf(a,
                                          "specifier %%%s in %s is not supported; use %%t (type), %%T (type "
                                          "UUID), %%U (partition UUID), %%n (partition number) or %%%%",
                                          p[1] ? nri_strndup(a, p + 1, 1) : "", nri_quote(a, t));
                p++;
        }
        return NULL;
}

/* ---- paths in file systems and in the store ----------------------------- */

/* systemd's path_simplify_and_warn(PATH_CHECK_ABSOLUTE), which CopyFiles=
 * and MakeDirectories= go through: absolute; "//", "/./" and a trailing "/"
 * folded away; ".." refused (a target climbing out of the file system's
 * root, or a source out of its store path).  Returns NULL, or why not. */
const char *nri_normalise_path(nri_arena *a, const char *in, const char **ret) {
        char *out, *o;
        const char *p = in;

        if (nri_utf16_length(in) < 0)
                return "is not valid UTF-8";
        if (in[0] != '/')
                return "is not an absolute path";
        out = o = nri_alloc(a, strlen(in) + 2);
        while (*p) {
                size_t len;

                p += strspn(p, "/");
                len = strcspn(p, "/");
                if (len == 0 || (len == 1 && p[0] == '.')) {
                        p += len;
                        continue;
                }
                if (len == 2 && p[0] == '.' && p[1] == '.')
                        return "contains a \"..\" component";
                if (len > NRI_NAME_MAX)
                        return "has a component longer than 255 bytes";
                *o++ = '/';
                memcpy(o, p, len);
                o += len;
                p += len;
        }
        if (o == out)
                *o++ = '/';
        *o = 0;
        if (o - out >= NRI_PATH_MAX)
                return "is longer than PATH_MAX";
        *ret = out;
        return NULL;
}

static bool is_nix_base32(char ch) {
        return ch && strchr("0123456789abcdfghijklmnpqrsvwxyz", ch);
}

static bool is_store_name_char(char ch) {
        return isalnum((unsigned char)ch) || (ch && strchr("+-._?=", ch));
}

/* The length of the store path that `s` is or is inside of
 * (<store>/<32 hash characters>-<name>), or 0 when it is not in the store. */
size_t nri_store_path_length(const char *store_dir, const char *s) {
        size_t d = strlen(store_dir), len;
        const char *comp;

        if (strncmp(s, store_dir, d) != 0 || s[d] != '/')
                return 0;
        comp = s + d + 1;
        len = strcspn(comp, "/");
        if (len < 34 || len > 32 + 1 + 211 || comp[32] != '-' || comp[33] == '.')
                return 0;
        for (size_t i = 0; i < 32; i++)
                if (!is_nix_base32(comp[i]))
                        return 0;
        for (size_t i = 33; i < len; i++)
                if (!is_store_name_char(comp[i]))
                        return 0;
        return d + 1 + len;
}

bool nri_path_is_normal(const char *path) {
        nri_arena *a = nri_arena_new();
        const char *norm = NULL;
        bool ok = !nri_normalise_path(a, path, &norm) && streq(norm, path);

        nri_arena_free(a);
        return ok;
}
