/* range.c: opening and clearing the byte range a writer owns (see range.h). */
#include "range.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int nri_range_open(const char *path, uint64_t offset, uint64_t size, const char *what, int *ret_fd) {
        struct stat st;
        int fd;

        if (offset > UINT64_MAX - size || offset + size > (uint64_t)INT64_MAX) {
                log_error("%s: %s: the range %" PRIu64 "+%" PRIu64 " overflows", what, path, offset, size);
                return -EINVAL;
        }
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
                int r = -errno;

                log_error_errno(r, "%s: %s: cannot open: %m", what, path);
                return r;
        }
        if (fstat(fd, &st) < 0) {
                int r = -errno;

                log_error_errno(r, "%s: %s: cannot stat: %m", what, path);
                close(fd);
                return r;
        }
        if ((uint64_t)st.st_size < offset + size) {
                log_error("%s: %s: the file has %" PRIu64 " bytes, the range %" PRIu64 "+%" PRIu64
                          " goes beyond them",
                          what, path, (uint64_t)st.st_size, offset, size);
                close(fd);
                return -EINVAL;
        }
        *ret_fd = fd;
        return 0;
}

int nri_pwrite_all(int fd, const void *buf, size_t n, uint64_t offset) {
        const char *p = buf;

        while (n > 0) {
                ssize_t k = pwrite(fd, p, n, (off_t)offset);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;
                p += k;
                n -= (size_t)k;
                offset += (uint64_t)k;
        }
        return 0;
}

int nri_pread_all(int fd, void *buf, size_t n, uint64_t offset) {
        char *p = buf;

        while (n > 0) {
                ssize_t k = pread(fd, p, n, (off_t)offset);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;
                p += k;
                n -= (size_t)k;
                offset += (uint64_t)k;
        }
        return 0;
}

int nri_range_clear(int fd, uint64_t offset, uint64_t size) {
        static const char zeros[64 * 1024];

        if (size == 0)
                return 0;
        if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)size) == 0)
                return 0;
        if (errno != EOPNOTSUPP && errno != ENOSYS)
                return -errno;
        for (uint64_t done = 0; done < size;) {
                size_t n = size - done < sizeof(zeros) ? (size_t)(size - done) : sizeof(zeros);
                int r = nri_pwrite_all(fd, zeros, n, offset + done);

                if (r < 0)
                        return r;
                done += n;
        }
        return 0;
}

/* One run of data, without looking for holes. */
static int copy_run(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t n) {
        static __thread bool no_kernel_copy;
        char *buf = NULL;
        int r = 0;

        while (n > 0 && !no_kernel_copy) {
                loff_t i = (loff_t)in_off, o = (loff_t)out_off;
                ssize_t k = copy_file_range(in, &i, out, &o, n < (1u << 30) ? (size_t)n : (1u << 30), 0);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
                              errno == EBADF)) {
                        no_kernel_copy = true;
                        break;
                }
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -EIO;
                in_off += (uint64_t)k, out_off += (uint64_t)k, n -= (uint64_t)k;
        }
        if (n == 0)
                return 0;
        buf = malloc(1u << 20);
        if (!buf)
                return -ENOMEM;
        while (n > 0 && r >= 0) {
                size_t k = n < (1u << 20) ? (size_t)n : (1u << 20);

                r = nri_pread_all(in, buf, k, in_off);
                if (r >= 0)
                        r = nri_pwrite_all(out, buf, k, out_off);
                in_off += k, out_off += k, n -= k;
        }
        free(buf);
        return r;
}

int nri_copy_data(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t n) {
        uint64_t pos = 0;

        while (pos < n) {
                off_t d = lseek(in, (off_t)(in_off + pos), SEEK_DATA), h;
                uint64_t start, end;
                int r;

                if (d < 0 && errno == ENXIO)
                        return 0; /* a hole to the end of the file: the rest stays zeros */
                if (d < 0)        /* no SEEK_DATA: copy everything */
                        return copy_run(in, in_off + pos, out, out_off + pos, n - pos);
                start = (uint64_t)d - in_off;
                if (start >= n)
                        return 0;
                h = lseek(in, d, SEEK_HOLE);
                end = h < 0 ? n : (uint64_t)h - in_off < n ? (uint64_t)h - in_off : n;
                r = copy_run(in, in_off + start, out, out_off + start, end - start);
                if (r < 0)
                        return r;
                pos = end;
        }
        return 0;
}
