/* range.h: the byte range of an image file that one writer owns.
 *
 * The read-only writers (swap.h, verity.h, erofs.h, squashfs.h) each write
 * one partition's bytes [offset, offset + size) of an existing image file
 * and nothing outside them.  These helpers open that range and bring it to a
 * known state first, so the bytes a writer leaves depend only on what it
 * writes, never on what the file held before. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Opens `path` for reading and writing and checks that the file holds the
 * whole range.  *ret_fd is the descriptor (O_CLOEXEC).  0, -EINVAL (the
 * range overflows, or the file is shorter than offset + size) or the errno
 * of open()/fstat(); logged to stderr as "<what>: <path>: …". */
int nri_range_open(const char *path, uint64_t offset, uint64_t size, const char *what, int *ret_fd);

/* Makes bytes [offset, offset + size) of fd read as zeros: holes punched
 * where the file system can, zeros written where it cannot.  0 or a
 * negative errno (not logged). */
int nri_range_clear(int fd, uint64_t offset, uint64_t size);

/* pwrite() until all of buf is written: 0 or a negative errno (-EIO for a
 * write that makes no progress). */
int nri_pwrite_all(int fd, const void *buf, size_t n, uint64_t offset);

/* pread() until n bytes are read: 0, -EIO at an early end of file, or a
 * negative errno. */
int nri_pread_all(int fd, void *buf, size_t n, uint64_t offset);

/* Copies n bytes of `in` from in_off to `out` at out_off, skipping what
 * lies in holes of `in` (the caller has cleared the destination, so those
 * bytes read as zeros there too): in the kernel with copy_file_range()
 * where it can, through a buffer where it cannot.  0, -EIO if `in` ends
 * early, or a negative errno (not logged). */
int nri_copy_data(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t n);
