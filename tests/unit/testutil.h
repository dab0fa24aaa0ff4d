/* testutil.h: what the writer tests share: running tools, files, and a
 * source tree shaped like store paths with the plan that copies it, and a
 * comparison of an extracted file system with the tree the plan describes.
 * Header-only (static functions); include after check.h. */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plan.h"

#define MiB (UINT64_C(1024) * 1024)

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2), unused));
static char *fmt(const char *f, ...) {
        va_list ap;
        char *s;

        va_start(ap, f);
        if (vasprintf(&s, f, ap) < 0)
                abort();
        va_end(ap);
        return s;
}

/* Runs a shell command; its exit status. */
static __attribute__((unused)) int run(const char *cmd) {
        int st = system(cmd);

        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs a shell command; its standard output (malloc'ed). */
static __attribute__((unused)) char *capture(const char *cmd) {
        FILE *f = popen(cmd, "r");
        size_t len = 0, cap = 4096;
        char *s = malloc(cap);

        if (!f || !s)
                abort();
        for (;;) {
                size_t n = fread(s + len, 1, cap - len - 1, f);

                if (n == 0)
                        break;
                len += n;
                if (cap - len < 2 && !(s = realloc(s, cap *= 2)))
                        abort();
        }
        s[len] = 0;
        pclose(f);
        return s;
}

static __attribute__((unused)) bool contains(const char *hay, const char *needle) {
        bool yes = hay && strstr(hay, needle);

        if (!yes)
                fprintf(stderr, "expected \"%s\" in:\n%s\n", needle, hay ? hay : "(null)");
        return yes;
}

static __attribute__((unused)) bool have_tool(const char *name) {
        char *c = fmt("command -v %s >/dev/null 2>&1", name);
        bool yes = run(c) == 0;

        free(c);
        return yes;
}

static __attribute__((unused)) void write_file(const char *path, const void *data, size_t n, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        if (fd < 0 || (n && write(fd, data, n) != (ssize_t)n) || fchmod(fd, mode) < 0) {
                perror(path);
                abort();
        }
        close(fd);
}

static __attribute__((unused)) void write_at(int fd, uint64_t off, const void *data, size_t n) {
        if (pwrite(fd, data, n, (off_t)off) != (ssize_t)n)
                abort();
}

static __attribute__((unused)) void mkdir_p(const char *path, mode_t mode) {
        if (mkdir(path, mode) < 0 && errno != EEXIST) {
                perror(path);
                abort();
        }
}

/* Deterministic bytes that are never a whole zero block. */
static __attribute__((unused)) void fill(char *p, size_t n, uint32_t seed) {
        uint32_t x = seed | 1;

        for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                p[i] = (char)(x | 1);
        }
}

static __attribute__((unused)) char *read_all(const char *path, size_t *ret_len) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        char *p;

        if (fd < 0 || fstat(fd, &st) < 0)
                return NULL;
        p = malloc((size_t)st.st_size + 1);
        if (!p || read(fd, p, (size_t)st.st_size) != st.st_size)
                abort();
        p[st.st_size] = 0;
        close(fd);
        *ret_len = (size_t)st.st_size;
        return p;
}

/* A file of `size` bytes of `byte`, for images with something in them
 * before the writer runs. */
static __attribute__((unused)) void make_image(const char *path, uint64_t size, int byte) {
        char buf[65536];
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        if (fd < 0)
                abort();
        memset(buf, byte, sizeof(buf));
        for (uint64_t off = 0; off < size; off += sizeof(buf))
                write_at(fd, off, buf, size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf));
        close(fd);
}

/* Whether bytes [off, off + n) of the file all equal `byte`. */
static __attribute__((unused)) bool bytes_are(const char *path, uint64_t off, uint64_t n, int byte) {
        char buf[65536];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        bool ok = fd >= 0;

        while (ok && n > 0) {
                size_t k = n < sizeof(buf) ? (size_t)n : sizeof(buf);

                ok = pread(fd, buf, k, (off_t)off) == (ssize_t)k;
                for (size_t i = 0; ok && i < k; i++)
                        ok = buf[i] == (char)byte;
                off += k;
                n -= k;
        }
        if (fd >= 0)
                close(fd);
        return ok;
}

/* A child process that writes into `path` without end (the same bytes at
 * random places: the same size, new times), as a source that changes
 * while a writer copies it.  Stop it with stop_changer(). */
