/* copy-blocks.h: CopyBlocks=, a partition's bytes from a file in the store.
 *
 * The file is opened beneath its store path (beneath.h: no symlink on the
 * way may lead out of it) and must be a regular file; the partition is at
 * least as large as the file (the layout's content_min), its bytes are the
 * file's and zeros after them, holes kept as holes. */
#pragma once

#include <stdint.h>

/* Opens `path` (a file inside a store path of `store_dir`, as the spec
 * checker made sure) for reading: a descriptor, or a negative errno after a
 * message naming `what` ("partition usr") and the path. */
int nri_copy_blocks_open(const char *store_dir, const char *path, const char *what);

/* The file's size in bytes: 0 or a negative errno after a message. */
int nri_copy_blocks_size(const char *store_dir, const char *path, const char *what, uint64_t *ret);

/* Writes the file over bytes [offset, offset + size) of `image`, the rest of
 * the range zeros: 0, -ENOSPC (the file is larger than the range) or a
 * negative errno, after a message. */
int nri_copy_blocks_write(const char *store_dir, const char *path, const char *image, uint64_t offset,
                          uint64_t size, const char *what);
