/* partition-contents.c: what fills a partition's file system besides
 * repartConfig's CopyFiles= and MakeDirectories=: the NixOS module's
 * `contents` (files and trees, imported into the store when they are
 * paths), `storePaths` (copied with their closures) and where in the file
 * system the store lands (nixStorePrefix, stripNixStorePrefix). */
#include <stdlib.h>
#include <string.h>

#include "partition-contents.h"
#include "validate.h"

/* ---- partitions: contents ----------------------------------------------- */

/* The shim's message does not know the attribute: prefix it. */
static int import_path(ctx *c, const nri_node *n, const char *path, const char **ret) {
        int r = c->host->import_path(c->host->ctx, n, ret, c->err);

        if (r < 0 && c->err && c->err->message)
                c->err->message = nri_printf(c->a, "%s: %s", path, c->err->message);
        return r < 0 ? r : 0;
}

/* A path is imported; a set is coerced to a string as "${set}" would, and
 * then meets every rule a string meets: its `type` proves nothing. */
static int content_source(ctx *c, const nri_node *n, const char *path, const char **ret) {
        int r;

        switch (n->kind) {
        case NRI_PATH:
                return import_path(c, n, path, ret);
        case NRI_COERCIBLE:
                r = spec_coerce(c, n, path, &n);
                if (r < 0)
                        return r;
                return spec_store_string(c, n, path, "source", n->str.s, ret);
        case NRI_STRING:
                return spec_store_string(c, n, path, "source", n->str.s, ret);
        default:
                return FAIL(c, n,
                            "%s: expected a path, a derivation or a string referring to the store, got %s",
                            path, nri_kind_describe(n->kind));
        }
}

static int content_target(ctx *c, const nri_node *n, const char *path, const char *target,
                          const char **ret) {
        const char *expanded = NULL, *why;
        int r;

        r = spec_expand_percent(c, n, path, target, &expanded);
        if (r < 0)
                return r;
        why = nri_normalise_path(c->a, expanded, ret);
        if (why)
                return FAIL(c, n, "%s: the target %s %s", path, spec_quote(c, target), why);
        return 0;
}

static int parse_content(ctx *c, part_state *s, const char *cpath, const nri_attr *at) {
        static const char *const fields[] = {"source", NULL};
        const char *path = spec_path_join(c, cpath, at->name), *target = NULL, *source = NULL;
        const nri_node *src = NULL;
        nri_partition *p = s->p;
        int r;

        if (at->value->kind == NRI_COERCIBLE || at->value->kind == NRI_PATH)
                return FAIL(c, at->value, "%s: expected an attribute set, got %s; write %s.source = …", path,
                            nri_kind_describe(at->value->kind), path);
        r = spec_expect(c, at->value, path, NRI_ATTRS);
        if (r < 0)
                return r;
        r = spec_check_fields(c, at->value, path, fields, NULL);
        if (r < 0)
                return r;
        r = content_target(c, at->value, path, at->name, &target);
        if (r < 0)
                return r;
        for (size_t i = 0; i < p->n_contents; i++)
                if (streq(p->contents[i].target, target))
                        return FAIL(c, at->value, "%s: the target %s is the same as that of another entry",
                                    path, spec_quote(c, target));
        r = spec_require(c, at->value, path, "source", &src);
        if (r < 0)
                return r;
        r = content_source(c, src, spec_path_join(c, path, "source"), &source);
        if (r < 0)
                return r;
        spec_add_copy(c, &p->contents, &p->n_contents, &s->cap_contents, &s->content_nodes,
                      &s->cap_content_nodes, source, target, at->value);
        return 0;
}

