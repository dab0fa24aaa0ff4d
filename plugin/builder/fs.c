/* fs.c: the builder's dispatch over the file-system table (fs.h): each
 * row's writer, and what every format shares — measuring the content for
 * Minimize=guess, and the messages around it. */
#include "fs.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Every row's writer, from the format's own file. */
#define NRI_FS_DECLARE_(id, stem, ...) extern const nri_fs_writer nri_##stem##_fs;
NRI_FILE_SYSTEMS(NRI_FS_DECLARE_)

#define NRI_FS_WRITER_(id, stem, ...) [NRI_FORMAT_##id] = &nri_##stem##_fs,
static const nri_fs_writer *const writers[_NRI_FORMAT_MAX] = {NRI_FILE_SYSTEMS(NRI_FS_WRITER_)};

static const nri_fs_writer *writer_of(nri_format f) {
        return (int)f > NRI_FORMAT_NONE && f < _NRI_FORMAT_MAX ? writers[f] : NULL;
}

/* Minimize=guess: the content measured, its writer's bound. */
static int guess_size(nri_fs_part *fp, const nri_fs_writer *w, uint64_t *ret) {
        nri_plan_stats st;
        int r;

        r = nri_plan_measure(fp->plan, &st);
        if (r < 0)
                return log_error_errno(r, "partition %s: cannot read its content: %m", fp->p->id);
        fp->total = st;
        fp->has_total = true;
        r = w->guess_size(fp, &st, ret);
        if (r < 0)
                return log_error_errno(r, "partition %s: cannot work out the size of its content: %m",
                                       fp->p->id);
        if (fp->verbose)
                log_info("partition %s: %" PRIu64 " files, %" PRIu64
                         " bytes of content; Minimize=guess gives %" PRIu64 " bytes",
                         fp->p->id, st.files, st.bytes, *ret);
        return 0;
}

/* Minimize=best: the writer's exact size. */
static int best_size(nri_fs_part *fp, const nri_fs_writer *w, uint64_t *ret) {
        int r;

        if (!w->best_size)
                return log_error_errno(
                    -EOPNOTSUPP,
                    "partition %s: Minimize=best needs a read-only file system or ext4, which %s is not",
                    fp->p->id, fp->type->name);
        r = w->best_size(fp, ret);
        if (r < 0)
                return r;
        if (fp->verbose)
                log_info("partition %s: Minimize=best gives %" PRIu64 " bytes", fp->p->id, *ret);
        return 0;
}

int nri_fs_min_size(nri_fs_part *fp, uint64_t *ret) {
        const nri_fs_writer *w = writer_of(fp->p->format);

        *ret = nri_format_min_size(fp->p->format);
        if (!w || fp->p->minimize == NRI_MINIMIZE_OFF)
                return 0;
        /* systemd-repart sizes a read-only file system exactly for guess as
         * for best: it is made once, at its final size. */
        if (fp->p->minimize == NRI_MINIMIZE_BEST || (fp->type->read_only && w->best_size))
                return best_size(fp, w, ret);
        if (!w->guess_size)
                return 0;
        return guess_size(fp, w, ret);
}

int nri_fs_write(const nri_fs_part *fp) {
        const nri_fs_writer *w = writer_of(fp->p->format);
        int r;

        if (!w)
                return 0;
        if (fp->verbose)
                log_info("partition %s: writing %s, %" PRIu64 " bytes at %" PRIu64 "", fp->p->id,
                         fp->type->name, fp->size, fp->offset);
        r = w->write(fp);
        if (r == -ENOSPC && fp->p->minimize == NRI_MINIMIZE_OFF)
                log_error("partition %s: its content does not fit in its %" PRIu64 " bytes: raise "
                          "SizeMinBytes= or set Minimize = \"guess\"",
                          fp->p->id, fp->size);
        else if (r < 0)
                log_error("partition %s: writing its %s file system failed", fp->p->id, fp->type->name);
        return r;
}

void nri_fs_part_done(nri_fs_part *fp) {
        const nri_fs_writer *w = writer_of(fp->p->format);

        if (w && w->done)
                w->done(fp);
}

static uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

void nri_fs_progress(void *ctx, uint64_t files, uint64_t bytes) {
        nri_fs_progress_state *ps = ctx;
        const nri_fs_part *fp = ps->fp;
        uint64_t now = now_ns();

        if (ps->next_ns == 0) {
                ps->next_ns = now + NRI_PROGRESS_EVERY_NS;
                return;
        }
        if (now < ps->next_ns)
                return;
        ps->next_ns = now + NRI_PROGRESS_EVERY_NS;
        if (fp->has_total)
                log_info("%s: %" PRIu64 " of %" PRIu64 " files, %" PRIu64 " of %" PRIu64 " MiB written",
                         fp->what, files, fp->total.files, bytes >> 20, fp->total.bytes >> 20);
        else
                log_info("%s: %" PRIu64 " files, %" PRIu64 " MiB written", fp->what, files, bytes >> 20);
}
