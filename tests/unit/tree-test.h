/* tree-test.h: what test-plan.c and test-ext4.c share — a source tree
 * like a store path, made in a temporary directory, a plan over it, and
 * small helpers.  The functions are static inline: each test uses some. */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "plan.h"

#define MiB (UINT64_C(1024) * 1024)
#define T0 INT64_C(1700000000)

static char root[256]; /* the test's temporary directory */

/* ---- helpers ---- */

static inline char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static inline char *fmt(const char *f, ...) {
        va_list ap;
        char *s;

        va_start(ap, f);
        if (vasprintf(&s, f, ap) < 0)
                abort();
        va_end(ap);
        return s;
}

/* Runs a shell command; its exit status. */
static inline int run(const char *cmd) {
        int st = system(cmd);

        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs a shell command; its standard output (malloc'ed). */
static inline char *capture(const char *cmd) {
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
                if (cap - len < 2)
                        s = realloc(s, cap *= 2);
        }
        s[len] = 0;
        pclose(f);
        return s;
}

static inline bool contains(const char *hay, const char *needle) {
        bool yes = hay && strstr(hay, needle);

        if (!yes)
                fprintf(stderr, "expected \"%s\" in:\n%s\n", needle, hay ? hay : "(null)");
        return yes;
}

static inline void write_file(const char *path, const void *data, size_t n, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        if (fd < 0 || (n && write(fd, data, n) != (ssize_t)n) || fchmod(fd, mode) < 0) {
                perror(path);
                abort();
        }
        close(fd);
}

static inline void write_at(int fd, uint64_t off, const void *data, size_t n) {
        if (pwrite(fd, data, n, (off_t)off) != (ssize_t)n)
                abort();
}

static inline void mkdir_p(const char *path, mode_t mode) {
        if (mkdir(path, mode) < 0 && errno != EEXIST) {
                perror(path);
                abort();
        }
}

/* Deterministic bytes that are never a whole zero block. */
static inline void fill(char *p, size_t n, uint32_t seed) {
        uint32_t x = seed | 1;

        for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                p[i] = (char)(x | 1);
        }
}

static inline char *read_all(const char *path, size_t *ret_len) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        char *p;

        if (fd < 0 || fstat(fd, &st) < 0)
                return NULL;
        p = malloc(st.st_size + 1);
        if (!p || read(fd, p, st.st_size) != st.st_size)
                abort();
        close(fd);
        *ret_len = st.st_size;
        return p;
}

static inline const char *long_name(void) {
        static char name[256];

        memset(name, 'n', 255);
        name[0] = 'L';
        name[255] = 0;
        return name;
}

#define LONG_TARGET "../../a/symlink/target/that/is/longer/than/sixty/bytes/so/it/needs/a/block/of/its/own/x"

/* ---- the source tree ---- */

/* Builds a tree like a store path in `dir`.  `sparse_as_zeros`: write the
 * sparse file's holes as zeros (another store, another file system). */
