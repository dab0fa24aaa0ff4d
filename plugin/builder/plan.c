/* plan.c: the walk over a plan's sources (see plan.h).
 *
 * Trees are walked with an explicit stack of directories, not by recursion
 * over paths: each level holds its sorted names and a descriptor, children
 * are opened with openat(), so neither the C stack nor PATH_MAX limits the
 * depth.  Nor does the descriptor limit: only the deepest MAX_OPEN_DIRS
 * levels keep theirs, a level whose descriptor was closed is opened again,
 * as the ".." of the level below it, when the walk climbs back to it.  Path strings
 * are still built, for the visitor and for messages. */
#include "plan.h"
#include "beneath.h"
#include "log.h"
#include "nix-repart-image/macro.h"
#include "plan-dedup.h"
#include "plan-dir.h"
#include "plan-maps.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- small helpers ---- */

/* A failed call (log.h), with its errno's text. */
#define log_errno(r, fmt, ...) log_error_errno((r), fmt ": %m", ##__VA_ARGS__)

#define MAX_OPEN_DIRS 128

/* ---- the walk ---- */

/* Copies by target, for relate_copy(). */
typedef struct copy_ref {
        const char *target;
        size_t index;
} copy_ref;

typedef struct walk {
        const nri_plan *plan;
        const nri_visitor *v;
        /* Every target a later part of the walk can reach again (see
         * must_record()): a map of all of them would hold every path of the
         * closure, the builder's largest use of memory. */
        target_map targets;
        char **norm;         /* each copy's target, normalised ("" for "/") */
        copy_ref *by_target; /* the copies sorted by norm */
        bool record_all;     /* the current copy: record every target */
        const char **later;  /* ... or those related to these later targets */
        size_t n_later, cap_later;
        link_map links;
        content_map contents; /* plan->n_dedup */
        bool dedup;           /* the current copy is one of the first n_dedup */
        size_t next_id;
        strbuf src, tgt;   /* the current source and target paths */
        strbuf link;       /* readlink() buffer */
        int store_fd;      /* the store directory (or "/"), O_PATH */
        int top_fd;        /* the directory holding the current copy's source */
        char *top_name;    /* the source's name in it */
        bool builder_made; /* the current copy is in plan->builder_dir */
} walk;

static const char *last_component(const char *path) {
        const char *s = strrchr(path, '/');
        return s ? s + 1 : path;
}

/* A directory the plan makes (no source): `directories` and parents. */
static int emit_made_directory(walk *w, size_t parent, size_t len, size_t *ret_id) {
        target_slot *s;
        char *target;
        nri_entry e;
        int r;

        r = target_lookup(&w->targets, w->tgt.s, len, &s);
        if (r < 0)
                return r;
        if (s->path) {
                if (!s->dir)
                        return log_error_errno(
                            -ENOTDIR, "%s: a directory is needed here, but it is already a file", s->path);
                *ret_id = s->id;
                return 0;
        }
        r = target_insert(&w->targets, s, w->tgt.s, len, ++w->next_id, true);
        if (r < 0)
                return r;
        target = s->path;
        e = (nri_entry){
            .target = target,
            .name = last_component(target),
            .mode = S_IFDIR | 0755,
            .id = s->id,
            .parent = parent,
        };
        *ret_id = e.id;
        return w->v->directory ? w->v->directory(w->v->ctx, &e) : 0;
}

/* Makes every missing parent of the target in w->tgt (not the target
 * itself); *ret_parent is the id of its directory. */
static int make_parents(walk *w, size_t *ret_parent) {
        size_t parent = 0, last = strrchr(w->tgt.s, '/') - w->tgt.s;
        int r;

        /* "/a/b/c": the prefixes ending before each slash but the first. */
        for (size_t i = 1; i <= last; i++) {
                if (w->tgt.s[i] != '/')
                        continue;
                r = emit_made_directory(w, parent, i, &parent);
                if (r < 0)
                        return r;
        }
        *ret_parent = parent;
        return 0;
}

