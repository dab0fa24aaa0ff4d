/* copy-blocks.c: CopyBlocks= (copy-blocks.h). */
#include "copy-blocks.h"
#include "beneath.h"
#include "log.h"
#include "range.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nix-repart-image/macro.h"
#include "nix-repart-image/spec-rules.h"

int nri_copy_blocks_open(const char *store_dir, const char *path, const char *what) {
        size_t len = nri_store_path_length(store_dir, path), n = strlen(store_dir);
        _cleanup_close_ int store = -1, dir = -1;
        _cleanup_free_ char *rel = NULL;
        const char *base;
        struct stat st;
        int fd;

        if (!len || path[n] != '/') {
                log_error("%s: CopyBlocks=%s is not in the store %s", what, path, store_dir);
                return -EINVAL;
        }
        /* <hash-name>/<dirs>, then the last name, opened without following a
         * symlink. */
        rel = strdup(path + n + 1);
        if (!rel)
                return log_error_errno(-ENOMEM, "%s: out of memory", what);
        base = strrchr(rel, '/');
        if (base)
                rel[base - rel] = '\0', base++;
        else
                base = rel; /* the store path itself is the file */
        store = open(store_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (store < 0)
                return log_error_errno(-errno, "%s: %s: %m", what, store_dir);
        dir = base == rel ? TAKE_FD(store) : nri_open_dir_beneath(store, rel, true);
        if (dir < 0)
                return log_error_errno(
                    dir, "%s: CopyBlocks=%s: cannot open its directory inside its store path: %m", what,
                    path);
        fd = openat(dir, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(-errno, "%s: CopyBlocks=%s: %m", what, path);
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                log_error("%s: CopyBlocks=%s: not a regular file", what, path);
                return -EINVAL;
        }
        return fd;
}

int nri_copy_blocks_size(const char *store_dir, const char *path, const char *what, uint64_t *ret) {
        _cleanup_close_ int fd = nri_copy_blocks_open(store_dir, path, what);
        struct stat st;

        if (fd < 0)
                return fd;
        if (fstat(fd, &st) < 0)
                return log_error_errno(-errno, "%s: CopyBlocks=%s: %m", what, path);
        *ret = (uint64_t)st.st_size;
        return 0;
}

int nri_copy_blocks_write(const char *store_dir, const char *path, const char *image, uint64_t offset,
                          uint64_t size, const char *what) {
        _cleanup_close_ int in = nri_copy_blocks_open(store_dir, path, what), out = -1;
        struct stat st;
        int r;

        if (in < 0)
                return in;
        if (fstat(in, &st) < 0)
                return log_error_errno(-errno, "%s: CopyBlocks=%s: %m", what, path);
        if ((uint64_t)st.st_size > size) {
                log_error("%s: CopyBlocks=%s has %" PRIu64 " bytes, the partition %" PRIu64, what, path,
                          (uint64_t)st.st_size, size);
                return -ENOSPC;
        }
        r = nri_range_open(image, offset, size, what, &out);
        if (r < 0)
                return r;
        r = nri_range_clear(out, offset, size);
        if (r >= 0)
                r = nri_copy_data(in, 0, out, offset, (uint64_t)st.st_size);
        if (r < 0)
                return log_error_errno(r, "%s: copying CopyBlocks=%s into %s: %m", what, path, image);
        return 0;
}
