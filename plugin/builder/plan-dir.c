/* plan-dir.c: a directory of a source, read (plan-dir.h): its names, each
 * with the type readdir() gave it kept in the byte before it, sorted with
 * strcmp() as the walk visits them. */
#include "plan-dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* A failed call, with its errno's text (log.h). */
#define log_errno(r, fmt, ...) log_error_errno((r), fmt ": %m", ##__VA_ARGS__)

void frame_free(frame *f) {
        if (f->fd >= 0)
                close(f->fd);
        for (size_t i = 0; i < f->n; i++)
                free(f->names[i] - 1);
        free(f->names);
}

/* readdir()'s d_type of a name, kept in the byte before it (DT_UNKNOWN
 * where the file system gives none). */
unsigned char name_type(const char *name) {
        return (unsigned char)name[-1];
}

static int cmp_names(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Opens the directory `name` (relative to dirfd) and reads its sorted names
 * into *f.  `path` is for messages. */
int frame_open(frame *f, int dirfd, const char *name, const char *path) {
        DIR *d;
        struct dirent *de;
        size_t cap = 0;
        int fd2;

        *f = (frame){.fd = -1};
        struct stat st;

        f->fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (f->fd < 0 || fstat(f->fd, &st) < 0)
                return log_errno(-errno, "%s: cannot open directory", path);
        f->dev = st.st_dev;
        f->ino = st.st_ino;
        fd2 = fcntl(f->fd, F_DUPFD_CLOEXEC, 3);
        if (fd2 < 0)
                return log_errno(-errno, "%s: cannot open directory", path);
        d = fdopendir(fd2);
        if (!d) {
                close(fd2);
                return log_errno(-errno, "%s: cannot open directory", path);
        }
        for (;;) {
                errno = 0;
                de = readdir(d);
                if (!de)
                        break;
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (f->n == cap) {
                        char **p;

                        cap = cap ? cap * 2 : 16;
                        p = realloc(f->names, cap * sizeof(*p));
                        if (!p) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        f->names = p;
                }
                size_t len = strlen(de->d_name);
                char *p = malloc(len + 2);

                if (!p) {
                        closedir(d);
                        return -ENOMEM;
                }
                p[0] = (char)de->d_type;
                memcpy(p + 1, de->d_name, len + 1);
                f->names[f->n++] = p + 1;
        }
        if (errno) {
                int r = -errno;
                closedir(d);
                return log_errno(r, "%s: cannot read directory", path);
        }
        closedir(d);
        if (f->n > 0)
                qsort(f->names, f->n, sizeof(*f->names), cmp_names);
        return 0;
}

/* A name readdir() says is a regular file: opened, and *st its fstat(), without the lstat() visit() would
 * need first (a system call less per file).  -1 (errno kept) where that does not hold, for the caller to
 * lstat() the name and go the usual way. */
int open_regular(int dirfd, const char *name, struct stat *st) {
        int fd;

        if (name_type(name) != DT_REG)
                return -1;
        fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -1;
        if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
                close(fd);
                return -1;
        }
        return fd;
}