/* Whether path a (alen bytes) is path b or one of its parents. */
static bool is_within(const char *a, size_t alen, const char *b, size_t blen) {
        return alen <= blen && memcmp(a, b, alen) == 0 && (alen == blen || b[alen] == '/');
}

/* Whether the target w->tgt must go into w->targets.  A target is looked up
 * again only by a later copy: at that copy's target, at the parents it
 * makes for it, and inside its tree where it merges into a directory that
 * was there.  So only what is, or is in, or is a parent of, a later copy's
 * target is kept; the rest of a closure (every path in the store paths)
 * never is. */
static bool must_record(const walk *w) {
        if (w->record_all)
                return true;
        for (size_t i = 0; i < w->n_later; i++) {
                size_t n = strlen(w->later[i]);

                if (is_within(w->tgt.s, w->tgt.len, w->later[i], n) ||
                    is_within(w->later[i], n, w->tgt.s, w->tgt.len))
                        return true;
        }
        return false;
}

/* Gives the entry at w->tgt the next id and its target: kept in slot s,
 * or (s NULL) the walk's own buffer, valid during the callback. */
static int add_target(walk *w, target_slot *s, bool dir, nri_entry *e) {
        e->id = ++w->next_id;
        e->target = w->tgt.s;
        if (s) {
                int r = target_insert(&w->targets, s, w->tgt.s, w->tgt.len, e->id, dir);
                if (r < 0)
                        return r;
                e->target = s->path;
        }
        e->name = last_component(e->target);
        return 0;
}

/* One source to visit: w->src, at the target w->tgt, opened relative to
 * `dirfd` by `name`. */
typedef struct source {
        int dirfd;
        const char *name;
        const struct stat *st; /* its lstat() (or, when fd >= 0, fstat()) */
        int fd;                /* a regular file already open, or -1 */
        size_t parent;         /* the id of the directory it goes into */
        /* The target's directory was made by this copy, so nothing can be at
         * the target yet. */
        bool fresh;
} source;

/* A directory: its frame, for the caller to push (f->fd >= 0), merged
 * into the directory there (`s`, not NULL) or visited as a new one. */
static int visit_directory(walk *w, const source *src, target_slot *s, bool record, nri_entry *e, frame *f) {
        int r;

        if (s && s->path && !s->dir)
                return log_error_errno(-EEXIST,
                                       "%s: cannot copy directory %s there, a file is there already",
                                       w->tgt.s, w->src.s);
        r = frame_open(f, src->dirfd, src->name, w->src.s);
        if (r < 0) {
                frame_free(f);
                *f = (frame){.fd = -1};
                return r;
        }
        f->src_len = w->src.len;
        f->tgt_len = w->tgt.len;
        if (s && s->path) { /* merged into the directory visited before */
                f->id = s->id;
                f->merged = true;
                return 0;
        }
        r = add_target(w, record ? s : NULL, true, e);
        if (r < 0)
                return r;
        f->id = e->id;
        return w->v->directory ? w->v->directory(w->v->ctx, e) : 0;
}

/* A symlink: its target read (again, larger, if it grew since lstat()). */
static int visit_symlink(walk *w, const source *src, nri_entry *e) {
        size_t want = (size_t)src->st->st_size + 2;
        ssize_t n;

        for (;;) {
                if (w->link.cap < want) {
                        char *p = realloc(w->link.s, want);

                        if (!p)
                                return -ENOMEM;
                        w->link.s = p;
                        w->link.cap = want;
                }
                n = readlinkat(src->dirfd, src->name, w->link.s, w->link.cap);
                if (n < 0)
                        return log_errno(-errno, "%s: cannot read symlink", w->src.s);
                if ((size_t)n < w->link.cap - 1)
                        break;
                want = w->link.cap * 2;
        }
        w->link.s[n] = 0;
        e->link_target = w->link.s;
        e->size = n;
        if (!w->v->symlink)
                return log_error_errno(-EOPNOTSUPP,
                                       "%s: symlinks cannot be written to this file system (%s)", e->target,
                                       w->src.s);
        return w->v->symlink(w->v->ctx, e);
}

