/* log.c: the builder's messages (log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static bool muted;

bool nri_log_mute(bool m) {
        bool was = muted;

        muted = m;
        return was;
}

int nri_log_full(int error, const char *fmt, ...) {
        char *line = NULL;
        va_list ap;
        int saved = errno, n;

        if (muted)
                return error;
        if (error < 0)
                errno = -error;
        va_start(ap, fmt);
        n = vasprintf(&line, fmt, ap);
        va_end(ap);
        /* One write: lines of the worker thread and of the walk do not
         * interleave. */
        if (n >= 0)
                fprintf(stderr, NRI_LOG_PREFIX "%s\n", line);
        free(line);
        errno = saved;
        return error;
}
