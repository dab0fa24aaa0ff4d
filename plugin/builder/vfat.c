/* vfat.c: a FAT file system, formatted by mformat and filled by the
 * builder (vfat.h).
 *
 * The plan is walked once before anything is written: every name is
 * checked against what FAT holds and given its place, its short name and
 * its clusters (fat-fill.h), so that nothing FAT cannot hold, nothing too
 * large, is found half-way.  Then mformat runs with each layout value
 * given explicitly (mtools' own choices would differ from mkfs.vfat's),
 * and the plan is walked again to copy each file's bytes to its clusters
 * from the descriptor the walk opened; last the directories and the FATs
 * are written.
 *
 * Until this file wrote the directories itself, mmd made them (one call
 * for all, parents first) and mcopy copied the files (one call per
 * directory for those that keep their store name, one per renamed file).
 * The images are the bytes those made (fat-fill.h says where they are
 * not), but mtools resolved every path from the root and scanned a
 * directory for each numbered short name it tried: a 2000-deep tree or a
 * few thousand similar names in one directory took minutes.  Now the work
 * per name is the same whatever the depth or the directory's size, and no
 * program but mformat runs (a short one, which cannot outlive the builder:
 * mformat.c). */
#include "vfat.h"
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fat-fill.h"
#include "log.h"
#include "nix-repart-image/fat-names.h"
#include "nix-repart-image/macro.h"

/* ---- what goes in: every name checked before anything is written ------- */

typedef struct vfat_dir {
        char *name; /* NULL for the root */
        size_t parent;
} vfat_dir;

typedef struct vfat_file {
        char *name;
        size_t dir;        /* index into writer.dirs */
        size_t id;         /* the walk's entry id */
        size_t seq;        /* in walk order */
        bool same_name;    /* its source has its name: mcopy copied those first */
        size_t source_len; /* how long the path of its source is: it was an argument of mcopy */
        uint64_t size;
        uint32_t cluster;
        bool copied;
} vfat_file;

/* A name in a directory, folded as FAT compares names. */
typedef struct slot {
        char *key; /* "<directory index>/<folded name>"; NULL: empty */
        bool is_dir;
        size_t index; /* into dirs or files */
} slot;

typedef struct writer {
        const char *what;
        locale_t utf8; /* for towupper(), as mtools compares names; (locale_t)0 if missing */
        slot *slots;
        size_t n_slots, used;
        vfat_dir *dirs; /* dirs[0] is the root */
        size_t n_dirs, cap_dirs;
        vfat_file *files;
        size_t n_files, cap_files;
        /* By the walk's entry id: dir index + 1, or file index + 1 as
         * -(index + 1); 0: neither. */
        ssize_t *by_id;
        size_t n_ids;
        bool non_ascii;
        /* While the data is copied: */
        nri_fat_fill *fill;
        int fd;          /* the image */
        uint64_t offset; /* of the file system in it */
        size_t copied;
} writer;

static uint64_t hash(const char *s) {
        uint64_t h = UINT64_C(14695981039346656037);

        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
        return h;
}

static slot *lookup(writer *w, const char *key) {
        size_t i = hash(key) & (w->n_slots - 1);

        while (w->slots[i].key && strcmp(w->slots[i].key, key) != 0)
                i = (i + 1) & (w->n_slots - 1);
        return &w->slots[i];
}

static int grow_table(writer *w) {
        slot *old = w->slots;
        size_t n_old = w->n_slots;

        if (w->n_slots && (w->used + 1) * 10 < w->n_slots * 7)
                return 0;
        w->n_slots = n_old ? n_old * 2 : 1024;
        w->slots = calloc(w->n_slots, sizeof(slot));
        if (!w->slots) {
                w->slots = old;
                w->n_slots = n_old;
                return -ENOMEM;
        }
        for (size_t i = 0; i < n_old; i++)
                if (old[i].key)
                        *lookup(w, old[i].key) = old[i];
        free(old);
        return 0;
}

