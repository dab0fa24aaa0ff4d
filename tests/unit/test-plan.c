/* test-plan.c: the plan walk (plan.h) over a source tree like a store path
 * (tree-test.h): the order of the entries and their ids, a later copy that
 * merges into or collides with what an earlier one made, and trees deeper
 * than the descriptors the walk keeps open. */
#include "tree-test.h"

/* ---- the walk ---- */

typedef struct recorder {
        char log[16384];
        size_t len;
} recorder;

static void rec(recorder *r, const char *f, ...) __attribute__((format(printf, 2, 3)));
static void rec(recorder *r, const char *f, ...) {
        va_list ap;

        va_start(ap, f);
        r->len += vsnprintf(r->log + r->len, sizeof(r->log) - r->len, f, ap);
        va_end(ap);
}

static int rec_dir(void *ctx, const nri_entry *e) {
        rec(ctx, "D %s %o #%zu<%zu\n", e->target, (unsigned)e->mode & 07777, e->id, e->parent);
        return 0;
}

static int rec_file(void *ctx, const nri_entry *e, int fd) {
        rec(ctx, "F %s %o %llu%s%s\n", e->target, (unsigned)e->mode & 07777, (unsigned long long)e->size,
            fd >= 0 ? "" : " nofd", e->hardlink_of ? " copy-of-link" : "");
        return 0;
}

static int rec_symlink(void *ctx, const nri_entry *e) {
        rec(ctx, "L %s -> %s\n", e->target, e->link_target);
        return 0;
}

static int rec_hardlink(void *ctx, const nri_entry *e) {
        rec(ctx, "H %s = %s #%zu\n", e->target, e->hardlink_of, e->hardlink_id);
        return 0;
}

static void test_walk_order(void) {
        char *src = fmt("%s/walk", root), *p;
        recorder r = {0};
        nri_visitor v = {&r, rec_dir, rec_file, rec_symlink, rec_hardlink};
        nri_plan_copy copies[3];
        const char *dirs[] = {"/a/made", "/a"};
        nri_plan plan = {.directories = dirs, .n_directories = 2, .copies = copies, .n_copies = 3};
        char *t1 = fmt("%s/t1", src), *t2 = fmt("%s/t2", src), *f = fmt("%s/t1/b", src);

        mkdir_p(src, 0755);
        mkdir_p(t1, 0555);
        p = fmt("%s/t1/b", src), write_file(p, "bb", 2, 0644), free(p);
        p = fmt("%s/t1/a", src);
        CHECK(symlink("b", p) == 0);
        free(p);
        p = fmt("%s/t1/c", src);
        CHECK(link(f, p) == 0);
        free(p);
        mkdir_p(t2, 0700);
        p = fmt("%s/t2/z", src), write_file(p, "z", 1, 0600), free(p);
        p = fmt("%s/t2/B", src), write_file(p, "", 0, 0444), free(p);
        copies[0] = (nri_plan_copy){.source = t1, .target = "/x/y"};
        copies[1] = (nri_plan_copy){.source = t2, .target = "/x/y"}; /* merges */
        copies[2] = (nri_plan_copy){.source = t1, .target = "/"};    /* into the root */

        /* The last copy stops at /a: a made directory, not a symlink. */
        CHECK(nri_plan_walk(&plan, &v) == -EEXIST);
        CHECK_STR(r.log, "D /a 755 #1<0\n"
                         "D /a/made 755 #2<1\n"
                         "D /x 755 #3<0\n"
                         "D /x/y 555 #4<3\n"
                         "L /x/y/a -> b\n"
                         "F /x/y/b 644 2\n"
                         "H /x/y/c = /x/y/b #6\n"
                         "F /x/y/B 444 0\n"
                         "F /x/y/z 600 1\n");
        /* A directory copied to / fills the root. */
        r.len = 0;
        plan.n_directories = 0;
        plan.n_copies = 1;
        copies[0] = (nri_plan_copy){.source = t1, .target = "/"};
        CHECK(nri_plan_walk(&plan, &v) == 0);
        CHECK_STR(r.log, "L /a -> b\nF /b 644 2\nH /c = /b #2\n");

        /* Collisions. */
        r.len = 0;
        plan.n_copies = 2;
        copies[0] = (nri_plan_copy){.source = f, .target = "/f"};
        copies[1] = (nri_plan_copy){.source = f, .target = "/f"};
        CHECK(nri_plan_walk(&plan, &v) == -EEXIST);
        copies[1] = (nri_plan_copy){.source = t2, .target = "/f"};
        CHECK(nri_plan_walk(&plan, &v) == -EEXIST);
        copies[1] = (nri_plan_copy){.source = f, .target = "/f/g"};
        CHECK(nri_plan_walk(&plan, &v) == -ENOTDIR);
        copies[1] = (nri_plan_copy){.source = f, .target = "/"};
        CHECK(nri_plan_walk(&plan, &v) == -EISDIR);
        copies[1] = (nri_plan_copy){.source = f, .target = "relative"};
        CHECK(nri_plan_walk(&plan, &v) == -EINVAL);
        copies[1] = (nri_plan_copy){.source = f, .target = "/a/../b"};
        CHECK(nri_plan_walk(&plan, &v) == -EINVAL);
        p = fmt("%s/missing", src);
        copies[1] = (nri_plan_copy){.source = p, .target = "/m"};
        CHECK(nri_plan_walk(&plan, &v) == -ENOENT);
        free(p);

        /* Without a symlink callback symlinks are refused; without a
         * hardlink callback later names are copies; ignore_hardlinks. */
        r.len = 0;
        plan.n_copies = 1;
        copies[0] = (nri_plan_copy){.source = t1, .target = "/t"};
        v.symlink = NULL;
        CHECK(nri_plan_walk(&plan, &v) == -EOPNOTSUPP);
        p = fmt("%s/t1/a", src);
        CHECK(unlink(p) == 0);
        free(p);
        r.len = 0;
        v.hardlink = NULL;
        CHECK(nri_plan_walk(&plan, &v) == 0);
        CHECK_STR(r.log, "D /t 555 #1<0\nF /t/b 644 2\nF /t/c 644 2 copy-of-link\n");
        r.len = 0;
        v.hardlink = rec_hardlink;
        plan.ignore_hardlinks = true;
        CHECK(nri_plan_walk(&plan, &v) == 0);
        CHECK_STR(r.log, "D /t 555 #1<0\nF /t/b 644 2\nF /t/c 644 2\n");

        free(t1), free(t2), free(f), free(src);
}