/* Opens the regular file `src` names, checking it is the one lstat() saw;
 * *st its fstat(). */
static int open_file(const walk *w, const source *src, struct stat *st) {
        _cleanup_close_ int fd = openat(src->dirfd, src->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);

        if (fd < 0)
                return log_errno(-errno, "%s: cannot open", w->src.s);
        if (fstat(fd, st) < 0)
                return log_errno(-errno, "%s: cannot stat", w->src.s);
        if (!S_ISREG(st->st_mode) || st->st_ino != src->st->st_ino || st->st_dev != src->st->st_dev)
                return log_error_errno(-ESTALE, "%s: changed while being read", w->src.s);
        return TAKE_FD(fd);
}

/* A file with more links than one: a later name of it is a hard link to
 * the first (e->hardlink_of), given to the visitor's hardlink callback
 * when it has one (*ret_done). */
static int visit_links(walk *w, nri_entry *e, bool *ret_done) {
        link_slot *l;
        int r;

        *ret_done = false;
        r = link_lookup(&w->links, e->st->st_dev, e->st->st_ino, &l);
        if (r < 0)
                return r;
        if (!l->target) {
                l->target = strdup(e->target);
                if (!l->target)
                        return -ENOMEM;
                l->dev = e->st->st_dev;
                l->ino = e->st->st_ino;
                l->id = e->id;
                w->links.n++;
                return 0;
        }
        e->hardlink_of = l->target;
        e->hardlink_id = l->id;
        if (!w->v->hardlink)
                return 0;
        *ret_done = true;
        return w->v->hardlink(w->v->ctx, e);
}

/* Records the content of a file as the one later files with it link to
 * (a new content, or one with as many names as an inode may have). */
static int record_content(content_map *m, content_slot *c, uint64_t size, mode_t perm,
                          const uint8_t hash[NRI_CONTENT_HASH_SIZE], const char *target, size_t id) {
        if (c->target)
                free(c->target);
        else
                m->n++;
        c->target = strdup(target);
        if (!c->target)
                return -ENOMEM; /* the walk stops: the map is only freed */
        c->size = size;
        c->perm = perm;
        memcpy(c->hash, hash, NRI_CONTENT_HASH_SIZE);
        c->id = id;
        c->links = 1;
        return 0;
}

/* The first file of a (size, perm), now that another one has them: opened
 * again by its source path and hashed into the content map.  It must be
 * the file the walk saw (device, inode, size). */