static __attribute__((unused)) pid_t start_changer(const char *path) {
        pid_t pid = fork();

        if (pid == 0) {
                int fd = open(path, O_RDWR | O_CLOEXEC);
                struct stat st;
                uint32_t x = 12345;
                char b;

                if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0)
                        _exit(1);
                for (;;) {
                        off_t off = (off_t)((x = x * 1103515245 + 12345) % (uint32_t)st.st_size);

                        if (pread(fd, &b, 1, off) == 1 && pwrite(fd, &b, 1, off) != 1)
                                _exit(1);
                }
        }
        usleep(100 * 1000);
        return pid;
}

static __attribute__((unused)) void stop_changer(pid_t pid) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

/* ---- a source tree like store paths ---- */

static __attribute__((unused)) const char *long_name(void) {
        static char name[256];

        memset(name, 'n', 255);
        name[0] = 'L';
        name[255] = 0;
        return name;
}

/* The first store path: every kind of entry the walk hands a writer. */
static __attribute__((unused)) void make_tree(const char *dir, int n_many) {
        char *big = malloc(3 * MiB + 123), block[4096], *p, *deep;
        int fd;

        mkdir_p(dir, 0755);
        fill(big, 3 * MiB + 123, 7);
        p = fmt("%s/big.bin", dir), write_file(p, big, 3 * MiB + 123, 0444), free(p);
        p = fmt("%s/exact-block", dir), write_file(p, big, 8192, 0444), free(p);
        p = fmt("%s/empty", dir), write_file(p, "", 0, 0644), free(p);
        p = fmt("%s/small.txt", dir), write_file(p, "hello, world\n", 13, 0644), free(p);
        p = fmt("%s/run.sh", dir), write_file(p, "#!/bin/sh\necho hi\n", 18, 0755), free(p);
        p = fmt("%s/setuid-like", dir), write_file(p, "s\n", 2, 04755), free(p);
        p = fmt("%s/name with spaces", dir), write_file(p, "spaces\n", 7, 0444), free(p);
        p = fmt("%s/grüße-✓-日本", dir), write_file(p, "utf-8\n", 6, 0644), free(p);
        p = fmt("%s/-dash-sorts-before-dot", dir), write_file(p, "-\n", 2, 0644), free(p);
        p = fmt("%s/%s", dir, long_name()), write_file(p, "long name\n", 10, 0644), free(p);

        /* 8 MiB with data at 1 MiB and 5 MiB + 100, ending in a hole. */
        p = fmt("%s/sparse.bin", dir);
        fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || ftruncate(fd, 8 * MiB) < 0)
                abort();
        write_at(fd, 1 * MiB, "data", 4);
        write_at(fd, 5 * MiB + 100, "more", 4);
        close(fd);
        free(p);

        /* Two blocks of zeros in the middle of data. */
        p = fmt("%s/zeros-inside", dir);
        fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        fill(block, sizeof(block), 3);
        write_at(fd, 0, block, 4096);
        memset(block, 0, sizeof(block));
        write_at(fd, 4096, block, 4096);
        write_at(fd, 8192, block, 4096);
        fill(block, sizeof(block), 4);
        write_at(fd, 12288, block, 1000);
        close(fd);
        free(p);

        p = fmt("%s/link-rel", dir);
        CHECK(symlink("small.txt", p) == 0);
        free(p);
        p = fmt("%s/link-abs", dir);
        CHECK(symlink("/nix/store/0000-none/bin/sh", p) == 0);
        free(p);
        p = fmt("%s/link-dangling", dir);
        CHECK(symlink("does/not/exist", p) == 0);
        free(p);
        p = fmt("%s/link-dir", dir);
        CHECK(symlink("sub", p) == 0);
        free(p);
        {
                char target[4001];

                memset(target, 'x', sizeof(target) - 1);
                target[sizeof(target) - 1] = 0;
                for (size_t i = 100; i < sizeof(target) - 1; i += 100)
                        target[i] = '/';
                p = fmt("%s/link-4000", dir);
                CHECK(symlink(target, p) == 0);
                free(p);
        }
        p = fmt("%s/hard-a", dir), write_file(p, "one inode, two names\n", 21, 0444);
        deep = fmt("%s/hard-b", dir);
        CHECK(link(p, deep) == 0);
        free(deep), free(p);

        /* Many names in one directory, a deep tree, an empty directory. */
        p = fmt("%s/sub", dir), mkdir_p(p, 0755), free(p);
        for (int i = 0; i < n_many; i++) {
                p = fmt("%s/sub/entry-number-%05d-with-a-longish-name", dir, i);
                write_file(p, p + strlen(dir), strlen(p) - strlen(dir), i % 3 ? 0644 : 0755);
                free(p);
        }
        deep = fmt("%s/deep", dir);
        for (int i = 0; i < 60; i++) {
                mkdir_p(deep, 0755);
                p = fmt("%s/d%02d", deep, i);
                free(deep);
                deep = p;
        }
        mkdir_p(deep, 0755);
        p = fmt("%s/bottom", deep), write_file(p, "the bottom\n", 11, 0644), free(p);
        free(deep);
        p = fmt("%s/empty-dir", dir), mkdir_p(p, 0755), free(p);

        /* A read-only directory, as in the store: made last. */
        p = fmt("%s/ro", dir), mkdir_p(p, 0755), free(p);
        p = fmt("%s/ro/file", dir), write_file(p, "in ro\n", 6, 0444), free(p);
        p = fmt("%s/ro", dir);
        CHECK(chmod(p, 0555) == 0);
        free(p);
        free(big);
}

