/* validate.c: the checks every part of the spec shares, and the words of
 * their messages: values quoted, attribute paths written as in Nix, a
 * "did you mean" for a misspelt name, and what makes a path, a store path
 * or a specifier acceptable. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "nix-repart-image/utf8.h"
#include "spec-internal.h"

/* ---- values in messages ------------------------------------------------- */

/* A value in a message: quoted, with the characters that would make the
 * message ambiguous escaped. */
const char *spec_quote(ctx *c, const char *s) {
        size_t n = 2;
        char *out, *o;

        for (const char *p = s; *p; p++)
                n += (*p == '"' || *p == '\\') ? 2 : ((unsigned char)*p < 0x20 ? 4 : 1);
        out = o = nri_alloc(c->a, n + 1);
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

/* ---- attribute paths ---------------------------------------------------- */

static bool is_nix_identifier(const char *s) {
        static const char *const keywords[] = {"assert", "else", "if",   "in",   "inherit", "let",
                                               "or",     "rec",  "then", "with", NULL};

        if (!(isalpha((unsigned char)s[0]) || s[0] == '_'))
                return false;
        for (const char *p = s + 1; *p; p++)
                if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '\'' || *p == '-'))
                        return false;
        return !str_in(s, keywords);
}

/* "partitions" + "10-esp" → partitions."10-esp", as it is written in Nix. */
const char *spec_path_join(ctx *c, const char *base, const char *name) {
        const char *n = is_nix_identifier(name) ? name : spec_quote(c, name);

        if (!base || !*base)
                return n;
        return nri_printf(c->a, "%s.%s", base, n);
}

/* ---- "did you mean" ----------------------------------------------------- */

/* Levenshtein distance, ignoring case: "sizeMinBytes" is one edit from
 * nothing, which is what a user who typed it needs to hear. */
static size_t edit_distance(const char *a, const char *b) {
        size_t n = strlen(a), m = strlen(b);
        size_t row[64];

        if (m >= ELEMENTSOF(row) || n >= ELEMENTSOF(row))
                return SIZE_MAX;
        for (size_t j = 0; j <= m; j++)
                row[j] = j;
        for (size_t i = 1; i <= n; i++) {
                size_t diag = row[0];

                row[0] = i;
                for (size_t j = 1; j <= m; j++) {
                        size_t up = row[j];
                        size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
                        size_t best = diag + cost;

                        if (up + 1 < best)
                                best = up + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        row[j] = best;
                        diag = up;
                }
        }
        return row[m];
}

const char *spec_nearest(const char *name, const char *const *candidates) {
        const char *best = NULL;
        size_t best_d = SIZE_MAX;

        /* A truncated name ("Sizemin") is far from the whole one in edits
         * but plainly meant it. */
        if (strlen(name) >= 4)
                for (const char *const *p = candidates; *p; p++)
                        if (strncasecmp(*p, name, strlen(name)) == 0)
                                return *p;
        for (; *candidates; candidates++) {
                size_t d = edit_distance(name, *candidates);

                if (d < best_d) {
                        best_d = d;
                        best = *candidates;
                }
        }
        /* Two edits catch the usual typos; a longer name may stray further
         * and still be recognisable. */
        if (best_d <= 2 || (best_d <= 3 && strlen(name) >= 10))
                return best;
        return NULL;
}

const char *spec_join_names(ctx *c, const char *const *names) {
        const char *s = "";

        for (const char *const *n = names; *n; n++)
                s = nri_printf(c->a, "%s%s%s", s, n == names ? "" : ", ", *n);
        return s;
}

/* Refuses every attribute of `attrs` that is not in `known`. */
int spec_check_fields(ctx *c, const nri_node *attrs, const char *path, const char *const *known,
                      const refusal *refused) {
        for (size_t i = 0; i < attrs->attrs.n; i++) {
                const nri_attr *at = &attrs->attrs.items[i];
                const char *apath, *hint;

                if (str_in(at->name, known))
                        continue;
                apath = spec_path_join(c, path, at->name);
                for (const refusal *r = refused; r && r->name; r++)
                        if (streq(at->name, r->name))
                                return FAIL(c, at->value, "%s: %s", apath, r->reason);
                hint = spec_nearest(at->name, known);
                if (hint)
                        return FAIL(c, at->value, "%s: unknown attribute; did you mean %s?", apath, hint);
                return FAIL(c, at->value, "%s: unknown attribute; the attributes here are: %s", apath,
                            spec_join_names(c, known));
        }
        return 0;
}

/* ---- value kinds -------------------------------------------------------- */

int spec_expect(ctx *c, const nri_node *n, const char *path, nri_kind kind) {
        if (n->kind == kind)
                return 0;
        return FAIL(c, n, "%s: expected %s, got %s", path, nri_kind_describe(kind),
                    nri_kind_describe(n->kind));
}

/* An optional attribute: NULL when absent. */
int spec_require(ctx *c, const nri_node *attrs, const char *path, const char *name, const nri_node **ret) {
        const nri_node *n = nri_node_attr(attrs, name);

        if (!n)
                return FAIL(c, attrs, "%s: required attribute is missing", spec_path_join(c, path, name));
        *ret = n;
        return 0;
}

