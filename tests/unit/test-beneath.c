/* test-beneath.c: a directory opened by a path that must stay beneath
 * another (beneath.h), by openat2() and one name at a time, which must
 * agree: on what they open, and on what they refuse. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "check.h"

static char tmp[] = "/tmp/nri-test-beneath-XXXXXX";

static void at(const char *rel, char *buf, size_t size) {
        snprintf(buf, size, "%s/%s", tmp, rel);
}

static void mkdir_in(const char *rel) {
        char p[4096];

        at(rel, p, sizeof(p));
        CHECK(mkdir(p, 0755) == 0);
}

static void symlink_in(const char *target, const char *rel) {
        char p[4096];

        at(rel, p, sizeof(p));
        CHECK(symlink(target, p) == 0);
}

/* The inode `path` (beneath root) opens, or -errno. */
static long long resolve(int root, const char *path, bool use_openat2) {
        struct stat st;
        int fd = nri_open_dir_beneath(root, path, use_openat2);

        if (fd < 0)
                return fd;
        CHECK(fstat(fd, &st) == 0);
        close(fd);
        return (long long)st.st_ino;
}

static long long ino_of(const char *rel) {
        char p[4096];
        struct stat st;

        at(rel, p, sizeof(p));
        CHECK(stat(p, &st) == 0);
        return (long long)st.st_ino;
}

int main(void) {
        char p[4096];
        int root, fd;

        if (!mkdtemp(tmp)) {
                perror("mkdtemp");
                return 1;
        }
        /* tmp/store-path is the directory paths must stay beneath. */
        mkdir_in("store-path");
        mkdir_in("store-path/lib");
        mkdir_in("store-path/lib/sub");
        mkdir_in("outside");
        symlink_in("lib", "store-path/lib64");                /* relative, inside */
        symlink_in("../lib/sub", "store-path/lib/sub-again"); /* "..", still inside */
        symlink_in("..", "store-path/lib/up");                /* to the top itself */
        symlink_in("../..", "store-path/lib/out");            /* out by ".." */
        symlink_in("../outside", "store-path/sideways");      /* out, then back in elsewhere */
        symlink_in("/", "store-path/root");                   /* absolute */
        at("store-path/lib", p, sizeof(p));
        symlink_in(p, "store-path/abs-inside"); /* absolute, even to a place inside */
        symlink_in("loop", "store-path/loop");
        symlink_in("a", "store-path/b");
        symlink_in("b", "store-path/a");
        at("store-path/file", p, sizeof(p));
        fd = open(p, O_WRONLY | O_CREAT, 0644);
        CHECK(fd >= 0);
        close(fd);

        at("store-path", p, sizeof(p));
        root = open(p, O_PATH | O_DIRECTORY);
        CHECK(root >= 0);
        for (int k = 0; k < 2; k++) {
                bool kernel = k == 0;

                /* Followed: what stays beneath. */
                CHECK(resolve(root, "", kernel) == ino_of("store-path"));
                CHECK(resolve(root, "lib/sub", kernel) == ino_of("store-path/lib/sub"));
                CHECK(resolve(root, "lib64/sub", kernel) == ino_of("store-path/lib/sub"));
                CHECK(resolve(root, "lib/sub-again", kernel) == ino_of("store-path/lib/sub"));
                CHECK(resolve(root, "lib/up/lib", kernel) == ino_of("store-path/lib"));
                CHECK(resolve(root, "lib//./sub/", kernel) == ino_of("store-path/lib/sub"));
                /* Refused: what would leave it, whatever follows. */
                CHECK(resolve(root, "lib/out", kernel) == -EXDEV);
                CHECK(resolve(root, "lib/out/store-path/lib", kernel) == -EXDEV);
                CHECK(resolve(root, "sideways", kernel) == -EXDEV);
                CHECK(resolve(root, "root/etc", kernel) == -EXDEV);
                CHECK(resolve(root, "abs-inside", kernel) == -EXDEV);
                CHECK(resolve(root, "..", kernel) == -EXDEV);
                CHECK(resolve(root, "lib/../..", kernel) == -EXDEV);
                /* And what is not a directory there. */
                CHECK(resolve(root, "loop", kernel) == -ELOOP);
                CHECK(resolve(root, "a", kernel) == -ELOOP);
                CHECK(resolve(root, "file", kernel) == -ENOTDIR);
                CHECK(resolve(root, "file/x", kernel) == -ENOTDIR);
                CHECK(resolve(root, "missing", kernel) == -ENOENT);
        }
        close(root);
        snprintf(p, sizeof(p), "rm -rf '%s'", tmp);
        CHECK(system(p) == 0);
        return check_result();
}
