/* Fuzz target: the evaluator's core, nri_spec_from_args(), on any argument
 * tree — what the shim would make of any Nix value — with a host that
 * imports paths, coerces sets and keeps contexts as the shim does.
 *
 * Input: JSON.  {"args": A, "readOnly": B} or just A.  In A, JSON values
 * are Nix values, and objects with a "$" key stand for what JSON lacks:
 *   {"$path": "/x"}                                 a path literal
 *   {"$str": "/nix/store/…", "$ctx": ["/nix/store/…", …],
 *    "$unresolved": "why"}                          a string with context
 *   {"$coerce": V}                                  a set with outPath or
 *                                                   __toString giving V
 *   {"$fn": 1}, {"$deep": 1}                        a function, a value
 *                                                   below the depth limit
 * so that sets standing for strings, strings whose context names another
 * store path than they do, unresolvable contexts and reserved names
 * (/lost+found) are all reachable.
 *
 * What must hold whenever the argument is accepted:
 *   - every source and store path the spec copies is one the context of
 *     the string that named it makes available (or a path the host
 *     imported), unless the context could not be resolved in read-only
 *     evaluation;
 *   - the builder reads back what the evaluator writes (spec-json.h), and
 *     the derivation's attributes can be made;
 *   - the builder's layout succeeds with each format's least content, and
 *     every label and partition count is one the builder can write.
 * And a refusal always says why.  Built with libFuzzer (tests/fuzz/run) or
 * with driver.c, which replays tests/fuzz/corpus/args (meson test). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "nix-repart-image/labels.h"
#include "nix-repart-image/layout.h"
#include "nix-repart-image/spec-json.h"
#include "nix-repart-image/spec.h"
#include "spec-args.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STORE "/nix/store/"
#define HASH "0123456789abcdfghijklmnpqrsvwxyz"
#define MAX_USED 4096

typedef struct used {
        const nri_node *node;
        const char *path;
} used;

typedef struct fuzz_host {
        nri_arena *a;
        used uses[MAX_USED];
        size_t n_uses;
        const char *imported[MAX_USED];
        size_t n_imported;
} fuzz_host;

static nri_node *convert(nri_arena *a, const cJSON *j, unsigned depth);

static nri_node *node_new(nri_arena *a, nri_kind kind) {
        nri_node *n = nri_alloc(a, sizeof(nri_node));

        memset(n, 0, sizeof(*n));
        n->kind = kind;
        n->pos = n;
        return n;
}

static void set_str(nri_arena *a, nri_node *n, const char *s) {
        n->str.s = nri_strdup(a, s);
        n->str.len = strlen(s);
}

static int attr_order(const void *x, const void *y) {
        return strcmp(((const nri_attr *)x)->name, ((const nri_attr *)y)->name);
}

static nri_node *convert_special(nri_arena *a, const cJSON *j, unsigned depth) {
        const cJSON *v;

        if ((v = cJSON_GetObjectItemCaseSensitive(j, "$path")) && cJSON_IsString(v)) {
                nri_node *n = node_new(a, NRI_PATH);
                set_str(a, n, v->valuestring);
                return n;
        }
        if ((v = cJSON_GetObjectItemCaseSensitive(j, "$str")) && cJSON_IsString(v)) {
                const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(j, "$ctx"),
                            *why = cJSON_GetObjectItemCaseSensitive(j, "$unresolved"), *e;
                nri_node *n = node_new(a, NRI_STRING);
                size_t count = 0;
                const char **paths;

                set_str(a, n, v->valuestring);
                cJSON_ArrayForEach(e, ctx) count += cJSON_IsString(e);
                paths = nri_alloc(a, (count + 1) * sizeof(char *));
                count = 0;
                cJSON_ArrayForEach(e, ctx) if (cJSON_IsString(e)) paths[count++] =
                    nri_strdup(a, e->valuestring);
                paths[count] = NULL;
                n->context.paths = paths;
                n->context.n_paths = count;
                n->context.unresolved = cJSON_IsString(why) ? nri_strdup(a, why->valuestring) : NULL;
                n->has_context = ctx != NULL || n->context.unresolved;
                return n;
        }
        if ((v = cJSON_GetObjectItemCaseSensitive(j, "$coerce"))) {
                nri_node *n = node_new(a, NRI_COERCIBLE);
                /* What the fake host's coerce() gives, kept where the core
                 * never looks for an NRI_COERCIBLE. */
                n->list.n = 1;
                n->list.items = nri_alloc(a, sizeof(nri_node *));
                n->list.items[0] = convert(a, v, depth);
                return n;
        }
        if (cJSON_GetObjectItemCaseSensitive(j, "$fn"))
                return node_new(a, NRI_FUNCTION);
        if (cJSON_GetObjectItemCaseSensitive(j, "$deep"))
                return node_new(a, NRI_DEEP);
        return NULL;
}

