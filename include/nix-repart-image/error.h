/* error.h: an error of the C core, as a value.
 *
 * The core does not print: the evaluator turns an error into a Nix
 * evaluation error at a position, the builder logs it (plugin/builder/
 * log.h).  Every message starts with what it is about: the attribute path
 * at evaluation ("partitions.root.repartConfig.SizeMinBytes: …"), the
 * field when a spec is read back ("repartSpec.partitions[0].label: …").
 * `where` is the evaluator's node whose position the shim reports
 * (plugin/eval/node.h; NULL: the position of the primop call, and always
 * NULL in the builder). */
#pragma once

#include "arena.h"

struct nri_node;

typedef struct nri_error {
        char *message;
        const struct nri_node *where;
} nri_error;

/* Sets *err (when not NULL) and returns -EINVAL, so a check can
 * `return nri_fail(…)`. */
int nri_fail(nri_arena *a, nri_error *err, const struct nri_node *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