static int hash_first(walk *w, size_slot *f) {
        _cleanup_close_ int fd = open(f->source, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        uint8_t hash[NRI_CONTENT_HASH_SIZE];
        content_slot *c;
        struct stat st;
        int r;

        if (fd < 0)
                return log_errno(-errno, "%s: cannot open", f->source);
        if (fstat(fd, &st) < 0)
                return log_errno(-errno, "%s: cannot stat", f->source);
        if (st.st_dev != f->dev || st.st_ino != f->ino || (uint64_t)st.st_size != f->size)
                return log_error_errno(-ESTALE, "%s: changed while being read", f->source);
        r = content_hash(&w->contents, fd, f->size, hash);
        if (r == -ESTALE)
                return log_error_errno(r, "%s: changed while being read", f->source);
        if (r < 0)
                return log_error_errno(r, "%s: cannot read: %m", f->source);
        r = content_lookup(&w->contents, f->size, f->perm, hash, &c);
        if (r < 0)
                return r;
        f->hashed = true;
        return record_content(&w->contents, c, f->size, f->perm, hash, f->target, f->id);
}

/* plan->n_dedup: a non-empty file of those copies whose content (size,
 * permission bits, SHA-256) was seen before is a hard link to the first
 * one, given to the visitor's hardlink callback when it has one
 * (*ret_done); the first is recorded.  *ret_done false and
 * e->hardlink_of NULL: not one to deduplicate, or the first.  A file is
 * read to hash it only once another has its size and permission bits. */
static int visit_same_content(walk *w, nri_entry *e, int fd, bool *ret_done) {
        uint8_t hash[NRI_CONTENT_HASH_SIZE];
        mode_t perm = e->mode & 07777;
        content_slot *c;
        size_slot *f;
        int r;

        *ret_done = false;
        if (e->size == 0)
                return 0;
        r = size_lookup(&w->contents, e->size, perm, &f);
        if (r < 0)
                return r;
        if (!f->source) { /* the first of its size: no need to read it yet */
                *f = (size_slot){.size = e->size,
                                 .perm = perm,
                                 .dev = e->st->st_dev,
                                 .ino = e->st->st_ino,
                                 .id = e->id,
                                 .source = strdup(w->src.s),
                                 .target = strdup(e->target)};
                if (!f->source || !f->target)
                        return -ENOMEM; /* the walk stops: the map is only freed */
                w->contents.n_sizes++;
                return 0;
        }
        if (!f->hashed) {
                r = hash_first(w, f);
                if (r < 0)
                        return r;
        }
        r = content_hash(&w->contents, fd, e->size, hash);
        if (r == -ESTALE)
                return log_error_errno(r, "%s: changed while being read", w->src.s);
        if (r < 0)
                return log_error_errno(r, "%s: cannot read: %m", w->src.s);
        r = content_lookup(&w->contents, e->size, perm, hash, &c);
        if (r < 0)
                return r;
        if (c->target && c->links < NRI_CONTENT_MAX_LINKS) {
                c->links++;
                e->hardlink_of = c->target;
                e->hardlink_id = c->id;
                if (!w->v->hardlink)
                        return 0;
                *ret_done = true;
                return w->v->hardlink(w->v->ctx, e);
        }
        return record_content(&w->contents, c, e->size, perm, hash, e->target, e->id);
}

/* A regular file, given to the visitor open (the descriptor is the
 * caller's when src->fd >= 0, else the visitor's to keep or this
 * function's to close). */
static int visit_file(walk *w, const source *src, nri_entry *e) {
        struct stat st;
        bool done = false;
        int fd = src->fd, r = 0;

        if (fd < 0) {
                fd = open_file(w, src, &st);
                if (fd < 0)
                        return fd;
                e->st = &st;
                e->mode = st.st_mode;
        }
        e->size = e->st->st_size;
        if (w->dedup)
                r = visit_same_content(w, e, fd, &done);
        if (r >= 0 && !done && !e->hardlink_of && !w->plan->ignore_hardlinks && e->st->st_nlink > 1)
                r = visit_links(w, e, &done);
        if (r >= 0 && !done)
                r = w->v->file ? w->v->file(w->v->ctx, e, fd) : 0;
        if (fd != src->fd) { /* the caller deals with its own */
                if (r != NRI_VISIT_KEPT_FD)
                        close(fd);
                else
                        r = 0;
        }
        return r;
}

/* Visits one source at its target.  For a directory, *ret_frame is filled
 * for the caller to push (fd >= 0), else its fd is -1. */
static int visit(walk *w, const source *src, frame *ret_frame) {
        nri_entry e = {.parent = src->parent, .st = src->st, .mode = src->st->st_mode, .source = w->src.s};
        target_slot *s = NULL;
        bool record = must_record(w);
        int r;

        *ret_frame = (frame){.fd = -1};
        if (!src->fresh || record) {
                r = target_lookup(&w->targets, w->tgt.s, w->tgt.len, &s);
                if (r < 0)
                        return r;
        }
        if (S_ISDIR(src->st->st_mode))
                return visit_directory(w, src, s, record, &e, ret_frame);
        if (s && s->path)
                return log_error_errno(-EEXIST, "%s: cannot copy %s there, %s is there already", w->tgt.s,
                                       w->src.s, s->dir ? "a directory" : "a file");
        if (!S_ISREG(src->st->st_mode) && !S_ISLNK(src->st->st_mode))
                return log_error_errno(-EINVAL, "%s: cannot copy, not a regular file, directory or symlink",
                                       w->src.s);
        r = add_target(w, record ? s : NULL, false, &e);
        if (r < 0)
                return r;
        if (S_ISLNK(src->st->st_mode))
                return visit_symlink(w, src, &e);
        return visit_file(w, src, &e);
}

/* Opens stack[i - 1] again, whose descriptor was closed, as the ".." of
 * stack[i] (open: the walk is climbing out of it), checking it is still
 * the directory it was: one open per level climbed. */
static int reopen_parent(walk *w, frame *stack, size_t i) {
        struct stat st;
        int fd, r = 0;

        fd = openat(stack[i].fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                r = -errno;
        else if (fstat(fd, &st) < 0)
                r = -errno;
        else if (st.st_dev != stack[i - 1].dev || st.st_ino != stack[i - 1].ino)
                r = -ESTALE;
        if (r < 0) {
                if (fd >= 0)
                        close(fd);
                strbuf_set_len(&w->src, stack[i - 1].src_len);
                return log_errno(r, "%s: cannot open directory again", w->src.s);
        }
        stack[i - 1].fd = fd;
        return 0;
}

/* Visits the next entry of the directory *f, with w->src and w->tgt set to
 * its paths; *ret_child is the directory to descend into (its fd < 0:
 * none). */
static int visit_next(walk *w, frame *f, frame *ret_child) {
        const char *name = f->names[f->i++];
        struct stat st;
        int fd, r;

        ret_child->fd = -1;
        strbuf_set_len(&w->src, f->src_len);
        strbuf_set_len(&w->tgt, f->tgt_len);
        if ((r = strbuf_append(&w->src, "/", 1)) < 0 ||
            (r = strbuf_append(&w->src, name, strlen(name))) < 0 ||
            (r = strbuf_append(&w->tgt, "/", 1)) < 0 || (r = strbuf_append(&w->tgt, name, strlen(name))) < 0)
                return r;
        fd = open_regular(f->fd, name, &st);
        if (fd < 0 && fstatat(f->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return log_errno(-errno, "%s: cannot stat", w->src.s);
        r = visit(
            w,
            &(source){
                .dirfd = f->fd, .name = name, .st = &st, .fd = fd, .parent = f->id, .fresh = !f->merged},
            ret_child);
        if (r == NRI_VISIT_KEPT_FD)
                return 0; /* the visitor closes fd */
        if (fd >= 0)
                close(fd);
        return r;
}

/* The walk's stack of open directories: stack[lo..depth) have descriptors,
 * at most MAX_OPEN_DIRS of them. */
typedef struct dir_stack {
        frame *f;
        size_t depth, cap, lo;
} dir_stack;

/* Pushes `child` (taken: freed on failure), closing the descriptor of the
 * oldest open directory beyond MAX_OPEN_DIRS. */
static int push(dir_stack *s, frame *child) {
        if (s->depth == s->cap) {
                frame *p = realloc(s->f, sizeof(*s->f) * (s->cap *= 2));

                if (!p) {
                        frame_free(child);
                        return -ENOMEM;
                }
                s->f = p;
        }
        s->f[s->depth++] = *child;
        if (s->depth - s->lo > MAX_OPEN_DIRS) {
                close(s->f[s->lo].fd);
                s->f[s->lo++].fd = -1;
        }
        return 0;
}

/* Pops the directory whose entries are all visited, opening its parent
 * again if its descriptor was closed. */
static int pop(walk *w, dir_stack *s) {
        int r = 0;

        if (s->depth > 1 && s->f[s->depth - 2].fd < 0) {
                r = reopen_parent(w, s->f, s->depth - 1);
                s->lo = s->depth - 2;
        }
        frame_free(&s->f[--s->depth]);
        return r;
}

/* Walks the tree whose top directory is open in *top (the copy's source,
 * w->top_name in w->top_fd), depth first. */
static int walk_tree(walk *w, frame *top) {
        dir_stack s = {.cap = 16};
        int r = 0;

        s.f = malloc(sizeof(*s.f) * s.cap);
        if (!s.f) {
                frame_free(top);
                return -ENOMEM;
        }
        s.f[s.depth++] = *top;

        while (s.depth > 0) {
                frame *f = &s.f[s.depth - 1], child;

                if (f->i == f->n)
                        r = pop(w, &s);
                else if ((r = visit_next(w, f, &child)) >= 0 && child.fd >= 0)
                        r = push(&s, &child);
                if (r < 0)
                        break;
        }
        while (s.depth > 0)
                frame_free(&s.f[--s.depth]);
        free(s.f);
        return r;
}

/* Copies `path` into w->tgt as an absolute path without empty, "." or ".."
 * components or a trailing slash ("/" stays "/"). */
static int set_target(walk *w, const char *path) {
        const char *p = path;
        int r;

        if (!path || path[0] != '/')
                return log_error_errno(-EINVAL, "%s: target path is not absolute", path ? path : "(null)");
        r = strbuf_assign(&w->tgt, "");
        if (r < 0)
                return r;
        while (*p) {
                const char *end;
                size_t n;

                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                end = strchrnul(p, '/');
                n = end - p;
                if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
                        return log_error_errno(-EINVAL, "%s: target path has a \".\" or \"..\" component",
                                               path);
                if ((r = strbuf_append(&w->tgt, "/", 1)) < 0 || (r = strbuf_append(&w->tgt, p, n)) < 0)
                        return r;
                p = end;
        }
        return 0;
}

/* Opens the directory that holds the source in w->src (absolute, without
 * a trailing '/') into w->top_fd and names the source in it w->top_name:
 * inside the source's store path, never leaving it (plan.h, beneath.h). */
static int open_source(walk *w) {
        const char *src = w->src.s, *sd = w->plan->store_dir, *rel, *last;
        size_t n = sd ? strlen(sd) : 0;
        char *root = NULL, *dirs = NULL;
        int rootfd = -1, fd;

        if (w->builder_made) {
                last = strrchr(src, '/');
                dirs = last > src ? strndup(src, (size_t)(last - src)) : strdup("/");
                if (!dirs)
                        return -ENOMEM;
                w->top_fd = open(dirs, O_PATH | O_DIRECTORY | O_CLOEXEC);
                free(dirs);
                if (w->top_fd < 0)
                        return log_errno(-errno, "%s: cannot open the directory it is in", src);
                w->top_name = strdup(last + 1);
                return w->top_name ? 0 : -ENOMEM;
        }
        if (sd) {
                size_t len;

                if (strncmp(src, sd, n) != 0 || src[n] != '/' || !src[n + 1])
                        return log_error_errno(-EINVAL, "%s: not in the Nix store (%s)", src, sd);
                len = strcspn(src + n + 1, "/");
                rel = src + n + 1 + len;
                root = strndup(src + n + 1, len);
                if (!root)
                        return -ENOMEM;
        } else {
                rel = src; /* beneath "/" */
        }
        if (!*rel) { /* the store path itself: in the store directory */
                w->top_fd = openat(w->store_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
                w->top_name = root;
                return w->top_fd < 0 ? log_errno(-errno, "%s: cannot open the store directory", src) : 0;
        }
        if (root) {
                /* A store path that is a symlink is not a directory to
                 * resolve in, wherever it points. */
                rootfd = openat(w->store_fd, root, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (rootfd < 0) {
                        int r = -errno;

                        free(root);
                        if (r == -ENOTDIR || r == -ELOOP)
                                return log_error_errno(
                                    -EXDEV,
                                    "%s: %s/%.*s is not a directory (a store path that is a "
                                    "symlink is not followed): the source cannot be inside it",
                                    src, sd, (int)strcspn(src + n + 1, "/"), src + n + 1);
                        return log_errno(r, "%s: cannot open its store path", src);
                }
                free(root);
        }
        last = strrchr(rel, '/');
        dirs = strndup(rel + 1, last > rel ? (size_t)(last - rel - 1) : 0);
        w->top_name = strdup(last + 1);
        if (!dirs || !w->top_name) {
                free(dirs);
                if (rootfd >= 0)
                        close(rootfd);
                return -ENOMEM;
        }
        fd = nri_open_dir_beneath(rootfd >= 0 ? rootfd : w->store_fd, dirs, true);
        free(dirs);
        if (rootfd >= 0)
                close(rootfd);
        if (fd == -EXDEV)
                return log_error_errno(
                    fd,
                    "%s: a symlink on the way to it leads out of its store path; a source is "
                    "resolved inside its store path, following only symlinks that stay there",
                    src);
        if (fd == -ELOOP)
                return log_error_errno(fd, "%s: more than 40 symlinks on the way to it", src);
        if (fd < 0)
                return log_errno(fd, "%s: cannot open the directory it is in", src);
        w->top_fd = fd;
        return 0;
}

static void close_source(walk *w) {
        if (w->top_fd >= 0)
                close(w->top_fd);
        w->top_fd = -1;
        free(w->top_name);
        w->top_name = NULL;
}

static bool builder_made(const nri_plan *plan, const char *source) {
        size_t n = plan->builder_dir ? strlen(plan->builder_dir) : 0;

        return n > 0 && strncmp(source, plan->builder_dir, n) == 0 && source[n] == '/' && source[n + 1] &&
               !strchr(source + n + 1, '/');
}

/* Copy i, its target normalised by prepare_copies(). */
static int walk_copy(walk *w, size_t i) {
        const nri_plan_copy *c = &w->plan->copies[i];
        struct stat st;
        size_t parent = 0;
        frame top;
        int r;

        r = strbuf_assign(&w->tgt, w->norm[i]);
        if (r < 0)
                return r;
        if (!c->source || c->source[0] != '/')
                return log_error_errno(-EINVAL, "%s: source path is not absolute",
                                       c->source ? c->source : "(null)");
        r = strbuf_assign(&w->src, c->source);
        if (r < 0)
                return r;
        while (w->src.len > 1 && w->src.s[w->src.len - 1] == '/')
                strbuf_set_len(&w->src, w->src.len - 1);
        if (w->src.len == 1)
                return log_error_errno(-EINVAL, "/: cannot be a source");

        w->builder_made = builder_made(w->plan, c->source);
        r = open_source(w);
        if (r < 0)
                return r;
        if (fstatat(w->top_fd, w->top_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return log_errno(-errno, "%s: cannot stat", w->src.s);

        if (w->tgt.len == 0) { /* "/": the root takes the directory's children */
                if (!S_ISDIR(st.st_mode))
                        return log_error_errno(-EISDIR, "%s: only a directory can be copied to /", w->src.s);
                r = frame_open(&top, w->top_fd, w->top_name, w->src.s);
                if (r < 0) {
                        frame_free(&top);
                        return r;
                }
                top.id = 0;
                top.src_len = w->src.len;
                top.tgt_len = 0;
                top.merged = true;
                return walk_tree(w, &top);
        }

        r = make_parents(w, &parent);
        if (r < 0)
                return r;
        r = visit(w,
                  &(source){.dirfd = w->top_fd, .name = w->top_name, .st = &st, .fd = -1, .parent = parent},
                  &top);
        if (r < 0) {
                frame_free(&top);
                return r;
        }
        if (top.fd < 0)
                return 0;
        return walk_tree(w, &top);
}

static int cmp_copy_refs(const void *a, const void *b) {
        const copy_ref *x = a, *y = b;
        int c = strcmp(x->target, y->target);

        return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* Compares the string a with the first n bytes of b taken as a string. */
static int cmp_prefix(const char *a, const char *b, size_t n) {
        int c = strncmp(a, b, n);

        return c ? c : a[n] ? 1 : 0; /* equal for n bytes: b's part has no NUL */
}

/* The first of w->by_target not before b[0..n). */
static size_t lower_bound(const walk *w, const char *b, size_t n) {
        const copy_ref *refs = w->by_target;
        size_t lo = 0, hi = w->plan->n_copies;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (cmp_prefix(refs[mid].target, b, n) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* Normalises every copy's target and sorts them, for relate_copy(). */
static int prepare_copies(walk *w) {
        size_t n = w->plan->n_copies;
        copy_ref *refs;

        w->norm = calloc(n ? n : 1, sizeof(*w->norm));
        refs = calloc(n ? n : 1, sizeof(*refs));
        w->by_target = refs;
        if (!w->norm || !refs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                int r = set_target(w, w->plan->copies[i].target);

                if (r < 0)
                        return r;
                w->norm[i] = strdup(w->tgt.s);
                if (!w->norm[i])
                        return -ENOMEM;
                refs[i] = (copy_ref){w->norm[i], i};
        }
        if (n > 0)
                qsort(refs, n, sizeof(*refs), cmp_copy_refs);
        return 0;
}

/* Which targets of copy i later copies can reach (see must_record()):
 * all of them if a later copy's target is copy i's target or a parent of
 * it, else those related to the later targets inside it. */
static int relate_copy(walk *w, size_t i) {
        const copy_ref *refs = w->by_target;
        const char *t = w->norm[i];
        size_t len = strlen(t), n = w->plan->n_copies;

        w->record_all = false;
        w->n_later = 0;
        /* "", each prefix before a slash, and t itself */
        for (size_t k = 0; k <= len; k++) {
                if (k < len && t[k] != '/')
                        continue;
                for (size_t j = lower_bound(w, t, k); j < n && cmp_prefix(refs[j].target, t, k) == 0; j++)
                        if (refs[j].index > i) {
                                w->record_all = true;
                                return 0;
                        }
        }
        /* t + "/": every target inside t; "/" for the root ("") */
        if (strbuf_assign(&w->tgt, t) < 0 || strbuf_append(&w->tgt, "/", 1) < 0)
                return -ENOMEM;
        for (size_t j = lower_bound(w, w->tgt.s, w->tgt.len);
             j < n && strncmp(refs[j].target, w->tgt.s, w->tgt.len) == 0; j++) {
                if (refs[j].index <= i)
                        continue;
                if (w->n_later == 16) { /* many: checking each name against all costs more */
                        w->record_all = true;
                        return 0;
                }
                if (w->n_later == w->cap_later) {
                        size_t cap = w->cap_later ? w->cap_later * 2 : 4;
                        const char **p = realloc(w->later, sizeof(*p) * cap);

                        if (!p)
                                return -ENOMEM;
                        w->later = p;
                        w->cap_later = cap;
                }
                w->later[w->n_later++] = refs[j].target;
        }
        return 0;
}

int nri_plan_walk(const nri_plan *plan, const nri_visitor *v) {
        walk w = {.plan = plan, .v = v, .top_fd = -1};
        int r = 0;

        w.store_fd = open(plan->store_dir ? plan->store_dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (w.store_fd < 0)
                return log_errno(-errno, "%s: cannot open", plan->store_dir ? plan->store_dir : "/");
        for (const char *const *e = plan->existing; e && *e && r >= 0; e++) {
                target_slot *slot;

                r = set_target(&w, *e);
                if (r >= 0)
                        r = target_lookup(&w.targets, w.tgt.s, w.tgt.len, &slot);
                if (r >= 0)
                        r = target_insert(&w.targets, slot, w.tgt.s, w.tgt.len, ++w.next_id, true);
        }

        for (size_t i = 0; i < plan->n_directories && r >= 0; i++) {
                size_t parent, id;

                r = set_target(&w, plan->directories[i]);
                if (r < 0 || w.tgt.len == 0)
                        continue;
                r = make_parents(&w, &parent);
                if (r >= 0)
                        r = emit_made_directory(&w, parent, w.tgt.len, &id);
        }
        if (r >= 0)
                r = prepare_copies(&w);
        for (size_t i = 0; i < plan->n_copies && r >= 0; i++) {
                w.dedup = i < plan->n_dedup;
                r = relate_copy(&w, i);
                if (r >= 0)
                        r = walk_copy(&w, i);
                close_source(&w);
        }
        close(w.store_fd);

        target_map_free(&w.targets);
        link_map_free(&w.links);
        content_map_free(&w.contents);
        for (size_t i = 0; w.norm && i < plan->n_copies; i++)
                free(w.norm[i]);
        free(w.norm);
        free(w.by_target);
        free(w.later);
        free(w.src.s);
        free(w.tgt.s);
        free(w.link.s);
        return r;
}