int spec_parse_contents(ctx *c, part_state *s, const nri_node *pn) {
        const char *path = spec_path_join(c, s->path, "contents");
        const nri_node *n = spec_opt(pn, "contents");
        int r;

        if (!n)
                return 0;
        r = spec_expect(c, n, path, NRI_ATTRS);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n->attrs.n; i++) {
                r = parse_content(c, s, path, &n->attrs.items[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- partitions: storePaths --------------------------------------------- */

/* A derivation (coerced as "${drv}" would be: its `type` proves nothing),
 * a path (imported) or a string: a whole store path, which a string's
 * context must make available. */
static int store_path_element(ctx *c, const nri_node *n, const char *path, const char **ret) {
        const char *s = NULL, *why;
        size_t len;
        int r;

        if (n->kind == NRI_COERCIBLE) {
                r = spec_coerce(c, n, path, &n);
                if (r < 0)
                        return r;
        }
        switch (n->kind) {
        case NRI_PATH:
                r = import_path(c, n, path, &s);
                if (r < 0)
                        return r;
                break;
        case NRI_STRING:
                why = nri_normalise_path(c->a, n->str.s, &s);
                if (why)
                        return FAIL(c, n, "%s: %s %s", path, spec_quote(c, n->str.s), why);
                break;
        default:
                return FAIL(c, n, "%s: expected a derivation or a store path, got %s", path,
                            nri_kind_describe(n->kind));
        }
        len = nri_store_path_length(c->store_dir, s);
        if (!len)
                return FAIL(c, n, "%s: %s is not a store path (%s/<hash>-<name>)", path, spec_quote(c, s),
                            c->store_dir);
        if (s[len])
                return FAIL(c, n, "%s: %s is inside the store path %s; give %s itself", path,
                            spec_quote(c, s), nri_strndup(c->a, s, len), nri_strndup(c->a, s, len));
        if (n->kind == NRI_STRING) {
                if (!n->has_context)
                        return FAIL(
                            c, n,
                            "%s: %s is a string without store context, so Nix would not know the image "
                            "needs it; use the derivation itself or \"${drv}\"",
                            path, spec_quote(c, s));
                r = spec_check_context(c, n, path, s);
                if (r < 0)
                        return r;
                c->host->use_context(c->host->ctx, n, s);
        }
        *ret = s;
        return 0;
}

int spec_parse_store_paths(ctx *c, part_state *s, const nri_node *pn) {
        const char *path = spec_path_join(c, s->path, "storePaths");
        const nri_node *n = spec_opt(pn, "storePaths");
        nri_partition *p = s->p;
        int r;

        if (!n)
                return 0;
        r = spec_expect(c, n, path, NRI_LIST);
        if (r < 0)
                return r;
        p->store_paths = nri_alloc(c->a, (n->list.n + 1) * sizeof(char *));
        s->store_nodes = nri_alloc(c->a, (n->list.n + 1) * sizeof(nri_node *));
        for (size_t i = 0; i < n->list.n; i++) {
                const char *sp = NULL;
                bool dup = false;

                r = store_path_element(c, n->list.items[i], path, &sp);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < p->n_store_paths && !dup; j++)
                        dup = streq(p->store_paths[j], sp);
                if (!dup) {
                        s->store_nodes[p->n_store_paths] = n->list.items[i];
                        p->store_paths[p->n_store_paths++] = sp;
                }
        }
        return 0;
}

/* ---- partitions: where the store lands ---------------------------------- */

int spec_parse_store_prefix(ctx *c, part_state *s, const nri_node *pn) {
        const char *ppath = spec_path_join(c, s->path, "nixStorePrefix");
        const nri_node *n = spec_opt(pn, "nixStorePrefix");
        const char *why;
        bool strip;
        int r;

        r = spec_get_bool(c, pn, s->path, "stripNixStorePrefix", false, &strip);
        if (r < 0)
                return r;
        s->p->nix_store_prefix = strip ? "/" : c->store_dir;
        s->prefix_node = n;
        if (!n)
                return 0;
        if (n->kind != NRI_STRING && n->kind != NRI_PATH)
                return FAIL(c, n, "%s: expected a string, got %s", ppath, nri_kind_describe(n->kind));
        if (n->has_context)
                return FAIL(c, n, "%s: %s refers to the store; the prefix is a directory inside the image",
                            ppath, spec_quote(c, n->str.s));
        why = nri_normalise_path(c->a, n->str.s, &s->p->nix_store_prefix);
        if (why)
                return FAIL(c, n, "%s: %s %s", ppath, spec_quote(c, n->str.s), why);
        if (strip && !streq(s->p->nix_store_prefix, "/"))
                return FAIL(
                    c, n,
                    "%s: %s conflicts with stripNixStorePrefix = true, which means \"/\"; set only one "
                    "of them",
                    ppath, spec_quote(c, n->str.s));
        return 0;
}

int spec_parse_registration(ctx *c, part_state *s, const nri_node *pn) {
        int r;

        r = spec_get_bool(c, pn, s->path, "nixPathRegistration", false, &s->p->nix_path_registration);
        if (r < 0)
                return r;
        if (s->p->nix_path_registration && s->p->n_store_paths == 0)
                return FAIL(c, spec_opt(pn, "nixPathRegistration"),
                            "%s: true, but the partition has no storePaths whose closure it would register",
                            spec_path_join(c, s->path, "nixPathRegistration"));
        return 0;
}

/* Only our ext4 writer makes the hard links; refused elsewhere rather than
 * quietly written as copies. */
int spec_parse_dedup(ctx *c, part_state *s, const nri_node *pn) {
        int r;

        r = spec_get_bool(c, pn, s->path, "deduplicateStore", false, &s->p->deduplicate_store);
        if (r < 0)
                return r;
        if (s->p->deduplicate_store && s->p->format != NRI_FORMAT_EXT4)
                return FAIL(c, spec_opt(pn, "deduplicateStore"),
                            "%s: true, but the partition's format is %s: only ext4 is written with "
                            "deduplicated files (set %s.Format = \"ext4\")",
                            spec_path_join(c, s->path, "deduplicateStore"),
                            s->p->format == NRI_FORMAT_NONE ? "null (no file system)"
                                                            : nri_format_to_string(s->p->format),
                            s->cfg_path);
        return 0;
}

/* ---- partitions: names the file system cannot hold ---------------------- */

/* A path the partition's file system gets, known before anything is built:
 * where it was written, and as which attribute. */
typedef struct target {
        const char *path; /* absolute, normalised */
        const char *fold; /* the path as the file system compares it */
        const char *attr;
        const nri_node *node;
} target;

typedef struct targets {
        target *items;
        size_t n, cap;
} targets;

static int by_fold(const void *x, const void *y) {
        const target *a = x, *b = y;
        int r = strcmp(a->fold, b->fold);

        return r ? r : strcmp(a->path, b->path);
}

static void add_target(ctx *c, targets *t, const char *path, const char *attr, const nri_node *node) {
        t->items = spec_grow(c, t->items, t->n, &t->cap, sizeof(target));
        t->items[t->n++] = (target){.path = path, .attr = attr, .node = node};
}

/* Each name of target i's path, and each of its directories as a target
 * too: "/EFI/BOOT" and "/efi" cannot both be there. */
static int check_path(ctx *c, const nri_fs_type *fs, targets *t, size_t i) {
        const char *path = t->items[i].path, *attr = t->items[i].attr;
        const nri_node *node = t->items[i].node;
        char buf[128];

        for (const char *p = path; *p;) {
                size_t len;
                const char *name, *why;

                p += strspn(p, "/");
                len = strcspn(p, "/");
                if (!len)
                        break;
                name = nri_strndup(c->a, p, len);
                why = fs->names->problem(name, buf, sizeof(buf));
                if (why)
                        return FAIL(c, node, "%s: %s: %s (the partition is %s)", attr, spec_quote(c, path),
                                    why, fs->name);
                p += len;
                if (*p)
                        add_target(c, t, nri_strndup(c->a, path, (size_t)(p - path)), attr, node);
        }
        return 0;
}

/* Two targets the file system takes for the same name. */
static int check_folds(ctx *c, const nri_fs_type *fs, targets *t) {
        target *items = t->items;

        for (size_t i = 0; i < t->n; i++) {
                _cleanup_free_ char *fold = fs->names->fold(items[i].path);

                if (!fold)
                        return FAIL(c, items[i].node, "%s: %s is not valid UTF-8", items[i].attr,
                                    spec_quote(c, items[i].path));
                items[i].fold = nri_strdup(c->a, fold);
        }
        qsort(items, t->n, sizeof(target), by_fold);
        for (size_t i = 1; i < t->n; i++)
                if (streq(items[i].fold, items[i - 1].fold) && !streq(items[i].path, items[i - 1].path))
                        return FAIL(c, items[i].node,
                                    "%s: %s and %s (%s) differ only in case; %s compares names "
                                    "case-insensitively and cannot hold both (the partition is %s)",
                                    items[i].attr, spec_quote(c, items[i].path),
                                    spec_quote(c, items[i - 1].path), items[i - 1].attr, fs->names->family,
                                    fs->name);
        return 0;
}

int spec_check_names(ctx *c, part_state *s) {
        const nri_partition *p = s->p;
        const nri_fs_type *fs = nri_fs_type_of(p->format);
        const char *prefix = streq(p->nix_store_prefix, "/") ? "" : p->nix_store_prefix;
        targets t = {0};
        size_t known;
        int r;

        if (!fs || !fs->names)
                return 0;
        for (size_t i = 0; i < p->n_contents; i++)
                add_target(c, &t, p->contents[i].target,
                           spec_path_join(c, spec_path_join(c, s->path, "contents"), p->contents[i].target),
                           s->content_nodes[i]);
        for (size_t i = 0; i < p->n_copy_files; i++)
                add_target(c, &t, p->copy_files[i].target, spec_path_join(c, s->cfg_path, "CopyFiles"),
                           s->copy_nodes[i]);
        for (size_t i = 0; i < p->n_make_directories; i++)
                add_target(c, &t, p->make_directories[i], spec_path_join(c, s->cfg_path, "MakeDirectories"),
                           s->dir_nodes[i]);
        /* Where each store path lands: <prefix>/<hash>-<name>; their
         * closures are known only to the builder, which checks them. */
        for (size_t i = 0; i < p->n_store_paths; i++)
                add_target(c, &t, nri_printf(c->a, "%s/%s", prefix, strrchr(p->store_paths[i], '/') + 1),
                           spec_path_join(c, s->path, "storePaths"), s->store_nodes[i]);
        known = t.n;
        for (size_t i = 0; i < known; i++) {
                r = check_path(c, fs, &t, i);
                if (r < 0)
                        return r;
        }
        if (t.n == 0 || !fs->names->fold)
                return 0;
        return check_folds(c, fs, &t);
}
