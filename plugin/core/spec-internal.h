/* spec-internal.h: what the files that make the spec share — the state of
 * nri_spec_from_args() and of the partition being read, and the helpers
 * each of them calls.  Not installed; only plugin/core/ includes it.
 *
 *   spec.c                the top level, the partitions, their UUIDs and labels
 *   repart-config.c       a partition's repartConfig
 *   partition-contents.c  a partition's contents, storePaths and store prefix
 *   validate.c            the checks and message helpers all of them use */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nix-repart-image/macro.h"
#include "nix-repart-image/spec.h"

/* Pathname limits systemd's path_is_valid() checks. */
#define NRI_PATH_MAX 4096
#define NRI_NAME_MAX 255

/* The grain systemd-repart rounds sizes in repart.d files to. */
#define SIZE_GRAIN 4096

typedef struct ctx {
        nri_arena *a;
        nri_error *err;
        const nri_host *host;
        const char *store_dir;
        nri_spec *spec;
} ctx;

#define FAIL(c, where, ...) nri_fail((c)->a, (c)->err, (where), __VA_ARGS__)

/* ---- a partition while it is read --------------------------------------- */

enum { TRI_READ_ONLY, TRI_NO_AUTO, TRI_GROWFS, _TRI_MAX };
enum { SZ_MIN, SZ_MAX, PAD_MIN, PAD_MAX, _SZ_MAX };

typedef struct part_state {
        nri_partition *p;
        const char *path;     /* partitions.<id> */
        const char *cfg_path; /* partitions.<id>.repartConfig */
        const nri_node *cfg;
        const nri_node *type_node, *uuid_node, *label_node, *format_node, *minimize_node, *split_node;
        const nri_node *size_node[_SZ_MAX];
        const nri_node *tri_node[_TRI_MAX];
        int tri[_TRI_MAX]; /* -1: not set */
        bool uuid_set, label_set;
        unsigned label_k; /* default label: 1 for "<type>", k for "<type>-k" */
        size_t cap_contents, cap_copy, cap_dirs, cap_dir_nodes;
        const nri_node **dir_nodes;   /* where each MakeDirectories= entry was written */
        const nri_node **store_nodes; /* where each storePaths element was written */
        const nri_node *prefix_node;  /* nixStorePrefix, or NULL */
        const char *split_resolved;
} part_state;

/* ---- validate.c --------------------------------------------------------- */

/* Whether `s` is in the NULL-terminated `set`. */
static inline bool str_in(const char *s, const char *const *set) {
        for (; *set; set++)
                if (streq(s, *set))
                        return true;
        return false;
}

/* `s` quoted and escaped for a message. */
const char *spec_quote(ctx *c, const char *s);
/* The attribute path `base`.`name`, with `name` quoted where Nix needs it;
 * `base` may be NULL or "". */
const char *spec_path_join(ctx *c, const char *base, const char *name);
/* The candidate `name` is most likely a misspelling of, or NULL. */
const char *spec_nearest(const char *name, const char *const *candidates);
/* The names, comma-separated. */
const char *spec_join_names(ctx *c, const char *const *names);

/* An attribute refused with a reason of its own. */
typedef struct refusal {
        const char *name;
        const char *reason;
} refusal;

/* Refuses every attribute of `attrs` that is not in `known`, with the
 * reason in `refused` (NULL-terminated, may be NULL) or a "did you mean". */
int spec_check_fields(ctx *c, const nri_node *attrs, const char *path, const char *const *known,
                      const refusal *refused);

/* An optional attribute: NULL when absent. */
static inline const nri_node *spec_opt(const nri_node *attrs, const char *name) {
        return nri_node_attr(attrs, name);
}

int spec_expect(ctx *c, const nri_node *n, const char *path, nri_kind kind);
int spec_require(ctx *c, const nri_node *attrs, const char *path, const char *name, const nri_node **ret);
/* An optional Boolean attribute, `def` when absent. */
int spec_get_bool(ctx *c, const nri_node *attrs, const char *path, const char *name, bool def, bool *ret);

/* Why each is not acceptable as the spec's image name or version, partition
 * name, or (expanded) partition label: a phrase to follow "<path>: " in a
 * message; NULL when it is.  The evaluator's checks and the builder's
 * (spec-check.c) both call these. */
const char *spec_why_not_file_name_part(ctx *c, const char *s);
const char *spec_why_not_partition_name(ctx *c, const char *s);
const char *spec_why_not_label(ctx *c, const char *label);
/* A SplitName= other than "" and "-" (the default and none). */
const char *spec_why_not_split_name(ctx *c, const char *t);

/* The absolute path `in`, normalised into *ret; NULL, or why it is not
 * acceptable (a phrase to follow the quoted path in a message). */
const char *spec_normalise_path(ctx *c, const char *in, const char **ret);
/* The length of the store path `s` is or is inside of; 0 when `s` is not
 * in the store. */
size_t spec_store_path_length(const char *store_dir, const char *s);
/* The set `n` (NRI_COERCIBLE) as the string "${n}" gives, through the
 * shim, into *ret. */
int spec_coerce(ctx *c, const nri_node *n, const char *path, const nri_node **ret);
/* The store path `s` (normalised) is inside must be one the context of the
 * string `n` makes available, or the derivation would not depend on it. */
int spec_check_context(ctx *c, const nri_node *n, const char *path, const char *s);
/* A string naming something in the store, as `what` (e.g. "source"):
 * normalised into *ret, with its context kept for the derivation. */
int spec_store_string(ctx *c, const nri_node *n, const char *path, const char *what, const char *s,
                      const char **ret);
/* `s` with "%%" made "%"; any other specifier is refused. */
int spec_expand_percent(ctx *c, const nri_node *n, const char *path, const char *s, const char **ret);

/* ---- partition-contents.c ----------------------------------------------- */

/* `items` (n of them, room for *cap) with room for one more. */
void *spec_grow(ctx *c, void *items, size_t n, size_t *cap, size_t size);
void spec_add_copy(ctx *c, nri_copy **items, size_t *n, size_t *cap, const char *source, const char *target,
                   const nri_node *node);

/* The attributes `contents`, `storePaths`, and `nixStorePrefix` with
 * `stripNixStorePrefix`, of the partition `pn`. */
int spec_parse_contents(ctx *c, part_state *s, const nri_node *pn);
int spec_parse_store_paths(ctx *c, part_state *s, const nri_node *pn);
int spec_parse_store_prefix(ctx *c, part_state *s, const nri_node *pn);
/* Once the format is known: a vfat partition's targets must be names FAT
 * holds (fat-names.h), and differ in more than case. */
int spec_check_fat_names(ctx *c, part_state *s);

/* ---- repart-config.c ---------------------------------------------------- */

/* Reads every key of s->cfg into s->p. */
int spec_parse_repart_config(ctx *c, part_state *s);
/* Once all of the partition is read: sizes against each other, the
 * implied Format= and Minimize=, then the flags. */
int spec_check_ranges(ctx *c, part_state *s);
int spec_check_format(ctx *c, part_state *s);
int spec_merge_flags(ctx *c, part_state *s);
