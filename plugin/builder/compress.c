/* compress.c: zstd and xz streams from an image file into another file. */
#include "compress.h"

#include <errno.h>
#include <fcntl.h>
#include <lzma.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "log.h"
#include "nix-repart-image/macro.h"

#define CHUNK (1u << 20)

const char *nri_compress_suffix(nri_compression c) {
        static const char *const suffixes[_NRI_COMPRESSION_MAX] = {
            [NRI_COMPRESSION_NONE] = "",
            [NRI_COMPRESSION_ZSTD] = ".zst",
            [NRI_COMPRESSION_XZ] = ".xz",
        };

        return (unsigned)c < _NRI_COMPRESSION_MAX ? suffixes[c] : "";
}

static int write_all(int fd, const uint8_t *buf, size_t n, const char *path) {
        while (n > 0) {
                ssize_t k = write(fd, buf, n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        int r = -errno;
                        log_error_errno(r, "writing %s: %m", path);
                        return r;
                }
                buf += k;
                n -= (size_t)k;
        }
        return 0;
}

/* Reads up to CHUNK bytes; 0 at the end. */
static ssize_t read_chunk(int fd, uint8_t *buf, const char *path) {
        size_t got = 0;

        while (got < CHUNK) {
                ssize_t k = read(fd, buf + got, CHUNK - got);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        int r = -errno;
                        log_error_errno(r, "reading %s: %m", path);
                        return r;
                }
                if (k == 0)
                        break;
                got += (size_t)k;
        }
        return (ssize_t)got;
}

static int zstd_stream(int in, int out, int level, const char *in_path, const char *out_path, uint8_t *ibuf,
                       uint8_t *obuf) {
        ZSTD_CCtx *z = ZSTD_createCCtx();
        size_t rc;
        int r = 0;

        if (!z)
                return -ENOMEM;
        rc = ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, level);
        if (!ZSTD_isError(rc))
                rc = ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 1);
        if (ZSTD_isError(rc)) {
                log_error("ZSTD_CCtx_setParameter: %s", ZSTD_getErrorName(rc));
                ZSTD_freeCCtx(z);
                return -EINVAL;
        }
        for (;;) {
                ssize_t n = read_chunk(in, ibuf, in_path);
                ZSTD_EndDirective mode = n < (ssize_t)CHUNK ? ZSTD_e_end : ZSTD_e_continue;
                ZSTD_inBuffer ib = {ibuf, n > 0 ? (size_t)n : 0, 0};
                bool done = false;

                if (n < 0) {
                        r = (int)n;
                        break;
                }
                while (!done) {
                        ZSTD_outBuffer ob = {obuf, CHUNK, 0};

                        rc = ZSTD_compressStream2(z, &ob, &ib, mode);
                        if (ZSTD_isError(rc)) {
                                log_error("ZSTD_compressStream2: %s", ZSTD_getErrorName(rc));
                                r = -EIO;
                                break;
                        }
                        r = write_all(out, obuf, ob.pos, out_path);
                        if (r < 0)
                                break;
                        done = mode == ZSTD_e_end ? rc == 0 : ib.pos == ib.size;
                }
                if (r < 0 || mode == ZSTD_e_end)
                        break;
        }
        ZSTD_freeCCtx(z);
        return r;
}

static int xz_stream(int in, int out, int level, const char *in_path, const char *out_path, uint8_t *ibuf,
                     uint8_t *obuf) {
        lzma_stream s = LZMA_STREAM_INIT;
        lzma_ret lr = lzma_easy_encoder(&s, (uint32_t)level, LZMA_CHECK_CRC64);
        lzma_action action = LZMA_RUN;
        int r = 0;

        if (lr != LZMA_OK) {
                log_error("lzma_easy_encoder: error %d", (int)lr);
                return lr == LZMA_MEM_ERROR ? -ENOMEM : -EINVAL;
        }
        s.next_out = obuf;
        s.avail_out = CHUNK;
        for (;;) {
                if (s.avail_in == 0 && action == LZMA_RUN) {
                        ssize_t n = read_chunk(in, ibuf, in_path);

                        if (n < 0) {
                                r = (int)n;
                                break;
                        }
                        s.next_in = ibuf;
                        s.avail_in = (size_t)n;
                        if (n < (ssize_t)CHUNK)
                                action = LZMA_FINISH;
                }
                lr = lzma_code(&s, action);
                if (s.avail_out == 0 || lr == LZMA_STREAM_END) {
                        r = write_all(out, obuf, CHUNK - s.avail_out, out_path);
                        if (r < 0)
                                break;
                        s.next_out = obuf;
                        s.avail_out = CHUNK;
                }
                if (lr == LZMA_STREAM_END)
                        break;
                if (lr != LZMA_OK) {
                        log_error("lzma_code: error %d", (int)lr);
                        r = -EIO;
                        break;
                }
        }
        lzma_end(&s);
        return r;
}

int nri_compress_file(const char *in_path, const char *out_path, nri_compression c, int level) {
        _cleanup_free_ uint8_t *ibuf = malloc(CHUNK), *obuf = malloc(CHUNK);
        _cleanup_close_ int in = -1;
        int out, r;

        if (!ibuf || !obuf)
                return -ENOMEM;
        in = open(in_path, O_RDONLY | O_CLOEXEC);
        if (in < 0) {
                r = -errno;
                log_error_errno(r, "cannot open %s: %m", in_path);
                return r;
        }
        out = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (out < 0) {
                r = -errno;
                log_error_errno(r, "cannot create %s: %m", out_path);
                return r;
        }
        if (c == NRI_COMPRESSION_ZSTD)
                r = zstd_stream(in, out, level, in_path, out_path, ibuf, obuf);
        else if (c == NRI_COMPRESSION_XZ)
                r = xz_stream(in, out, level, in_path, out_path, ibuf, obuf);
        else
                r = -EINVAL;
        if (close(out) < 0 && r >= 0) {
                r = -errno;
                log_error_errno(r, "writing %s: %m", out_path);
        }
        if (r < 0)
                unlink(out_path);
        return r;
}