int spec_get_bool(ctx *c, const nri_node *attrs, const char *path, const char *name, bool def, bool *ret) {
        const nri_node *n = spec_opt(attrs, name);
        int r;

        if (!n) {
                *ret = def;
                return 0;
        }
        r = spec_expect(c, n, spec_path_join(c, path, name), NRI_BOOL);
        if (r < 0)
                return r;
        *ret = n->b;
        return 0;
}

/* ---- names the spec carries ----------------------------------------------- */

/* The image's name and version make its file name (<name>_<version>.raw)
 * and the derivation's name: keep to what both accept. */
const char *spec_why_not_file_name_part(ctx *c, const char *s) {
        if (!*s)
                return "must not be empty";
        if (s[0] == '.')
                return nri_printf(c->a, "%s must not start with '.'", spec_quote(c, s));
        if (strlen(s) > 100)
                return nri_printf(c->a, "%s is longer than 100 characters", spec_quote(c, s));
        for (const char *p = s; *p; p++)
                if (!(isalnum((unsigned char)*p) || strchr("._+-", *p)))
                        return nri_printf(c->a,
                                          "%s cannot be part of the image's file name: character %s is not "
                                          "allowed (use letters, digits, '.', '_', '+' and '-')",
                                          spec_quote(c, s),
                                          spec_quote(c, nri_strndup(c->a, p, nri_utf8_char_len(p))));
        return NULL;
}

/* The attribute name becomes the definition file <name>.conf. */
const char *spec_why_not_partition_name(ctx *c, const char *s) {
        if (!*s)
                return "a partition name must not be empty";
        if (s[0] == '.')
                return "a partition name must not start with '.': it names a definition file, and "
                       "systemd-repart ignores hidden ones";
        if (strlen(s) > NRI_NAME_MAX - strlen(".conf"))
                return nri_printf(c->a, "the partition name is longer than %zu characters",
                                  NRI_NAME_MAX - strlen(".conf"));
        for (const char *p = s; *p; p++)
                if (!(isalnum((unsigned char)*p) || strchr("._-", *p)))
                        return nri_printf(
                            c->a,
                            "character %s is not allowed in a partition name: it names the "
                            "partition's definition file (use letters, digits, '.', '_' and '-')",
                            spec_quote(c, nri_strndup(c->a, p, nri_utf8_char_len(p))));
        return NULL;
}

/* systemd: gpt_partition_label_valid(), for a label with its specifiers
 * expanded, and what libfdisk can write (labels.h).  The empty label is a
 * valid one there, and here. */
const char *spec_why_not_label(ctx *c, const char *label) {
        long units = nri_utf16_length(label);
        const char *why;

        if (units < 0)
                return nri_printf(c->a, "%s is not valid UTF-8", spec_quote(c, label));
        if (units > NRI_GPT_LABEL_MAX_UTF16)
                return nri_printf(c->a, "%s is %ld UTF-16 code units long; a GPT partition label holds %d",
                                  spec_quote(c, label), units, NRI_GPT_LABEL_MAX_UTF16);
        why = nri_gpt_label_problem(label);
        if (why)
                return nri_printf(c->a, "%s %s", spec_quote(c, label), why);
        return NULL;
}

/* The specifiers of systemd-repart's split_name_printf() that describe the
 * partition (nri_split_name_expand()); the machine-describing ones are
 * refused as in spec_expand_percent(). */
const char *spec_why_not_split_name(ctx *c, const char *t) {
        if (!*t)
                return "the split name must not be empty";
        if (strchr(t, '/'))
                return nri_printf(c->a, "%s names a file and cannot contain '/'", spec_quote(c, t));
        for (const char *p = t; *p; p++) {
                if (*p != '%')
                        continue;
                if (!p[1] || !strchr("tTUn%", p[1]))
                        return nri_printf(c->a,
                                          "specifier %%%s in %s is not supported; use %%t (type), %%T (type "
                                          "UUID), %%U (partition UUID), %%n (partition number) or %%%%",
                                          p[1] ? nri_strndup(c->a, p + 1, 1) : "", spec_quote(c, t));
                p++;
        }
        return NULL;
}

/* ---- paths in file systems and in the store ----------------------------- */

/* systemd's path_simplify_and_warn(PATH_CHECK_ABSOLUTE), which CopyFiles=
 * and MakeDirectories= go through: absolute; "//", "/./" and a trailing "/"
 * folded away; ".." refused (a target climbing out of the file system's
 * root, or a source out of its store path).  Returns NULL, or why not. */
