/* plan-measure.c: measuring a plan (nri_plan_measure(), plan.h) — a
 * visitor that counts what the walk visits from what stat() reports,
 * reading no file's bytes. */
#include "plan.h"

#include <string.h>

static void count_name(nri_plan_stats *st, const nri_entry *e) {
        size_t len = strlen(e->name);

        st->name_bytes += len;
        if (strcmp(e->target, "/") != 0 && strchr(e->target + 1, '/') == NULL) {
                st->root_names++;
                st->root_name_bytes += len;
        }
}

static int count_directory(void *ctx, const nri_entry *e) {
        nri_plan_stats *st = ctx;

        st->directories++;
        count_name(st, e);
        return 0;
}

/* A file counts its size (st_size), never its st_blocks: those depend on
 * the file system the store lives on (its holes, its block size, its
 * compression), and a size Minimize=guess derives from them would differ
 * from machine to machine.  Reading the bytes to count the blocks of zeros
 * the writer makes holes would cost as much as writing them: the guess
 * counts them as data, and the writer still leaves them out. */
static int count_file(void *ctx, const nri_entry *e, int fd) {
        nri_plan_stats *st = ctx;

        (void)fd;
        st->files++;
        st->bytes += e->size;
        st->blocks_4k += (e->size + 4095) / 4096;
        count_name(st, e);
        return 0;
}

static int count_symlink(void *ctx, const nri_entry *e) {
        nri_plan_stats *st = ctx;

        st->symlinks++;
        if (e->size >= 60)
                st->long_symlinks++;
        count_name(st, e);
        return 0;
}

static int count_hardlink(void *ctx, const nri_entry *e) {
        nri_plan_stats *st = ctx;

        st->hardlinks++;
        count_name(st, e);
        return 0;
}

int nri_plan_measure(const nri_plan *plan, nri_plan_stats *ret) {
        nri_plan_stats st = {0};
        nri_visitor v = {
            .ctx = &st,
            .directory = count_directory,
            .file = count_file,
            .symlink = count_symlink,
            .hardlink = count_hardlink,
        };
        int r;

        r = nri_plan_walk(plan, &v);
        if (r < 0)
                return r;
        *ret = st;
        return 0;
}