static nri_node *convert(nri_arena *a, const cJSON *j, unsigned depth) {
        nri_node *n;
        const cJSON *e;
        size_t i = 0;

        if (depth > NRI_NODE_MAX_DEPTH)
                return node_new(a, NRI_DEEP);
        if (cJSON_IsNull(j))
                return node_new(a, NRI_NULL);
        if (cJSON_IsBool(j)) {
                n = node_new(a, NRI_BOOL);
                n->b = cJSON_IsTrue(j);
                return n;
        }
        if (cJSON_IsNumber(j)) {
                double d = j->valuedouble;

                if (d >= -9.2e18 && d <= 9.2e18 && d == (double)(int64_t)d) {
                        n = node_new(a, NRI_INT);
                        n->i = (int64_t)d;
                } else {
                        n = node_new(a, NRI_FLOAT);
                        n->f = d;
                }
                return n;
        }
        if (cJSON_IsString(j)) {
                n = node_new(a, NRI_STRING);
                set_str(a, n, j->valuestring);
                return n;
        }
        if (cJSON_IsArray(j)) {
                n = node_new(a, NRI_LIST);
                n->list.n = (size_t)cJSON_GetArraySize(j);
                n->list.items = nri_alloc(a, (n->list.n + 1) * sizeof(nri_node *));
                cJSON_ArrayForEach(e, j) n->list.items[i++] = convert(a, e, depth + 1);
                return n;
        }
        if (!cJSON_IsObject(j))
                return node_new(a, NRI_DEEP);
        if ((n = convert_special(a, j, depth)))
                return n;
        n = node_new(a, NRI_ATTRS);
        n->attrs.n = (size_t)cJSON_GetArraySize(j);
        n->attrs.items = nri_alloc(a, (n->attrs.n + 1) * sizeof(nri_attr));
        cJSON_ArrayForEach(e, j) {
                n->attrs.items[i].name = nri_strdup(a, e->string);
                n->attrs.items[i++].value = convert(a, e, depth + 1);
        }
        qsort(n->attrs.items, n->attrs.n, sizeof(nri_attr), attr_order);
        /* Nix attribute names are unique. */
        for (size_t k = 1; k < n->attrs.n; k++)
                if (strcmp(n->attrs.items[k - 1].name, n->attrs.items[k].name) == 0)
                        return node_new(a, NRI_DEEP);
        return n;
}

/* ---- the host ----------------------------------------------------------- */