const char *spec_normalise_path(ctx *c, const char *in, const char **ret) {
        char *out, *o;
        const char *p = in;

        if (nri_utf16_length(in) < 0)
                return "is not valid UTF-8";
        if (in[0] != '/')
                return "is not an absolute path";
        out = o = nri_alloc(c->a, strlen(in) + 2);
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
size_t spec_store_path_length(const char *store_dir, const char *s) {
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

int spec_coerce(ctx *c, const nri_node *n, const char *path, const nri_node **ret) {
        int r = c->host->coerce(c->host->ctx, n, ret, c->err);

        if (r < 0 && c->err && c->err->message)
                c->err->message = nri_printf(c->a, "%s: %s", path, c->err->message);
        return r < 0 ? r : 0;
}

/* The store paths of a context, for a message: a few of them. */
static const char *context_text(ctx *c, const nri_context *k) {
        const char *s = "";

        if (k->n_paths == 0)
                return "no store path";
        for (size_t i = 0; i < k->n_paths && i < 3; i++)
                s = nri_printf(c->a, "%s%s%s", s, i ? ", " : "", k->paths[i]);
        if (k->n_paths > 3)
                s = nri_printf(c->a, "%s and %zu more", s, k->n_paths - 3);
        return s;
}

/* A string's context is what the derivation holding it depends on (Nix
 * builds or fetches exactly that), and nothing stops a string from naming
 * another store path than its context's: builtins.substring 0 0 "${a}" +
 * "/nix/store/…-b" has a's context.  So the store path a string names
 * must be one its context makes available.
 *
 * Read-only evaluation writes no .drv files, so there the outputs of a
 * derivation that was never instantiated cannot be read (the context
 * says "!out!/nix/store/…-a.drv" and nothing more).  Nothing evaluated
 * read-only can be built either — this derivation's own .drv is not
 * written — and an evaluation that writes it has every .drv its strings
 * name in the store (Nix writes a .drv before a string can name its
 * outputs), so it checks fully.  So an unresolved context is let through in
 * read-only evaluation only. */
int spec_check_context(ctx *c, const nri_node *n, const char *path, const char *s) {
        const nri_context *k = &n->context;
        size_t len = spec_store_path_length(c->store_dir, s);
        const char *store_path = nri_strndup(c->a, s, len);

        for (size_t i = 0; i < k->n_paths; i++)
                if (streq(k->paths[i], store_path))
                        return 0;
        if (k->unresolved && c->host->read_only)
                return 0;
        if (k->unresolved)
                return FAIL(c, n,
                            "%s: %s: cannot tell which store paths the string's context stands for: %s",
                            path, spec_quote(c, n->str.s), k->unresolved);
        return FAIL(c, n,
                    "%s: %s names the store path %s, but the string's context holds %s, so the image's "
                    "derivation would not depend on what it copies; refer to the store path through what "
                    "makes it (\"${drv}/…\", a path literal)",
                    path, spec_quote(c, n->str.s), store_path, context_text(c, k));
}

/* A string that names something in the store must carry its context, or
 * the derivation would not depend on what the image copies. */
int spec_store_string(ctx *c, const nri_node *n, const char *path, const char *what, const char *s,
                      const char **ret) {
        const char *why, *norm = NULL;
        int r;

        why = spec_normalise_path(c, s, &norm);
        if (why)
                return FAIL(c, n, "%s: %s %s %s", path, what, spec_quote(c, s), why);
        if (!n->has_context)
                return FAIL(c, n,
                            "%s: %s %s is a string without store context, so the image could not depend on "
                            "it; use a path literal (./file), a derivation or \"${drv}/…\"",
                            path, what, spec_quote(c, s));
        if (!spec_store_path_length(c->store_dir, norm))
                return FAIL(c, n, "%s: %s %s is not in the Nix store (%s)", path, what, spec_quote(c, s),
                            c->store_dir);
        r = spec_check_context(c, n, path, norm);
        if (r < 0)
                return r;
        c->host->use_context(c->host->ctx, n, norm);
        *ret = norm;
        return 0;
}

/* ---- specifiers --------------------------------------------------------- */

/* Label=, CopyFiles=, MakeDirectories= and (through CopyFiles=, as NixOS
 * passes them) contents targets expand systemd's specifiers.  Apart from
 * "%%", they all describe the machine systemd-repart runs on (%m machine
 * ID, %H host name, %v kernel release, %a its architecture, …): an image
 * built in a Nix sandbox must not depend on that, so they are refused
 * rather than filled in with the builder's values. */
int spec_expand_percent(ctx *c, const nri_node *n, const char *path, const char *s, const char **ret) {
        char *out = nri_alloc(c->a, strlen(s) + 1), *o = out;

        for (const char *p = s; *p; p++) {
                if (*p != '%') {
                        *o++ = *p;
                        continue;
                }
                if (p[1] == '%') {
                        *o++ = '%';
                        p++;
                        continue;
                }
                if (!p[1])
                        return FAIL(c, n, "%s: %s ends in a lone %%; write %%%% for a literal %%", path,
                                    spec_quote(c, s));
                return FAIL(c, n,
                            "%s: specifier %%%c in %s is not supported: systemd-repart would fill in a "
                            "property of the machine it runs on; write %%%% for a literal %%",
                            path, p[1], spec_quote(c, s));
        }
        *o = 0;
        *ret = out;
        return 0;
}
