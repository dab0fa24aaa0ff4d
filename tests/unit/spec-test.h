/* spec-test.h: what test-spec.c and test-spec-json.c share — argument
 * trees built in C as the shim builds them from Nix values, a host that
 * imports paths and records contexts, and the checks of a normalised spec
 * and of an error. */
#pragma once

#include <stdarg.h>
#include <stdlib.h>

#include "check.h"
#include "nix-repart-image/spec-json.h"
#include "nix-repart-image/spec.h"
#include "spec-args.h"

#define SEED "0867da16-f251-457d-a9e8-c31f9a3c220b"
#define H1 "0123456789abcdfghijklmnpqrsvwxyz"
#define H2 "zyxwvsrqpnmlkjihgfdcba9876543210"
#define TOPLEVEL "/nix/store/" H1 "-nixos-system"
#define SYSTEMD "/nix/store/" H2 "-systemd-252"

static nri_arena *A;

/* ---- building argument trees -------------------------------------------- */

static inline nri_node *mk(nri_kind kind) {
        nri_node *n = nri_alloc(A, sizeof(nri_node));

        n->kind = kind;
        n->pos = n; /* any distinct non-NULL position will do */
        return n;
}

static inline nri_node *str_kind(nri_kind kind, const char *s, bool context) {
        nri_node *n = mk(kind);

        n->str.s = nri_strdup(A, s);
        n->str.len = strlen(s);
        n->has_context = context;
        return n;
}

static inline nri_node *S(const char *s) {
        return str_kind(NRI_STRING, s, false);
}

/* A string whose context makes the store paths `paths` (NULL-terminated)
 * available, and names none it cannot resolve. */
static inline nri_node *SCX(const char *s, const char *const *paths) {
        nri_node *n = str_kind(NRI_STRING, s, true);
        size_t count = 0;

        while (paths[count])
                count++;
        n->context.paths = paths;
        n->context.n_paths = count;
        return n;
}

/* A string with the context of the store path it names, as "${drv}/…" has
 * (or, for a string outside the store, the context of TOPLEVEL). */
static inline nri_node *SC(const char *s) {
        const char **paths = nri_alloc(A, 2 * sizeof(char *)); /* zeroed: paths[1] ends the list */
        size_t hash_end = strlen("/nix/store/") + 32 + 1;

        if (strncmp(s, "/nix/store/", strlen("/nix/store/")) == 0 && strlen(s) > hash_end)
                paths[0] = nri_strndup(A, s, hash_end + strcspn(s + hash_end, "/"));
        else
                paths[0] = TOPLEVEL;
        return SCX(s, paths);
}

static inline nri_node *PATH(const char *s) {
        return str_kind(NRI_PATH, s, false);
}

/* A set Nix coerces to a string: the host's coerce() gives `to`. */
static inline nri_node *COERCE(nri_node *to) {
        nri_node *n = mk(NRI_COERCIBLE);

        n->list.n = 1;
        n->list.items = nri_alloc(A, sizeof(nri_node *));
        n->list.items[0] = to; /* where the fake host finds it; the core never looks */
        return n;
}

/* A derivation whose outPath is `out`, with its context. */
static inline nri_node *DRV(const char *out) {
        return COERCE(SC(out));
}

static inline nri_node *I(int64_t v) {
        nri_node *n = mk(NRI_INT);

        n->i = v;
        return n;
}

static inline nri_node *B(bool v) {
        nri_node *n = mk(NRI_BOOL);

        n->b = v;
        return n;
}

static inline nri_node *NUL(void) {
        return mk(NRI_NULL);
}

static inline nri_node *LIST(size_t n, ...) {
        nri_node *l = mk(NRI_LIST);
        va_list ap;

        l->list.n = n;
        l->list.items = nri_alloc(A, n * sizeof(nri_node *) + 1);
        va_start(ap, n);
        for (size_t i = 0; i < n; i++)
                l->list.items[i] = va_arg(ap, nri_node *);
        va_end(ap);
        return l;
}

