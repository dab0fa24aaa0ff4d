/* validate.c: the checks every part of the spec shares, and the words of
 * their messages: values quoted, attribute paths written as in Nix, a
 * "did you mean" for a misspelt name, and what makes a path, a store path
 * or a specifier acceptable. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "validate.h"

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

/* ---- strings naming the store ------------------------------------------- */

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
        size_t len = nri_store_path_length(c->store_dir, s);
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

        why = nri_normalise_path(c->a, s, &norm);
        if (why)
                return FAIL(c, n, "%s: %s %s %s", path, what, spec_quote(c, s), why);
        if (!n->has_context)
                return FAIL(c, n,
                            "%s: %s %s is a string without store context, so the image could not depend on "
                            "it; use a path literal (./file), a derivation or \"${drv}/…\"",
                            path, what, spec_quote(c, s));
        if (!nri_store_path_length(c->store_dir, norm))
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

/* ---- lists -------------------------------------------------------------- */

void *spec_grow(ctx *c, void *items, size_t n, size_t *cap, size_t size) {
        void *p;

        if (n < *cap)
                return items;
        *cap = *cap ? *cap * 2 : 4;
        p = nri_alloc(c->a, *cap * size);
        if (n)
                memcpy(p, items, n * size);
        return p;
}

void spec_add_copy(ctx *c, nri_copy **items, size_t *n, size_t *cap, const nri_node ***nodes,
                   size_t *cap_nodes, const char *source, const char *target, const nri_node *node) {
        *items = spec_grow(c, *items, *n, cap, sizeof(nri_copy));
        *nodes = spec_grow(c, *nodes, *n, cap_nodes, sizeof(nri_node *));
        (*nodes)[*n] = node;
        (*items)[(*n)++] = (nri_copy){.source = source, .target = target};
}
