/* error.h: an evaluation-time error of the C core.
 *
 * Every message starts with the attribute path it is about
 * ("partitions.root.repartConfig.SizeMinBytes: …"); `where` is the node whose
 * position the shim reports (NULL: the position of the primop call). */
#pragma once

#include "arena.h"
#include "node.h"

typedef struct nri_error {
        char *message;
        const nri_node *where;
} nri_error;

/* Sets *err and returns -EINVAL, so validators can `return nri_fail(…)`. */
int nri_fail(nri_arena *a, nri_error *err, const nri_node *where, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