/* A second store path; its "shared" is a hard link into the first one's
 * tree (as nix-store --optimise makes them). */
static __attribute__((unused)) void make_tree2(const char *dir, const char *first) {
        char *p, *q;

        mkdir_p(dir, 0755);
        p = fmt("%s/bin", dir), mkdir_p(p, 0755), free(p);
        p = fmt("%s/bin/tool", dir), write_file(p, "#!/bin/sh\n", 10, 0555), free(p);
        p = fmt("%s/hard-a", first), q = fmt("%s/shared", dir);
        CHECK(link(p, q) == 0);
        free(p), free(q);
        p = fmt("%s/etc-extra", dir), mkdir_p(p, 0755), free(p);
        p = fmt("%s/etc-extra/os-release", dir), write_file(p, "ID=nixos\n", 9, 0644), free(p);
}

/* The plan of a small system: two store paths under /nix/store, a file and
 * a symlink from `contents`, a directory merged into /etc, and
 * MakeDirectories=. */
typedef struct test_plan {
        nri_plan plan;
        nri_plan_copy copies[5];
        const char *dirs[2];
        char *s[5];
} test_plan;

static __attribute__((unused)) void make_plan(test_plan *tp, const char *src, int64_t mtime) {
        memset(tp, 0, sizeof(*tp));
        tp->s[0] = fmt("%s/tree", src);
        tp->s[1] = fmt("%s/tree2", src);
        tp->s[2] = fmt("%s/tree/small.txt", src);
        tp->s[3] = fmt("%s/tree/link-rel", src);
        tp->s[4] = fmt("%s/tree2/etc-extra", src);
        tp->copies[0] = (nri_plan_copy){.source = tp->s[0], .target = "/nix/store/aaaa-tree"};
        tp->copies[1] = (nri_plan_copy){.source = tp->s[1], .target = "/nix/store/bbbb-tree2"};
        tp->copies[2] = (nri_plan_copy){.source = tp->s[2], .target = "/etc/motd"};
        tp->copies[3] = (nri_plan_copy){.source = tp->s[3], .target = "/etc/link"};
        tp->copies[4] = (nri_plan_copy){.source = tp->s[4], .target = "/etc"};
        tp->dirs[0] = "/var/empty";
        tp->dirs[1] = "/nix/store";
        tp->plan = (nri_plan){
            .directories = tp->dirs,
            .n_directories = 2,
            .copies = tp->copies,
            .n_copies = 5,
            .mtime = mtime,
        };
}

static __attribute__((unused)) void free_plan(test_plan *tp) {
        for (size_t i = 0; i < 5; i++)
                free(tp->s[i]);
}

static __attribute__((unused)) void make_source(const char *src, int n_many) {
        char *a = fmt("%s/tree", src), *b = fmt("%s/tree2", src);

        mkdir_p(src, 0755);
        make_tree(a, n_many);
        make_tree2(b, a);
        free(a), free(b);
}

/* What the plan's file system must hold, made with cp -a in `dir` (made
 * directories 0755, root 0755; the two store paths in one cp, which keeps
 * the hard link between them). */
static __attribute__((unused)) void make_expected(const test_plan *tp, const char *dir) {
        char *c;

        mkdir_p(dir, 0755);
        c = fmt("set -e; cd '%s'; chmod 755 .; mkdir -p var/empty nix/store etc; "
                "cp -a '%s' '%s' nix/store/; mv nix/store/tree nix/store/aaaa-tree; "
                "mv nix/store/tree2 nix/store/bbbb-tree2; "
                "cp -a '%s' etc/motd; cp -a '%s' etc/link; cp -a '%s'/. etc/",
                dir, tp->s[0], tp->s[1], tp->s[2], tp->s[3], tp->s[4]);
        CHECK(run(c) == 0);
        free(c);
}