/* The walk keeps only the targets a later copy can reach again; a later
 * copy must still find every name an earlier one made where it lands:
 * deep inside an earlier tree, under a parent of it, past many others. */
static void test_walk_later_copies(void) {
        char *src = fmt("%s/later", root), *t = fmt("%s/t", src), *u = fmt("%s/u", src);
        char *g = fmt("%s/g", src), *p;
        recorder r = {0};
        nri_visitor v = {&r, rec_dir, rec_file, rec_symlink, rec_hardlink};
        nri_plan_copy copies[24];
        nri_plan plan = {.copies = copies};
        char *names[21];

        mkdir_p(src, 0755);
        mkdir_p(t, 0755);
        p = fmt("%s/d", t), mkdir_p(p, 0755), free(p);
        p = fmt("%s/d/e", t), mkdir_p(p, 0755), free(p);
        p = fmt("%s/d/e/f", t), write_file(p, "f", 1, 0644), free(p);
        p = fmt("%s/d/e/k", t), write_file(p, "k", 1, 0644), free(p);
        mkdir_p(u, 0755);
        p = fmt("%s/e", u), mkdir_p(p, 0755), free(p);
        p = fmt("%s/e/f", u), write_file(p, "F", 1, 0644), free(p);
        write_file(g, "g", 1, 0644);

        /* u merges into t's d, and its e/f is t's d/e/f. */
        copies[0] = (nri_plan_copy){.source = t, .target = "/x"};
        copies[1] = (nri_plan_copy){.source = u, .target = "/x/d"};
        plan.n_copies = 2;
        CHECK(nri_plan_walk(&plan, &v) == -EEXIST);
        /* A file at a name deep in an earlier tree, a directory over a file. */
        copies[1] = (nri_plan_copy){.source = g, .target = "/x/d/e/k"};
        CHECK(nri_plan_walk(&plan, &v) == -EEXIST);
        copies[1] = (nri_plan_copy){.source = u, .target = "/x/d/e/k"};
        CHECK(nri_plan_walk(&plan, &v) == -EEXIST);
        /* Into a directory of the earlier tree: merged, once. */
        r.len = 0;
        copies[1] = (nri_plan_copy){.source = g, .target = "/x/d/e/g"};
        CHECK(nri_plan_walk(&plan, &v) == 0);
        CHECK_STR(r.log, "D /x 755 #1<0\nD /x/d 755 #2<1\nD /x/d/e 755 #3<2\nF /x/d/e/f 644 1\n"
                         "F /x/d/e/k 644 1\nF /x/d/e/g 644 1\n");
        /* A tree copied to / under twenty later copies (more than the walk
         * checks name by name), the last of them onto one of its files. */
        for (size_t i = 1; i < 21; i++) {
                names[i] = fmt("/n%02zu", i);
                copies[i] = (nri_plan_copy){.source = g, .target = names[i]};
        }
        copies[0] = (nri_plan_copy){.source = t, .target = "/"};
        copies[21] = (nri_plan_copy){.source = g, .target = "/d/e/f"};
        plan.n_copies = 22;
        CHECK(nri_plan_walk(&plan, &v) == -EEXIST);
        copies[21] = (nri_plan_copy){.source = g, .target = "/d/e/z"};
        CHECK(nri_plan_walk(&plan, &v) == 0);
        /* An earlier copy reached by a later one at a parent of its target. */
        copies[0] = (nri_plan_copy){.source = g, .target = "/p/q/r"};
        copies[1] = (nri_plan_copy){.source = g, .target = "/p/q"};
        plan.n_copies = 2;
        CHECK(nri_plan_walk(&plan, &v) == -EEXIST);
        for (size_t i = 1; i < 21; i++)
                free(names[i]);
        free(src), free(t), free(u), free(g);
}