static inline int attr_cmp(const void *a, const void *b) {
        return strcmp(((const nri_attr *)a)->name, ((const nri_attr *)b)->name);
}

/* ATTRS("a", node, "b", node, NULL), sorted by name as the shim sorts. */
static inline nri_node *ATTRS(const char *first, ...) {
        nri_node *n = mk(NRI_ATTRS);
        nri_attr items[32];
        size_t count = 0;
        va_list ap;

        va_start(ap, first);
        for (const char *name = first; name; name = va_arg(ap, const char *)) {
                items[count].name = name;
                items[count++].value = va_arg(ap, nri_node *);
        }
        va_end(ap);
        qsort(items, count, sizeof(nri_attr), attr_cmp);
        n->attrs.n = count;
        n->attrs.items = nri_alloc(A, count * sizeof(nri_attr) + 1);
        memcpy(n->attrs.items, items, count * sizeof(nri_attr));
        return n;
}

static inline nri_node *image(nri_node *partitions) {
        return ATTRS("name", S("image"), "partitions", partitions, NULL);
}

static inline nri_node *part(nri_node *repart_config) {
        return ATTRS("repartConfig", repart_config, NULL);
}

static inline nri_node *root_part(void) {
        return part(ATTRS("Type", S("root"), NULL));
}

/* ---- a host that imports paths and records used contexts --------------- */

static int n_used;
static const nri_node *used[16];
static const char *used_path[16];

static inline int fake_import(void *ctx, const nri_node *node, const char **ret, nri_error *err) {
        const char *base = strrchr(node->str.s, '/');

        (void)ctx;
        (void)err;
        *ret = nri_printf(A, "/nix/store/%s-%s", H2, base ? base + 1 : node->str.s);
        return 0;
}

static inline void fake_use(void *ctx, const nri_node *node, const char *store_path) {
        (void)ctx;
        if (n_used < 16) {
                used[n_used] = node;
                used_path[n_used] = store_path;
        }
        n_used++;
}

static inline int fake_coerce(void *ctx, const nri_node *node, const nri_node **ret, nri_error *err) {
        (void)ctx;
        (void)err;
        *ret = node->list.items[0];
        return 0;
}

static nri_host host = {
    .store_dir = "/nix/store",
    .system = "x86_64-linux",
    .import_path = fake_import,
    .use_context = fake_use,
    .coerce = fake_coerce,
};

static inline nri_spec *normalise(const nri_node *args) {
        nri_error err = {0};
        nri_spec *spec = NULL;

        n_used = 0;
        if (nri_spec_from_args(A, args, &host, &spec, &err) < 0) {
                fprintf(stderr, "unexpected error: %s\n", err.message);
                return NULL;
        }
        return spec;
}

static inline const char *uuid_text(const nri_uuid *u) {
        char *buf = nri_alloc(A, NRI_UUID_STRING_MAX);

        nri_uuid_format(u, buf);
        return buf;
}

/* The spec must be refused with a message starting with `prefix` and
 * pointing at `where`. */
#define CHECK_ERROR(args, prefix, where) check_error((args), (prefix), (where), __LINE__)

static inline void check_error(const nri_node *args, const char *prefix, const nri_node *where, int line) {
        nri_error err = {0};
        nri_spec *spec = NULL;
        int r = nri_spec_from_args(A, args, &host, &spec, &err);

        check_count++;
        if (r >= 0 || !err.message) {
                check_failures++;
                fprintf(stderr, "%s:%d: accepted, want an error starting with \"%s\"\n", __FILE__, line,
                        prefix);
                return;
        }
        if (strncmp(err.message, prefix, strlen(prefix)) != 0) {
                check_failures++;
                fprintf(stderr, "%s:%d: message \"%s\"\n  does not start with \"%s\"\n", __FILE__, line,
                        err.message, prefix);
        }
        check_count++;
        if (err.where != where) {
                check_failures++;
                fprintf(stderr, "%s:%d: error \"%s\" points at the wrong node\n", __FILE__, line,
                        err.message);
        }
}