static int host_import(void *ctx, const nri_node *node, const char **ret, nri_error *err) {
        fuzz_host *h = ctx;
        const char *base = strrchr(node->str.s, '/');

        base = base ? base + 1 : node->str.s;
        if (!*base || base[0] == '.' ||
            strspn(base, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789+-._?=") != strlen(base) ||
            strlen(base) > 200)
                return nri_fail(h->a, err, node, "cannot copy %s into the Nix store", node->str.s);
        *ret = nri_printf(h->a, STORE HASH "-%s", base);
        if (h->n_imported < MAX_USED)
                h->imported[h->n_imported++] = *ret;
        return 0;
}

static void host_use(void *ctx, const nri_node *node, const char *store_path) {
        fuzz_host *h = ctx;

        if (h->n_uses < MAX_USED)
                h->uses[h->n_uses++] = (used){node, store_path};
}

static int host_coerce(void *ctx, const nri_node *node, const nri_node **ret, nri_error *err) {
        fuzz_host *h = ctx;
        const nri_node *to = node->list.items[0];

        if (to->kind != NRI_STRING)
                return nri_fail(h->a, err, node, "cannot coerce %s to a string",
                                nri_kind_describe(to->kind));
        *ret = to;
        return 0;
}

/* ---- what must hold ----------------------------------------------------- */

static size_t store_path_len(const char *s) {
        size_t len;

        if (strncmp(s, STORE, strlen(STORE)) != 0)
                return 0;
        len = strlen(STORE) + strcspn(s + strlen(STORE), "/");
        return len > strlen(STORE) + 33 ? len : 0;
}

/* The store path of `source` is one the host imported, or one that the
 * context of a string the core used for it makes available. */
static void check_covered(const fuzz_host *h, const char *source, bool read_only) {
        size_t len = store_path_len(source);

        if (!len)
                abort(); /* a source outside the store */
        for (size_t i = 0; i < h->n_imported; i++)
                if (strncmp(h->imported[i], source, len) == 0 && h->imported[i][len] == 0)
                        return;
        for (size_t i = 0; i < h->n_uses; i++) {
                const used *u = &h->uses[i];

                if (strncmp(u->path, source, len) != 0 || (u->path[len] && u->path[len] != '/'))
                        continue;
                for (size_t k = 0; k < u->node->context.n_paths; k++)
                        if (strncmp(u->node->context.paths[k], source, len) == 0 &&
                            u->node->context.paths[k][len] == 0)
                                return;
                if (u->node->context.unresolved && read_only)
                        return;
        }
        if (h->n_uses < MAX_USED && h->n_imported < MAX_USED)
                abort(); /* copied, but the derivation would not depend on it */
}

static void check_spec(nri_arena *a, const nri_spec *spec, const fuzz_host *h, bool read_only) {
        nri_layout_part *parts;
        nri_spec *back = NULL;
        nri_error error = {0};
        cJSON *j, *drv;

        if (spec->n_partitions == 0 || spec->n_partitions > NRI_GPT_ENTRIES)
                abort();
        for (size_t i = 0; i < spec->n_partitions; i++) {
                const nri_partition *p = &spec->partitions[i];

                if (nri_gpt_label_problem(p->label))
                        abort();
                if (p->format == NRI_FORMAT_VFAT) {
                        char *fat = NULL;

                        if (nri_vfat_mangle_label(p->label, &fat) < 0 || nri_vfat_label_problem(fat))
                                abort();
                        free(fat);
                }
                for (size_t k = 0; k < p->n_contents; k++)
                        check_covered(h, p->contents[k].source, read_only);
                for (size_t k = 0; k < p->n_copy_files; k++)
                        check_covered(h, p->copy_files[k].source, read_only);
                for (size_t k = 0; k < p->n_store_paths; k++) {
                        if (store_path_len(p->store_paths[k]) != strlen(p->store_paths[k]))
                                abort(); /* not a whole store path */
                        check_covered(h, p->store_paths[k], read_only);
                }
        }

        /* The builder's layout, before it reads any content. */
        parts = calloc(spec->n_partitions, sizeof(*parts));
        for (size_t i = 0; i < spec->n_partitions; i++) {
                parts[i] = nri_spec_layout_part(&spec->partitions[i]);
                parts[i].content_min = nri_format_min_size(spec->partitions[i].format);
        }
        if (nri_layout_compute(parts, spec->n_partitions, spec->sector_size, spec->image_size, NULL, NULL,
                               NULL, 0) < 0)
                abort();
        free(parts);

        /* What the evaluator writes, the builder reads. */
        j = nri_spec_to_json(spec);
        if (!j || nri_spec_from_json(a, j, &back, &error) != 0)
                abort();
        cJSON_Delete(j);
        drv = nri_spec_derivation_json(spec, &(nri_builder_ref){.bundle = STORE HASH "-bundle"},
                                       "x86_64-linux");
        if (!drv)
                abort();
        cJSON_Delete(drv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        cJSON *j = cJSON_ParseWithLength((const char *)data, size);
        const cJSON *args_json, *ro;
        nri_arena *a;
        fuzz_host *h;
        nri_host host;
        nri_spec *spec = NULL;
        nri_error err = {0};

        if (!j)
                return 0;
        args_json = cJSON_GetObjectItemCaseSensitive(j, "args");
        ro = cJSON_GetObjectItemCaseSensitive(j, "readOnly");
        if (!args_json)
                args_json = j;
        a = nri_arena_new();
        h = calloc(1, sizeof(*h));
        h->a = a;
        host = (nri_host){
            .store_dir = "/nix/store",
            .system = "x86_64-linux",
            .ctx = h,
            .import_path = host_import,
            .use_context = host_use,
            .coerce = host_coerce,
            .read_only = cJSON_IsTrue(ro),
        };
        if (nri_spec_from_args(a, convert(a, args_json, 0), &host, &spec, &err) == 0)
                check_spec(a, spec, h, host.read_only);
        else if (!err.message || !*err.message)
                abort(); /* a refusal always says why */
        if (getenv("NRI_FUZZ_VERBOSE"))
                fprintf(stderr, "%s\n", spec ? "accepted" : err.message);
        free(h);
        nri_arena_free(a);
        cJSON_Delete(j);
        return 0;
}
