/* error.c: recording an error of the core (error.h). */
#include "nix-repart-image/error.h"

#include <errno.h>
#include <stdarg.h>

int nri_fail(nri_arena *a, nri_error *err, const struct nri_node *where, const char *fmt, ...) {
        va_list ap;

        /* A caller that only wants to know whether a value is valid may pass
         * no error to fill. */
        if (!err)
                return -EINVAL;

        va_start(ap, fmt);
        err->message = nri_vprintf(a, fmt, ap);
        va_end(ap);
        err->where = where;
        return -EINVAL;
}
