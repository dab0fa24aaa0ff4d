/* tree.c: a plan's walk, kept in memory (see tree.h). */
#include "tree.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct collector {
        nri_tree *t;
        const char *what;
        nri_tree_file_fn file;
        void *ctx;
} collector;

/* An error about the tree being collected (c->what), with the errno's
 * text (log.h). */
#define fail(c, r, fmt, ...) log_error_errno((r), "%s: " fmt ": %m", (c)->what, ##__VA_ARGS__)

static int add_name(nri_tree *t, const char *s, size_t n, uint32_t *ret) {
        if (t->names_len + n + 1 > UINT32_MAX)
                return -EFBIG;
        if (t->names_len + n + 1 > t->names_cap) {
                size_t cap = t->names_cap ? t->names_cap : 65536;
                char *a;

                while (cap < t->names_len + n + 1)
                        cap *= 2;
                if (!(a = realloc(t->names, cap)))
                        return -ENOMEM;
                t->names = a, t->names_cap = cap;
        }
        memcpy(t->names + t->names_len, s, n);
        t->names[t->names_len + n] = 0;
        *ret = (uint32_t)t->names_len;
        t->names_len += n + 1;
        return 0;
}

static int add_node(collector *c, const nri_entry *e, uint32_t mode, uint64_t size, nri_tree_node **ret) {
        nri_tree *t = c->t;
        size_t len = strlen(e->name);
        nri_tree_node *n;
        int r;

        if (e->id != t->n_nodes || e->id >= UINT32_MAX || e->parent >= t->n_nodes ||
            !S_ISDIR(t->nodes[e->parent].mode))
                return fail(c, -EIO, "%s: the walk gave entry %zu in %zu where entry %zu was due", e->target,
                            e->id, e->parent, t->n_nodes);
        if (len > 255)
                return fail(c, -ENAMETOOLONG, "%s", e->target);
        if (t->n_nodes == t->cap_nodes) {
                size_t cap = 2 * t->cap_nodes;
                nri_tree_node *v = realloc(t->nodes, cap * sizeof(*v));

                if (!v)
                        return -ENOMEM;
                t->nodes = v, t->cap_nodes = cap;
        }
        n = &t->nodes[t->n_nodes];
        *n = (nri_tree_node){.size = size,
                             .parent = (uint32_t)e->parent,
                             .inode = (uint32_t)e->id,
                             .nlink = 1,
                             .name_len = (uint16_t)len,
                             .mode = mode};
        r = add_name(t, e->name, len, &n->name);
        if (r < 0)
                return r;
        t->n_nodes++;
        *ret = n;
        return 0;
}

static int on_directory(void *ctx, const nri_entry *e) {
        collector *c = ctx;
        nri_tree_node *n;
        int r = add_node(c, e, e->mode, 0, &n);

        if (r < 0)
                return r;
        n->nlink = 2;
        c->t->nodes[n->parent].nlink++;
        return 0;
}

static int on_file(void *ctx, const nri_entry *e, int fd) {
        collector *c = ctx;
        nri_tree_node *n;
        int r = add_node(c, e, e->mode, e->size, &n);

        if (r >= 0 && c->file)
                r = c->file(c->ctx, c->t, (uint32_t)e->id, e, fd);
        return r;
}

static int on_symlink(void *ctx, const nri_entry *e) {
        collector *c = ctx;
        size_t len = strlen(e->link_target);
        nri_tree_node *n;
        int r = add_node(c, e, e->mode, len, &n);

        if (r >= 0)
                r = add_name(c->t, e->link_target, len, &n->link_target);
        return r;
}

static int on_hardlink(void *ctx, const nri_entry *e) {
        collector *c = ctx;
        nri_tree *t = c->t;
        nri_tree_node *n;
        int r;

        if (e->hardlink_id >= t->n_nodes || !S_ISREG(t->nodes[e->hardlink_id].mode) ||
            t->nodes[e->hardlink_id].inode != e->hardlink_id)
                return fail(c, -EIO, "%s: a hard link to %zu, which is no file", e->target, e->hardlink_id);
        r = add_node(c, e, t->nodes[e->hardlink_id].mode, t->nodes[e->hardlink_id].size, &n);
        if (r < 0)
                return r;
        n->inode = (uint32_t)e->hardlink_id;
        if (++t->nodes[n->inode].nlink == 0)
                return fail(c, -EMLINK, "%s", e->target);
        return 0;
}

static const nri_tree *sort_tree; /* qsort() has no context argument */

static int cmp_children(const void *x, const void *y) {
        const nri_tree_node *a = &sort_tree->nodes[*(const uint32_t *)x],
                            *b = &sort_tree->nodes[*(const uint32_t *)y];

        return nri_tree_name_cmp(sort_tree->names + a->name, a->name_len, sort_tree->names + b->name,
                                 b->name_len);
}

static int sort_children(nri_tree *t) {
        uint32_t *fill = calloc(t->n_nodes, sizeof(*fill));

        t->children = malloc(t->n_nodes * sizeof(*t->children));
        if (!fill || !t->children) {
                free(fill);
                return -ENOMEM;
        }
        for (size_t i = 1; i < t->n_nodes; i++)
                t->nodes[t->nodes[i].parent].n_children++;
        for (size_t i = 0, at = 0; i < t->n_nodes; i++)
                if (S_ISDIR(t->nodes[i].mode))
                        t->nodes[i].children = (uint32_t)at, at += t->nodes[i].n_children;
        for (size_t i = 1; i < t->n_nodes; i++) {
                uint32_t p = t->nodes[i].parent;

                t->children[t->nodes[p].children + fill[p]++] = (uint32_t)i;
        }
        free(fill);
        sort_tree = t;
        for (size_t i = 0; i < t->n_nodes; i++)
                if (S_ISDIR(t->nodes[i].mode))
                        qsort(t->children + t->nodes[i].children, t->nodes[i].n_children, sizeof(uint32_t),
                              cmp_children);
        return 0;
}

int nri_tree_collect(const nri_plan *plan, const char *what, nri_tree_file_fn file, void *ctx,
                     nri_tree *ret) {
        collector c = {.t = ret, .what = what, .file = file, .ctx = ctx};
        nri_visitor v = {.ctx = &c,
                         .directory = on_directory,
                         .file = on_file,
                         .symlink = on_symlink,
                         .hardlink = on_hardlink};
        int r;

        memset(ret, 0, sizeof(*ret));
        if (plan->existing && plan->existing[0])
                return fail(&c, -EINVAL,
                            "%s: the plan counts on a directory the file system would have made",
                            plan->existing[0]);
        ret->nodes = malloc(1024 * sizeof(*ret->nodes));
        if (!ret->nodes)
                return -ENOMEM;
        ret->cap_nodes = 1024;
        ret->nodes[0] = (nri_tree_node){.nlink = 2, .mode = S_IFDIR | 0755};
        ret->n_nodes = 1;
        r = add_name(ret, "", 0, &ret->nodes[0].name);
        if (r >= 0)
                r = nri_plan_walk(plan, &v);
        if (r >= 0)
                r = sort_children(ret);
        if (r == -ENOMEM || r == -EFBIG)
                fail(&c, r, "cannot keep the tree of the file system");
        return r;
}

void nri_tree_free(nri_tree *t) {
        free(t->nodes);
        free(t->names);
        free(t->children);
        memset(t, 0, sizeof(*t));
}