static int count_entry(void *ctx, const nri_entry *e) {
        size_t *n = ctx;

        (void)e;
        ++*n;
        return 0;
}

static int count_file(void *ctx, const nri_entry *e, int fd) {
        size_t *n = ctx;
        char c;

        if (pread(fd, &c, 1, 0) != 1 || c != 'x')
                return -EIO;
        if (strlen(e->target) <= 5000)
                return -EINVAL;
        ++*n;
        return 0;
}

/* `levels` nested directories with names of `len` bytes, a file "leaf"
 * holding "x" at the bottom. */
static void make_deep(const char *top, int levels, size_t len) {
        char name[256];
        int fd, next;

        memset(name, 'd', len);
        name[len] = 0;
        mkdir_p(top, 0755);
        fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        for (int i = 0; i < levels; i++) {
                if (mkdirat(fd, name, 0755) < 0)
                        abort();
                next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                close(fd);
                fd = next;
        }
        next = openat(fd, "leaf", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (next < 0 || write(next, "x", 1) != 1)
                abort();
        close(next);
        close(fd);
}

/* Paths longer than PATH_MAX (50 levels of 100-byte names), and more
 * levels than the walk keeps descriptors for (1000 levels, beside a file
 * at each of the first two levels so the walk climbs back through them). */
static void test_walk_deep(void) {
        char *top = fmt("%s/deep", root), *top2 = fmt("%s/deeper", root), *p;
        size_t n = 0;
        nri_visitor v = {&n, count_entry, count_file, NULL, NULL};
        nri_plan_copy c = {.source = top, .target = "/deep"};
        nri_plan plan = {.copies = &c, .n_copies = 1};
        nri_plan_stats st;

        make_deep(top, 50, 100);
        CHECK(nri_plan_walk(&plan, &v) == 0);
        CHECK_U64(n, 52); /* /deep, 50 directories, the leaf */
        CHECK(nri_plan_measure(&plan, &st) == 0);
        CHECK_U64(st.directories, 51);
        CHECK_U64(st.files, 1);
        CHECK_U64(st.bytes, 1);
        CHECK_U64(st.name_bytes, 4 + 50 * 100 + 4);

        make_deep(top2, 1000, 1);
        p = fmt("%s/z", top2);
        write_file(p, "z", 1, 0644);
        free(p);
        p = fmt("%s/d/z", top2);
        write_file(p, "z", 1, 0644);
        free(p);
        c.source = top2;
        CHECK(nri_plan_measure(&plan, &st) == 0);
        CHECK_U64(st.directories, 1001);
        CHECK_U64(st.files, 3);
        free(top), free(top2);
}

int main(void) {
        const char *tmp = getenv("TMPDIR");
        char *cmd;

        snprintf(root, sizeof(root), "%s/test-plan-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(root)) {
                perror("mkdtemp");
                return 1;
        }
        setenv("TZ", "UTC", 1);

        test_walk_order();
        test_walk_later_copies();
        test_walk_deep();

        cmd = fmt("chmod -R u+w '%s' && rm -rf '%s'", root, root);
        if (!check_failures)
                run(cmd);
        else
                fprintf(stderr, "left %s for inspection\n", root);
        free(cmd);
        return check_result();
}