static void *grow_array(void *items, size_t n, size_t *cap, size_t size) {
        size_t c = *cap ? *cap * 2 : 64;
        void *p;

        if (n < *cap)
                return items;
        p = realloc(items, c * size);
        if (p)
                *cap = c;
        else
                free(items);
        return p;
}

/* Whether FAT (and mtools) can hold `name`, a single path component: the
 * rule the evaluator applies to the targets it knows (fat-names.h). */
static int check_name(writer *w, const char *target, const char *name) {
        char buf[128];
        const char *why = nri_fat_name_problem(name, w->utf8, buf, sizeof(buf));

        if (why) {
                log_error("%s: '%s': %s", w->what, target, why);
                return -EINVAL;
        }
        return 0;
}

static const char *base_name(const char *path) {
        const char *s = strrchr(path, '/');

        return s ? s + 1 : path;
}

/* The path of directory d (and `name` in it), for messages; malloc'ed. */
static char *path_of(const writer *w, size_t d, const char *name) {
        size_t len = name ? strlen(name) + 2 : 2;
        char *out, *o;

        for (size_t i = d; i != 0; i = w->dirs[i].parent)
                len += strlen(w->dirs[i].name) + 1;
        out = malloc(len);
        if (!out)
                return NULL;
        o = out + len - 1;
        *o = 0;
        if (name) {
                o -= strlen(name);
                memcpy(o, name, strlen(name));
                *--o = '/';
        }
        for (size_t i = d; i != 0; i = w->dirs[i].parent) {
                o -= strlen(w->dirs[i].name);
                memcpy(o, w->dirs[i].name, strlen(w->dirs[i].name));
                *--o = '/';
        }
        if (!*o)
                *--o = '/';
        memmove(out, o, strlen(o) + 1);
        return out;
}

static ssize_t *id_slot(writer *w, size_t id) {
        if (id >= w->n_ids) {
                size_t n = w->n_ids ? w->n_ids : 1024;
                ssize_t *p;

                while (n <= id)
                        n *= 2;
                p = realloc(w->by_id, n * sizeof(ssize_t));
                if (!p)
                        return NULL;
                memset(p + w->n_ids, 0, (n - w->n_ids) * sizeof(ssize_t));
                w->by_id = p;
                w->n_ids = n;
        }
        return &w->by_id[id];
}

/* The directory an entry goes into: the root (id 0) or one visited before. */
static int dir_of(writer *w, const nri_entry *e, size_t *ret) {
        if (e->parent == 0) {
                *ret = 0;
                return 0;
        }
        if (e->parent >= w->n_ids || w->by_id[e->parent] <= 0) {
                log_error("%s: '%s': its directory was not seen before it", w->what, e->target);
                return -EINVAL;
        }
        *ret = (size_t)w->by_id[e->parent] - 1;
        return 0;
}

/* Records `name` in directory d, refusing it if it is not for FAT or if a
 * name already there differs from it at most in case; `target` is its
 * path, for messages. */
static int claim(writer *w, size_t d, const char *name, const char *target, bool is_dir, slot **ret_slot) {
        _cleanup_free_ char *folded = NULL, *key = NULL;
        slot *s;
        int r;

        r = check_name(w, target, name);
        if (r < 0)
                return r;
        for (const char *p = name; *p && !w->non_ascii; p++)
                w->non_ascii = (unsigned char)*p >= 0x80;
        folded = nri_fat_fold(name, w->utf8);
        if (!folded || asprintf(&key, "%zu/%s", d, folded) < 0)
                return -ENOMEM;
        s = lookup(w, key);
        if (s->key) {
                _cleanup_free_ char *other =
                    path_of(w, d, s->is_dir ? w->dirs[s->index].name : w->files[s->index].name);

                log_error("%s: '%s' and '%s' differ only in case; FAT compares names "
                          "case-insensitively and cannot hold both",
                          w->what, other ? other : "?", target);
                return -EINVAL;
        }
        r = grow_table(w);
        if (r < 0)
                return r;
        s = lookup(w, key); /* again: growing moved it */
        s->key = TAKE_PTR(key);
        s->is_dir = is_dir;
        w->used++;
        *ret_slot = s;
        return 0;
}

