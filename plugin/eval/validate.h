/* validate.h: the checks and the words of messages that reading the
 * argument shares (validate.c): attribute paths as Nix writes them, "did
 * you mean", value kinds, strings that name the store and their contexts,
 * specifiers; and the arena arrays the lists of a partition grow in. */
#pragma once

#include "spec-args-internal.h"

/* Whether `s` is in the NULL-terminated `set`. */
static inline bool str_in(const char *s, const char *const *set) {
        for (; *set; set++)
                if (streq(s, *set))
                        return true;
        return false;
}

/* `s` quoted and escaped for a message (spec-rules.h). */
static inline const char *spec_quote(ctx *c, const char *s) {
        return nri_quote(c->a, s);
}
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

/* `items` (n of them, room for *cap) with room for one more. */
void *spec_grow(ctx *c, void *items, size_t n, size_t *cap, size_t size);
/* Appends one `nri_copy` to a list, and where it was written to the list
 * of nodes beside it. */
void spec_add_copy(ctx *c, nri_copy **items, size_t *n, size_t *cap, const nri_node ***nodes,
                   size_t *cap_nodes, const char *source, const char *target, const nri_node *node);