/* ---- comparing trees ---- */

static int cmp_names(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in a directory, sorted; *ret_n their count. */
static char **list_dir(const char *path, size_t *ret_n) {
        DIR *d = opendir(path);
        struct dirent *de;
        char **v = NULL;
        size_t n = 0;

        if (!d) {
                *ret_n = SIZE_MAX;
                return NULL;
        }
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (!(v = realloc(v, (n + 1) * sizeof(*v))))
                        abort();
                v[n++] = strdup(de->d_name);
        }
        closedir(d);
        if (n)
                qsort(v, n, sizeof(*v), cmp_names);
        *ret_n = n;
        return v;
}

static bool same_content(const char *a, const char *b) {
        size_t la, lb;
        char *x = read_all(a, &la), *y = read_all(b, &lb);
        bool same = x && y && la == lb && memcmp(x, y, la) == 0;

        free(x), free(y);
        return same;
}

/* Compares the tree at `got` with the tree at `want`: the same names, types,
 * permission bits (all 07777 unless `perm_mask` says fewer), file bytes and
 * symlink targets; with mtime >= 0, every mtime equals it.  Each
 * difference is printed; returns the number found. */
static __attribute__((unused)) int compare_trees(const char *got, const char *want, mode_t perm_mask,
                                                 int64_t mtime) {
        struct stat sg, sw;
        int diffs = 0;

        if (lstat(got, &sg) < 0 || lstat(want, &sw) < 0) {
                fprintf(stderr, "compare: %s or %s is missing\n", got, want);
                return 1;
        }
        if ((sg.st_mode & S_IFMT) != (sw.st_mode & S_IFMT)) {
                fprintf(stderr, "compare: %s: type %o, want %o\n", got, sg.st_mode & S_IFMT,
                        sw.st_mode & S_IFMT);
                return 1;
        }
        if ((sg.st_mode & perm_mask) != (sw.st_mode & perm_mask)) {
                fprintf(stderr, "compare: %s: mode %o, want %o\n", got, sg.st_mode & 07777,
                        sw.st_mode & 07777);
                diffs++;
        }
        if (mtime >= 0 && !S_ISLNK(sg.st_mode) && sg.st_mtime != mtime) {
                fprintf(stderr, "compare: %s: mtime %lld, want %lld\n", got, (long long)sg.st_mtime,
                        (long long)mtime);
                diffs++;
        }
        if (S_ISREG(sg.st_mode)) {
                if (sg.st_size != sw.st_size || !same_content(got, want)) {
                        fprintf(stderr, "compare: %s: content differs from %s\n", got, want);
                        diffs++;
                }
        } else if (S_ISLNK(sg.st_mode)) {
                char tg[8192], tw[8192];
                ssize_t ng = readlink(got, tg, sizeof(tg)), nw = readlink(want, tw, sizeof(tw));

                if (ng < 0 || ng != nw || memcmp(tg, tw, (size_t)ng) != 0) {
                        fprintf(stderr, "compare: %s: symlink target differs\n", got);
                        diffs++;
                }
        } else if (S_ISDIR(sg.st_mode)) {
                size_t ng, nw;
                char **lg = list_dir(got, &ng), **lw = list_dir(want, &nw);

                if (ng != nw)
                        fprintf(stderr, "compare: %s: %zu names, want %zu\n", got, ng, nw), diffs++;
                for (size_t i = 0, j = 0; i < ng || j < nw;) {
                        int c = i == ng ? 1 : j == nw ? -1 : strcmp(lg[i], lw[j]);

                        if (c < 0) {
                                fprintf(stderr, "compare: %s/%s: not wanted\n", got, lg[i++]), diffs++;
                        } else if (c > 0) {
                                fprintf(stderr, "compare: %s/%s: missing\n", got, lw[j++]), diffs++;
                        } else {
                                char *a = fmt("%s/%s", got, lg[i]), *b = fmt("%s/%s", want, lw[j]);

                                diffs += compare_trees(a, b, perm_mask, mtime);
                                free(a), free(b);
                                i++, j++;
                        }
                }
                for (size_t i = 0; i < ng; i++)
                        free(lg[i]);
                for (size_t i = 0; i < nw; i++)
                        free(lw[i]);
                free(lg), free(lw);
        }
        return diffs;
}