static int visit_directory(void *ctx, const nri_entry *e) {
        writer *w = ctx;
        ssize_t *by_id;
        slot *s;
        size_t d;
        int r;

        r = dir_of(w, e, &d);
        if (r >= 0)
                r = claim(w, d, e->name, e->target, true, &s);
        if (r < 0)
                return r;
        w->dirs = grow_array(w->dirs, w->n_dirs, &w->cap_dirs, sizeof(vfat_dir));
        by_id = id_slot(w, e->id);
        if (!w->dirs || !by_id)
                return -ENOMEM;
        w->dirs[w->n_dirs] = (vfat_dir){.name = strdup(e->name), .parent = d};
        if (!w->dirs[w->n_dirs].name)
                return -ENOMEM;
        s->index = w->n_dirs++;
        *by_id = (ssize_t)w->n_dirs;
        return 0;
}

static int visit_file(void *ctx, const nri_entry *e, int fd) {
        writer *w = ctx;
        ssize_t *by_id;
        vfat_file *f;
        slot *s;
        size_t d;
        int r;

        (void)fd; /* read in the second walk, once every name is known fit */
        if (e->size > UINT32_MAX) {
                log_error("%s: '%s' (from %s) is %" PRIu64 " bytes; FAT files hold less than 4 GiB", w->what,
                          e->target, e->source, e->size);
                return -EINVAL;
        }
        r = dir_of(w, e, &d);
        if (r >= 0)
                r = claim(w, d, e->name, e->target, false, &s);
        if (r < 0)
                return r;
        w->files = grow_array(w->files, w->n_files, &w->cap_files, sizeof(vfat_file));
        by_id = id_slot(w, e->id);
        if (!w->files || !by_id)
                return -ENOMEM;
        f = &w->files[w->n_files];
        *f = (vfat_file){
            .name = strdup(e->name),
            .dir = d,
            .id = e->id,
            .seq = w->n_files,
            .same_name = strcmp(base_name(e->source), e->name) == 0,
            .source_len = strlen(e->source) + (e->source[0] == '/' ? 0 : 2),
            .size = e->size,
        };
        if (!f->name)
                return -ENOMEM;
        s->index = w->n_files++;
        *by_id = -(ssize_t)w->n_files;
        return 0;
}

static int visit_symlink(void *ctx, const nri_entry *e) {
        writer *w = ctx;

        log_error("%s: '%s' is a symbolic link (to '%s', from %s); FAT has no symbolic links, "
                  "so it cannot be copied into a vfat partition",
                  w->what, e->target, e->link_target ? e->link_target : "?", e->source ? e->source : "?");
        return -EINVAL;
}

static void writer_done(writer *w) {
        if (w->fd >= 0)
                close(w->fd);
        for (size_t i = 0; i < w->n_slots; i++)
                free(w->slots[i].key);
        free(w->slots);
        for (size_t i = 0; i < w->n_files; i++)
                free(w->files[i].name);
        free(w->files);
        for (size_t i = 0; i < w->n_dirs; i++)
                free(w->dirs[i].name);
        free(w->dirs);
        free(w->by_id);
        nri_fat_fill_free(w->fill);
}

/* ---- where everything goes: as mmd and mcopy would have put it --------- */

/* The order vfat.c's mcopy calls copied files in (before it wrote the
 * directories itself): by directory, in each first the files that keep
 * their store name (one mcopy for them all), then the renamed ones (one
 * each), each group in walk order. */
