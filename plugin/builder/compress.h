/* compress.h: the compressed image, through libzstd and liblzma.
 *
 * NixOS's image.repart compresses the finished image with the zstd or xz
 * program (`zstd -T0 -<level>`, `xz -<level>`) and removes the raw file;
 * this does the same through the libraries, single-threaded so that the
 * output depends only on the input and the level. */
#pragma once

#include "nix-repart-image/spec.h"

/* The suffix the compressed file gets: ".zst" or ".xz". */
const char *nri_compress_suffix(nri_compression c);

/* Compresses the file `in` into a new file `out` (created, mode 0644).
 * Sparse regions of `in` are read as the zeros they are.  0, or a negative
 * errno after a message on stderr naming the file and the library call; a
 * failed `out` is removed. */
int nri_compress_file(const char *in, const char *out, nri_compression c, int level);
