/* beneath.c: a directory opened by a path that stays beneath another
 * (beneath.h). */
#include "beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The kernel's limit on symlinks followed in one resolution (MAXSYMLINKS). */
#define MAX_SYMLINKS 40

static int by_openat2(int dirfd, const char *path) {
#ifdef SYS_openat2
        struct open_how how = {
            .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        int fd = (int)syscall(SYS_openat2, dirfd, *path ? path : ".", &how, sizeof(how));

        return fd < 0 ? -errno : fd;
#else
        (void)dirfd;
        (void)path;
        return -ENOSYS;
#endif
}

typedef struct stack {
        int *fds; /* fds[0] is the caller's dirfd, never closed here */
        size_t n, cap;
} stack;

static int push(stack *s, int fd) {
        if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 16;
                int *p = realloc(s->fds, cap * sizeof(int));

                if (!p)
                        return -ENOMEM;
                s->fds = p;
                s->cap = cap;
        }
        s->fds[s->n++] = fd;
        return 0;
}

/* Replaces the first `used` bytes of the path still to resolve (*rest, in
 * the malloc'ed *buf) with `target`. */
static int put_in_front(char **buf, const char **rest, size_t used, const char *target) {
        const char *after = *rest + used;
        size_t tlen = strlen(target), alen = strlen(after);
        char *n = malloc(tlen + 1 + alen + 1);

        if (!n)
                return -ENOMEM;
        memcpy(n, target, tlen);
        n[tlen] = '/';
        memcpy(n + tlen + 1, after, alen + 1);
        free(*buf);
        *buf = n;
        *rest = n;
        return 0;
}

/* One name at a time, each opened with O_NOFOLLOW from the one before, a
 * symlink read and its target put in front of what is left. */
static int by_components(int dirfd, const char *path) {
        stack s = {0};
        char *buf = strdup(path), link[PATH_MAX];
        const char *rest = buf;
        unsigned links = 0;
        int r, fd = -1;

        if (!buf)
                return -ENOMEM;
        r = push(&s, dirfd);
        while (r >= 0 && *rest) {
                size_t len = strcspn(rest, "/"), used = len + (rest[len] == '/');
                char name[NAME_MAX + 1];
                struct stat st;
                ssize_t n;
                int nfd;

                if (len == 0 || (len == 1 && rest[0] == '.')) {
                        rest += used;
                        continue;
                }
                if (len == 2 && rest[0] == '.' && rest[1] == '.') {
                        if (s.n == 1) {
                                r = -EXDEV;
                                break;
                        }
                        close(s.fds[--s.n]);
                        rest += used;
                        continue;
                }
                if (len > NAME_MAX) {
                        r = -ENAMETOOLONG;
                        break;
                }
                memcpy(name, rest, len);
                name[len] = 0;
                nfd = openat(s.fds[s.n - 1], name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (nfd < 0 || fstat(nfd, &st) < 0) {
                        r = -errno;
                        if (nfd >= 0)
                                close(nfd);
                        break;
                }
                if (S_ISDIR(st.st_mode)) {
                        r = push(&s, nfd);
                        if (r < 0)
                                close(nfd);
                        rest += used;
                        continue;
                }
                if (!S_ISLNK(st.st_mode)) {
                        close(nfd);
                        r = -ENOTDIR;
                        break;
                }
                n = readlinkat(nfd, "", link, sizeof(link));
                close(nfd);
                if (n < 0 || (size_t)n >= sizeof(link)) {
                        r = n < 0 ? -errno : -ENAMETOOLONG;
                        break;
                }
                link[n] = 0;
                if (link[0] == '/')
                        r = -EXDEV; /* RESOLVE_BENEATH refuses any absolute one */
                else if (++links > MAX_SYMLINKS)
                        r = -ELOOP;
                else
                        r = put_in_front(&buf, &rest, used, link);
        }
        if (r >= 0) {
                /* The caller's dirfd itself ("" or back at it): a new descriptor. */
                fd = s.n == 1 ? openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC) : s.fds[--s.n];
                if (fd < 0)
                        r = -errno;
        }
        while (s.n > 1)
                close(s.fds[--s.n]);
        free(s.fds);
        free(buf);
        return r < 0 ? r : fd;
}

int nri_open_dir_beneath(int dirfd, const char *path, bool use_openat2) {
        if (use_openat2) {
                int fd = by_openat2(dirfd, path);

                /* Not there, refused by a filter, a kernel that does not
                 * know a flag, or one that could not rule out a race on
                 * "..": the same, one name at a time. */
                if (fd >= 0 ||
                    !(fd == -ENOSYS || fd == -EPERM || fd == -E2BIG || fd == -EINVAL || fd == -EAGAIN))
                        return fd;
        }
        return by_components(dirfd, path);
}