static int cmp_files(const void *a, const void *b) {
        const vfat_file *x = *(vfat_file *const *)a, *y = *(vfat_file *const *)b;

        if (x->dir != y->dir)
                return x->dir < y->dir ? -1 : 1;
        if (x->same_name != y->same_name)
                return x->same_name ? -1 : 1;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

#define MCOPY_MAX_FILES 2048
#define MCOPY_MAX_BYTES (512 * 1024)

/* Every directory (in the order they were seen: parents first) and every
 * file, given its slots and clusters (fat-fill.h): a name FAT cannot hold
 * next to another, a full root directory or content larger than the file
 * system fails here, before anything is written. */
static int lay_out(writer *w, const nri_vfat_geometry *g, const uint8_t *label, int64_t mtime) {
        vfat_file **order;
        int r;

        r = nri_fat_fill_new(g, label, mtime, w->what, &w->fill);
        if (r == -ENOTSUP)
                log_error("%s: names in FAT need the C.UTF-8 locale and code page 437, which this system "
                          "lacks",
                          w->what);
        if (r < 0)
                return r;
        for (size_t i = 1; i < w->n_dirs; i++) {
                size_t index;

                r = nri_fat_fill_mkdir(w->fill, w->dirs[i].parent, w->dirs[i].name, &index);
                if (r < 0)
                        return r;
                if (index != i)
                        return -EINVAL; /* both count directories from 1 */
        }
        order = malloc((w->n_files ? w->n_files : 1) * sizeof(*order));
        if (!order)
                return -ENOMEM;
        for (size_t i = 0; i < w->n_files; i++)
                order[i] = &w->files[i];
        if (w->n_files > 0) /* qsort(NULL, 0, …) is undefined (UBSan) */
                qsort(order, w->n_files, sizeof(*order), cmp_files);
        /* Where one mcopy call ended and the next began, which is when a
         * directory's new clusters were given out: after each renamed
         * file; else at a change of directory, before the renamed ones, or
         * when the call had 2048 files or 512 KiB of paths. */
        for (size_t i = 0, count = 0, bytes = 0; r >= 0 && i < w->n_files; i++) {
                const vfat_file *f = order[i], *next = i + 1 < w->n_files ? order[i + 1] : NULL;

                if (count == 0)
                        r = nri_fat_fill_begin(w->fill, f->dir, !f->same_name);
                if (r >= 0)
                        r = nri_fat_fill_file(w->fill, f->dir, f->name, f->size, &order[i]->cluster);
                count++;
                bytes += f->source_len + 1 + sizeof(char *);
                if (r < 0 || !(!f->same_name || !next || next->dir != f->dir || !next->same_name ||
                               count >= MCOPY_MAX_FILES || bytes >= MCOPY_MAX_BYTES))
                        continue;
                r = nri_fat_fill_flush(w->fill, f->dir);
                count = bytes = 0;
        }
        free(order);
        return r;
}

/* ---- the second walk: the files' data ---------------------------------- */

static int changed(writer *w, const nri_entry *e) {
        log_error("%s: %s: changed while being read", w->what, e->source ? e->source : e->target);
        return -ESTALE;
}

static int copy_directory(void *ctx, const nri_entry *e) {
        writer *w = ctx;

        return e->id < w->n_ids && w->by_id[e->id] > 0 ? 0 : changed(w, e);
}

/* A file's bytes to its clusters, by the kernel where it can; the file
 * must not change while they are read (size, modification and change
 * time as when it was opened), as in ext4.c. */
static int copy_file(void *ctx, const nri_entry *e, int fd) {
        writer *w = ctx;
        uint64_t done = 0, to;
        vfat_file *f;
        bool kernel = true;
        char buf[65536];

        if (e->id >= w->n_ids || w->by_id[e->id] >= 0)
                return changed(w, e);
        f = &w->files[-w->by_id[e->id] - 1];
        if (f->copied || f->size != e->size || strcmp(f->name, e->name) != 0)
                return changed(w, e);
        to = w->offset + nri_fat_fill_data_offset(w->fill, f->cluster);
        while (done < f->size) {
                ssize_t k;

                if (kernel) {
                        loff_t in = (loff_t)done, out = (loff_t)(to + done);

                        k = copy_file_range(fd, &in, w->fd, &out, f->size - done, 0);
                        if (k < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP ||
                                      errno == ENOSYS || errno == EPERM)) {
                                kernel = false;
                                continue;
                        }
                } else {
                        k = pread(fd, buf, f->size - done < sizeof(buf) ? f->size - done : sizeof(buf),
                                  (off_t)done);
                        if (k > 0) {
                                for (ssize_t put = 0, m; put < k; put += m) {
                                        m = pwrite(w->fd, buf + put, (size_t)(k - put),
                                                   (off_t)(to + done) + put);
                                        if (m < 0 && errno == EINTR)
                                                m = 0;
                                        else if (m <= 0) {
                                                log_error("%s: cannot write %s into the image: %s", w->what,
                                                          e->target, strerror(m < 0 ? errno : EIO));
                                                return m < 0 ? -errno : -EIO;
                                        }
                                }
                        }
                }
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        int r = -errno;

                        log_error_errno(r, "%s: %s: cannot copy it into the image: %m", w->what, e->source);
                        return r;
                }
                if (k == 0)
                        return changed(w, e); /* shorter than it was */
                done += (uint64_t)k;
        }
        if (!nri_source_unchanged(fd, e->st))
                return changed(w, e);
        f->copied = true;
        w->copied++;
        return 0;
}

