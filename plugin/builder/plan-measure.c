/* plan-measure.c: measuring a plan (nri_plan_measure(), plan.h) — a
 * visitor that counts what the walk visits, and reads each file once for
 * its blocks of zeros (on the worker's thread while the walk goes on). */
#include "plan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "worker.h"

/* A failed call, with its errno's text (log.h). */
#define log_errno(r, fmt, ...) log_error_errno((r), fmt ": %m", ##__VA_ARGS__)

enum { COUNT_CHUNK = 1 << 20 };

/* What is counted from the files' bytes: by the worker while the walk goes
 * on (see worker.h), and read once it is over. */
typedef struct data_counts {
        uint64_t data_blocks_4k;
        nri_plan_dense *dense;
        uint8_t *buf; /* COUNT_CHUNK bytes */
} data_counts;

typedef struct counter {
        nri_plan_stats st;
        data_counts data;
        nri_worker *worker; /* NULL: counted in the walk */
} counter;

static void count_name(nri_plan_stats *st, const nri_entry *e) {
        size_t len = strlen(e->name);

        st->name_bytes += len;
        if (strcmp(e->target, "/") != 0 && strchr(e->target + 1, '/') == NULL) {
                st->root_names++;
                st->root_name_bytes += len;
        }
}

static int count_directory(void *ctx, const nri_entry *e) {
        nri_plan_stats *st = &((counter *)ctx)->st;

        st->directories++;
        count_name(st, e);
        return 0;
}

/* The 4 KiB blocks of the file that hold something other than zeros: the
 * ext4 writer makes the others holes.  Counted from the content, not from
 * the holes the store's file system happens to keep, so the figure (and a
 * size Minimize=guess derives from it) is the same on every machine; ranges
 * the file system reports as holes are zeros and are not read. */
static int count_data_blocks(const nri_job *j, uint8_t *buf, uint64_t *ret) {
        static const uint8_t zero[4096];
        uint64_t n = 0;
        bool holes = j->flags; /* else no lseek() (a system call per file) */

        for (uint64_t off = 0; off < j->length; off += COUNT_CHUNK) {
                off_t data = holes ? lseek(j->fd, (off_t)off, SEEK_DATA) : (off_t)off;
                ssize_t got;

                if (data < 0 && errno == ENXIO)
                        break; /* only a hole from here on */
                if (data >= 0 && (uint64_t)data >= off + COUNT_CHUNK)
                        continue;
                got = pread(j->fd, buf, COUNT_CHUNK, (off_t)off);
                if (got < 0)
                        return log_errno(-errno, "%s: cannot read", j->source);
                for (ssize_t b = 0; b < got; b += 4096) {
                        size_t len = (size_t)(got - b) < 4096 ? (size_t)(got - b) : 4096;

                        if (memcmp(buf + b, zero, len) != 0)
                                n++;
                }
        }
        *ret = n;
        return 0;
}

static int set_dense(nri_plan_dense *d, size_t id) {
        if (id >= d->n_ids) {
                size_t n = d->n_ids ? d->n_ids : 4096;
                uint8_t *p;

                while (n <= id)
                        n *= 2;
                p = realloc(d->bits, n / 8);
                if (!p)
                        return -ENOMEM;
                memset(p + d->n_ids / 8, 0, (n - d->n_ids) / 8);
                d->bits = p;
                d->n_ids = n;
        }
        d->bits[id / 8] |= (uint8_t)(1u << (id % 8));
        return 0;
}

void nri_plan_dense_free(nri_plan_dense *d) {
        free(d->bits);
        *d = (nri_plan_dense){0};
}

/* A job of the worker's, or of the walk's when there is none. */
static int count_job(void *ctx, const nri_job *j) {
        data_counts *c = ctx;
        uint64_t data = 0;
        int r = count_data_blocks(j, c->buf, &data);

        if (r < 0)
                return r;
        c->data_blocks_4k += data;
        if (c->dense && data == (j->length + 4095) / 4096)
                return set_dense(c->dense, j->id);
        return 0;
}

static int count_file(void *ctx, const nri_entry *e, int fd) {
        counter *c = ctx;
        nri_plan_stats *st = &c->st;
        int r;
        nri_job j = {
            .fd = fd,
            .source = e->source,
            .length = e->size,
            .id = e->id,
            .flags = nri_entry_may_have_holes(e),
        };

        st->files++;
        st->bytes += e->size;
        st->blocks_4k += (e->size + 4095) / 4096;
        count_name(st, e);
        if (e->size == 0)
                return 0; /* no block, nothing to copy either way */
        if (!c->worker)
                return count_job(&c->data, &j);
        r = nri_worker_give(c->worker, &j); /* fd is the job's now */
        return r < 0 ? r : NRI_VISIT_KEPT_FD;
}

static int count_symlink(void *ctx, const nri_entry *e) {
        nri_plan_stats *st = &((counter *)ctx)->st;

        st->symlinks++;
        if (e->size >= 60)
                st->long_symlinks++;
        count_name(st, e);
        return 0;
}

static int count_hardlink(void *ctx, const nri_entry *e) {
        nri_plan_stats *st = &((counter *)ctx)->st;

        st->hardlinks++;
        count_name(st, e);
        return 0;
}

int nri_plan_measure(const nri_plan *plan, nri_plan_stats *ret, nri_plan_dense *dense) {
        counter c = {.data = {.dense = dense}};
        nri_visitor v = {
            .ctx = &c,
            .directory = count_directory,
            .file = count_file,
            .symlink = count_symlink,
            .hardlink = count_hardlink,
        };
        int r, r2;

        if (dense)
                *dense = (nri_plan_dense){0};
        c.data.buf = malloc(COUNT_CHUNK);
        if (!c.data.buf)
                return -ENOMEM;
        /* The bytes are read and counted by a worker while the walk goes on;
         * without one (no thread to be had), by the walk. */
        if (nri_worker_new(count_job, &c.data, &c.worker) < 0)
                c.worker = NULL;
        r = nri_plan_walk(plan, &v);
        r2 = nri_worker_finish(c.worker);
        if (r >= 0 && r2 < 0)
                r = r2;
        free(c.data.buf);
        if (r < 0) {
                if (dense)
                        nri_plan_dense_free(dense);
                return r;
        }
        c.st.data_blocks_4k = c.data.data_blocks_4k;
        *ret = c.st;
        return 0;
}