static inline void make_tree(const char *dir, bool sparse_as_zeros) {
        char *big = malloc(3 * MiB + 123);
        char block[4096];
        char *p, *deep;
        int fd;

        mkdir_p(dir, 0755);
        fill(big, 3 * MiB + 123, 7);
        p = fmt("%s/big.bin", dir), write_file(p, big, 3 * MiB + 123, 0444), free(p);
        p = fmt("%s/empty", dir), write_file(p, "", 0, 0644), free(p);
        p = fmt("%s/small.txt", dir), write_file(p, "hello, world\n", 13, 0644), free(p);
        p = fmt("%s/run.sh", dir), write_file(p, "#!/bin/sh\necho hi\n", 18, 0755), free(p);
        p = fmt("%s/name with spaces", dir), write_file(p, "spaces\n", 7, 0444), free(p);
        p = fmt("%s/grüße-✓-日本", dir), write_file(p, "utf-8\n", 6, 0644), free(p);
        p = fmt("%s/%s", dir, long_name()), write_file(p, "long name\n", 10, 0644), free(p);

        /* 8 MiB with data at 1 MiB and 5 MiB + 100, ending in a hole. */
        p = fmt("%s/sparse.bin", dir);
        fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || ftruncate(fd, 8 * MiB) < 0)
                abort();
        if (sparse_as_zeros) {
                char *zeros = calloc(1, 8 * MiB);
                write_at(fd, 0, zeros, 8 * MiB);
                free(zeros);
        }
        write_at(fd, 1 * MiB, "data", 4);
        write_at(fd, 5 * MiB + 100, "more", 4);
        close(fd);
        free(p);

        /* Not sparse in the source, but two blocks of zeros in the middle. */
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

        /* Twelve islands of data: twelve extents, more than the inode holds. */
        p = fmt("%s/fragmented", dir);
        fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        for (int i = 0; i < 12; i++) {
                fill(block, sizeof(block), 100 + i);
                write_at(fd, (uint64_t)i * 3 * 4096, block, 4096);
        }
        close(fd);
        free(p);

        /* Links. */
        p = fmt("%s/link-rel", dir);
        CHECK(symlink("small.txt", p) == 0);
        free(p);
        p = fmt("%s/link-abs", dir);
        CHECK(symlink("/nix/store/0000-none/bin/sh", p) == 0);
        free(p);
        p = fmt("%s/link-dangling", dir);
        CHECK(symlink("does/not/exist", p) == 0);
        free(p);
        p = fmt("%s/link-long", dir);
        CHECK(symlink(LONG_TARGET, p) == 0);
        free(p);
        p = fmt("%s/link-dir", dir);
        CHECK(symlink("sub", p) == 0);
        free(p);
        p = fmt("%s/hard-a", dir), write_file(p, "one inode, two names\n", 21, 0444);
        deep = fmt("%s/hard-b", dir);
        CHECK(link(p, deep) == 0);
        free(deep);
        free(p);

        /* A directory of many names (more than a block) and a deep one. */
        p = fmt("%s/sub", dir), mkdir_p(p, 0755), free(p);
        for (int i = 0; i < 300; i++) {
                p = fmt("%s/sub/entry-number-%04d-with-a-longish-name", dir, i);
                write_file(p, p + strlen(dir), strlen(p) - strlen(dir), 0644);
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
static inline void make_tree2(const char *dir, const char *first) {
        char *p, *q;

        mkdir_p(dir, 0755);
        p = fmt("%s/bin", dir), mkdir_p(p, 0755), free(p);
        p = fmt("%s/bin/tool", dir), write_file(p, "#!/bin/sh\n", 10, 0555), free(p);
        p = fmt("%s/hard-a", first);
        q = fmt("%s/shared", dir);
        CHECK(link(p, q) == 0);
        free(p), free(q);
        p = fmt("%s/etc-extra", dir), mkdir_p(p, 0755), free(p);
        p = fmt("%s/etc-extra/os-release", dir), write_file(p, "ID=nixos\n", 9, 0644), free(p);
}

/* The plan of a small system: the two store paths under /nix/store (the
 * second merges into it), a file and a symlink from `contents`, a directory
 * merged into a made parent, and MakeDirectories=. */
typedef struct test_plan {
        nri_plan plan;
        nri_plan_copy copies[6];
        const char *dirs[2];
        char *s[6];
} test_plan;

static inline void make_plan(test_plan *tp, const char *src) {
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
        tp->copies[4] = (nri_plan_copy){.source = tp->s[4], .target = "//etc/"};
        tp->dirs[0] = "/var/empty";
        tp->dirs[1] = "/nix/store";
        tp->plan = (nri_plan){
            .directories = tp->dirs,
            .n_directories = 2,
            .copies = tp->copies,
            .n_copies = 5,
            .mtime = T0,
        };
}

static inline void free_plan(test_plan *tp) {
        for (size_t i = 0; i < 6; i++)
                free(tp->s[i]);
}

static inline void make_source(const char *src) {
        char *a = fmt("%s/tree", src), *b = fmt("%s/tree2", src);

        mkdir_p(src, 0755);
        make_tree(a, false);
        make_tree2(b, a);
        free(a), free(b);
}