static int copy_symlink(void *ctx, const nri_entry *e) {
        return changed(ctx, e);
}

/* ---- the whole --------------------------------------------------------- */

/* The layout for `size`, the FAT label, and an image large enough. */
static int check_target(writer *w, const char *image_path, uint64_t offset, uint64_t size,
                        const nri_vfat_options *o, nri_vfat_geometry *g, char **label) {
        struct stat st;
        int r;

        r = nri_vfat_geometry_for(size, o->sector_size, g);
        if (r < 0) {
                log_error("%s: no FAT file system fits %" PRIu64 " bytes with %" PRIu32 "-byte sectors",
                          w->what, size, o->sector_size ? o->sector_size : 512);
                return r;
        }
        r = nri_vfat_mangle_label(o->label ? o->label : "", label);
        if (r < 0) {
                log_error("%s: the label \"%s\" is not UTF-8", w->what, o->label);
                return r;
        }
        if (nri_vfat_label_problem(*label)) {
                log_error("%s: the label \"%s\" (\"%s\" for FAT) %s", w->what, o->label, *label,
                          nri_vfat_label_problem(*label));
                return -EINVAL;
        }
        if (stat(image_path, &st) < 0)
                return log_error_errno(-errno, "%s: %s: %m", w->what, image_path);
        if ((uint64_t)st.st_size < offset + (uint64_t)g->total_sectors * g->sector_size) {
                log_error("%s: %s is %" PRIu64 " bytes, too small for a file system at %" PRIu64
                          " of %" PRIu64 " bytes",
                          w->what, image_path, (uint64_t)st.st_size, offset, size);
                return -EINVAL;
        }
        return 0;
}

/* The first walk: every name fit for FAT and given its place, before
 * anything is written. */
static int collect(writer *w, const nri_plan *plan, const nri_vfat_geometry *g, const char *label,
                   int64_t mtime) {
        nri_visitor v = {
            .ctx = w,
            .directory = visit_directory,
            .file = visit_file,
            .symlink = visit_symlink,
            .hardlink = NULL, /* FAT has no hard links: each name gets a copy of the data */
        };
        uint8_t entry[11];
        int r;

        w->utf8 = nri_fat_locale();
        r = grow_table(w);
        if (r < 0)
                return r;
        w->dirs = grow_array(NULL, 0, &w->cap_dirs, sizeof(vfat_dir));
        if (!w->dirs)
                return -ENOMEM;
        w->dirs[w->n_dirs++] = (vfat_dir){0};
        r = nri_plan_walk(plan, &v);
        if (r < 0)
                return r;
        if (w->non_ascii && !w->utf8) {
                log_error("%s: names outside ASCII need the C.UTF-8 locale, which this system lacks",
                          w->what);
                return -ENOTSUP;
        }
        /* The label's entry, as mformat writes it (label_name_uc()). */
        memset(entry, ' ', sizeof(entry));
        for (size_t i = 0; i < 11 && label[i]; i++)
                entry[i] = label[i] == '^' ? '~' : (uint8_t)label[i];
        return lay_out(w, g, strcmp(label, "NO NAME") != 0 ? entry : NULL, mtime);
}

