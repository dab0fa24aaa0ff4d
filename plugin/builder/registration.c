/* registration.c: a closure's registration for nix-store --load-db
 * (registration.h). */
#include "registration.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "nix-repart-image/macro.h"

enum { SHA256_SIZE = 32 };

/* Nix's base32 ("nix32"): its own alphabet, the last character holding
 * the lowest bits (libutil/hash.cc). */
static int nix32_decode(const char *s, size_t len, uint8_t out[SHA256_SIZE]) {
        static const char chars[] = "0123456789abcdfghijklmnpqrsvwxyz";

        if (len != (SHA256_SIZE * 8 + 4) / 5)
                return -EINVAL;
        memset(out, 0, SHA256_SIZE);
        for (size_t n = 0; n < len; n++) {
                const char *p = strchr(chars, s[len - n - 1]);
                unsigned digit, b = (unsigned)n * 5, i = b / 8, j = b % 8;

                if (!p || !*p)
                        return -EINVAL;
                digit = (unsigned)(p - chars);
                out[i] |= (uint8_t)(digit << j);
                if (i < SHA256_SIZE - 1)
                        out[i + 1] |= (uint8_t)(digit >> (8 - j));
                else if (digit >> (8 - j))
                        return -EINVAL;
        }
        return 0;
}

static int hex_decode(const char *s, size_t len, uint8_t out[SHA256_SIZE]) {
        if (len != SHA256_SIZE * 2)
                return -EINVAL;
        for (size_t i = 0; i < SHA256_SIZE; i++) {
                unsigned v;

                if (sscanf(s + 2 * i, "%2x", &v) != 1 || !strchr("0123456789abcdef", s[2 * i]) ||
                    !strchr("0123456789abcdef", s[2 * i + 1]))
                        return -EINVAL;
                out[i] = (uint8_t)v;
        }
        return 0;
}

/* A NAR hash as Nix writes it into the graph: "sha256:" and nix32 (Nix
 * 2.8 and later) or base16. */
static int parse_nar_hash(const char *s, uint8_t out[SHA256_SIZE]) {
        size_t len;

        if (strncmp(s, "sha256:", 7) != 0)
                return -EINVAL;
        s += 7;
        len = strlen(s);
        return len == SHA256_SIZE * 2 ? hex_decode(s, len, out) : nix32_decode(s, len, out);
}

typedef struct entry {
        const char *path;
        const cJSON *json;
} entry;

static int by_path(const void *x, const void *y) {
        return strcmp(((const entry *)x)->path, ((const entry *)y)->path);
}

static int by_string(const void *x, const void *y) {
        return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static int write_entry(FILE *f, const entry *e, const char *what) {
        const cJSON *hash = cJSON_GetObjectItemCaseSensitive(e->json, "narHash");
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(e->json, "narSize");
        const cJSON *refs = cJSON_GetObjectItemCaseSensitive(e->json, "references");
        const cJSON *deriver = cJSON_GetObjectItemCaseSensitive(e->json, "deriver");
        uint8_t h[SHA256_SIZE];
        const cJSON *ref;
        size_t n_refs = 0;

        if (!cJSON_IsString(hash) || parse_nar_hash(hash->valuestring, h) < 0)
                return log_error_errno(-EINVAL, "%s: the references graph gives %s no NAR hash in SHA-256",
                                       what, e->path);
        if (!cJSON_IsNumber(size) || size->valuedouble < 0 || size->valuedouble > 9007199254740992.0)
                return log_error_errno(-EINVAL, "%s: the references graph gives %s no NAR size", what,
                                       e->path);
        if (!cJSON_IsArray(refs))
                return log_error_errno(-EINVAL, "%s: the references graph gives %s no references", what,
                                       e->path);
        cJSON_ArrayForEach(ref, refs) {
                if (!cJSON_IsString(ref) || ref->valuestring[0] != '/' || strchr(ref->valuestring, '\n'))
                        return log_error_errno(
                            -EINVAL, "%s: the references graph gives %s a reference that is not a path",
                            what, e->path);
                n_refs++;
        }
        fprintf(f, "%s\n", e->path);
        for (size_t i = 0; i < SHA256_SIZE; i++)
                fprintf(f, "%02x", h[i]);
        fprintf(f, "\n%" PRIu64 "\n%s\n%zu\n", (uint64_t)size->valuedouble,
                cJSON_IsString(deriver) && !strchr(deriver->valuestring, '\n') ? deriver->valuestring : "",
                n_refs);
        /* References as nix-store --dump-db lists them: sorted. */
        _cleanup_free_ const char **sorted = calloc(n_refs ? n_refs : 1, sizeof(char *));
        size_t k = 0;

        if (!sorted)
                return -ENOMEM;
        cJSON_ArrayForEach(ref, refs) sorted[k++] = ref->valuestring;
        qsort(sorted, n_refs, sizeof(char *), by_string);
        for (k = 0; k < n_refs; k++)
                fprintf(f, "%s\n", sorted[k]);
        return 0;
}

static void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}

int nri_registration_write(const cJSON *graph, const char *path, const char *what) {
        _cleanup_free_ entry *entries = NULL;
        _cleanup_(fclosep) FILE *f = NULL;
        size_t n = 0;
        const cJSON *e;
        int fd, r;

        entries = calloc((size_t)cJSON_GetArraySize(graph) + 1, sizeof(entry));
        if (!entries)
                return -ENOMEM;
        cJSON_ArrayForEach(e, graph) {
                const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "path");

                if (!cJSON_IsString(p) || p->valuestring[0] != '/' || strchr(p->valuestring, '\n'))
                        return log_error_errno(
                            -EINVAL, "%s: the references graph holds an entry without a path", what);
                entries[n++] = (entry){.path = p->valuestring, .json = e};
        }
        qsort(entries, n, sizeof(entry), by_path);

        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return log_error_errno(-errno, "%s: cannot create %s: %m", what, path);
        f = fdopen(fd, "w");
        if (!f) {
                r = -errno;
                close(fd);
                return log_error_errno(r, "%s: cannot write %s: %m", what, path);
        }
        for (size_t i = 0; i < n; i++) {
                r = write_entry(f, &entries[i], what);
                if (r < 0)
                        return r;
        }
        if (fflush(f) != 0 || ferror(f))
                return log_error_errno(-EIO, "%s: cannot write %s", what, path);
        return 0;
}