/* The second walk: each file's bytes to its clusters; then the
 * directories and the FATs. */
static int fill(writer *w, const nri_plan *plan, const char *image_path, uint64_t offset) {
        nri_visitor v = {
            .ctx = w,
            .directory = copy_directory,
            .file = copy_file,
            .symlink = copy_symlink,
        };
        int r;

        w->fd = open(image_path, O_RDWR | O_CLOEXEC);
        w->offset = offset;
        if (w->fd < 0)
                return log_error_errno(-errno, "%s: %s: %m", w->what, image_path);
        r = nri_plan_walk(plan, &v);
        if (r >= 0 && w->copied != w->n_files) {
                log_error("%s: %zu of the %zu files were not there to copy: the sources changed while "
                          "being read",
                          w->what, w->n_files - w->copied, w->n_files);
                r = -ESTALE;
        }
        if (r >= 0)
                r = nri_fat_fill_write(w->fill, w->fd, offset);
        if (close(TAKE_FD(w->fd)) < 0 && r >= 0)
                r = log_error_errno(-errno, "%s: writing %s: %m", w->what, image_path);
        return r;
}

int nri_vfat_write(const char *image_path, uint64_t offset, uint64_t size, const nri_vfat_options *o,
                   const nri_plan *plan) {
        _cleanup_(writer_done) writer w = {.what = o->what ? o->what : "vfat", .fd = -1};
        _cleanup_free_ char *label = NULL;
        uint64_t bytes = 0;
        nri_vfat_geometry g;
        int64_t mtime = plan->mtime < NRI_VFAT_TIME_MIN   ? NRI_VFAT_TIME_MIN
                        : plan->mtime > NRI_VFAT_TIME_MAX ? NRI_VFAT_TIME_MAX
                                                          : plan->mtime;
        int r;

        r = check_target(&w, image_path, offset, size, o, &g, &label);
        if (r >= 0)
                r = collect(&w, plan, &g, label, mtime);
        /* Then the file system, by mformat; then what goes in it. */
        if (r >= 0)
                r = nri_mformat(o->mtools, image_path, offset, &g, o->volume_id, label, mtime, w.what);
        if (r >= 0)
                r = fill(&w, plan, image_path, offset);
        if (r < 0)
                return r;
        for (size_t i = 0; i < w.n_files; i++)
                bytes += w.files[i].size;
        if (w.n_files)
                log_info("%s: copied %zu files (%" PRIu64 " bytes) into %zu directories", w.what, w.n_files,
                         bytes, w.n_dirs);
        return 0;
}

/* ---- the file-system table's writer (fs.h) ---- */

static int guess_size(const nri_fs_part *fp, const nri_plan_stats *st, uint64_t *ret) {
        return nri_vfat_min_size(st, fp->spec->sector_size, ret);
}

static int write_fs(const nri_fs_part *fp) {
        nri_vfat_options o = {
            .volume_id = nri_uuid_vfat_volume_id(&fp->p->fs_uuid),
            .label = fp->p->label,
            /* The image's sector size, as newer systemd-repart passes it
             * (252 formats with 512 whatever the image has): firmware on a
             * 4Kn disk expects the FAT's sectors to match. */
            .sector_size = fp->spec->sector_size,
            .what = fp->what,
            .mtools = fp->mtools,
        };

        return nri_vfat_write(fp->image, fp->offset, fp->size, &o, fp->plan);
}

const nri_fs_writer nri_vfat_fs = {
    .guess_size = guess_size,
    .write = write_fs,
};
