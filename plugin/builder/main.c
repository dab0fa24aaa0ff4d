/* main.c: the builder program that derivations of builtins.repartImage run.
 *
 * Nix 2.8 starts it in the build directory, which holds .attrs.json (the
 * derivation's structured attributes; NIX_ATTRS_JSON_FILE names a path that
 * is wrong when the sandbox is on, so the file in the working directory is
 * read first).  The output path comes from the attributes' `outputs.out`, or
 * $out.  By hand:
 *
 *   nix-repart-image-builder [--attrs FILE] [--out DIR] [--quiet]
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "build.h"

#if defined(__SANITIZE_ADDRESS__)
/* Built with AddressSanitizer (tests/run-sanitizers): Nix runs the builder
 * with a cleared environment, so LSAN_OPTIONS cannot reach it; the one
 * allocation glibc keeps for good is named here.  newlocale() with LOCPATH
 * set (the bundle's locale, vfat.c) keeps the search path its cached locale
 * data points to. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
        return "leak:argz_add_sep\nleak:argz_create_sep\n";
}
const char *__lsan_default_options(void);
const char *__lsan_default_options(void) {
        return "print_suppressions=0";
}
#endif

static char *read_file(const char *path) {
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t len = 0, cap = 0, n;

        if (!f)
                return NULL;
        do {
                if (cap - len < 65536) {
                        char *nb = realloc(buf, cap = cap * 2 + 65536);
                        if (!nb) {
                                free(buf);
                                fclose(f);
                                errno = ENOMEM;
                                return NULL;
                        }
                        buf = nb;
                }
                n = fread(buf + len, 1, cap - len - 1, f);
                len += n;
        } while (n > 0);
        if (ferror(f)) {
                free(buf);
                fclose(f);
                errno = EIO;
                return NULL;
        }
        fclose(f);
        buf[len] = 0;
        return buf;
}

static const char *attrs_path(const char *given) {
        const char *env;

        if (given)
                return given;
        if (access(".attrs.json", R_OK) == 0)
                return ".attrs.json";
        env = getenv("NIX_ATTRS_JSON_FILE");
        return env ? env : ".attrs.json";
}

static const char *out_path(const char *given, const cJSON *attrs) {
        const cJSON *out =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(attrs, "outputs"), "out");
        if (given)
                return given;
        if (cJSON_IsString(out))
                return out->valuestring;
        return getenv("out");
}

/* SOURCE_DATE_EPOCH when set, else 1: the mtime of everything in the store. */
static int source_date_epoch(long long *ret) {
        const char *s = getenv("SOURCE_DATE_EPOCH");
        char *end;

        *ret = 1;
        if (!s || !*s)
                return 0;
        errno = 0;
        *ret = strtoll(s, &end, 10);
        if (errno || *end || *ret < 0) {
                fprintf(stderr, "nix-repart-image: SOURCE_DATE_EPOCH=%s is not a number of seconds\n", s);
                return -EINVAL;
        }
        return 0;
}

/* The attribute `repartBundle`: the store path of the bundle this builder
 * runs from (scripts/make-bundle.sh), whose loader runs it with
 * `--library-path`.  Everything the build runs or loads then comes from it:
 * mtools (run through the same loader, vfat.c), the C.UTF-8 locale and
 * code page 437.  Variables already set win, for runs by hand. */
static int use_bundle(const cJSON *attrs) {
        static const struct {
                const char *var, *sub;
        } vars[] = {
            {"NRI_MTOOLS_DIR", "bin"},          {"NRI_MTOOLS_LOADER", "lib/ld.so"},
            {"NRI_MTOOLS_LIBRARY_PATH", "lib"}, {"LOCPATH", "lib/locale"},
            {"GCONV_PATH", "lib/gconv"},
        };
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(attrs, "repartBundle");

        if (!b)
                return 0;
        if (!cJSON_IsString(b) || b->valuestring[0] != '/') {
                fprintf(stderr, "nix-repart-image: repartBundle is not an absolute path\n");
                return -EINVAL;
        }
        for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
                char *v;

                if (getenv(vars[i].var))
                        continue;
                if (asprintf(&v, "%s/%s", b->valuestring, vars[i].sub) < 0)
                        return -ENOMEM;
                setenv(vars[i].var, v, 0);
                free(v);
        }
        return 0;
}

static void usage(FILE *f) {
        fputs("usage: nix-repart-image-builder [--attrs FILE] [--out DIR] [--quiet]\n"
              "Builds the image a builtins.repartImage derivation describes.\n",
              f);
}

int main(int argc, char **argv) {
        static const struct option longopts[] = {
            {"attrs", required_argument, NULL, 'a'},
            {"out", required_argument, NULL, 'o'},
            {"quiet", no_argument, NULL, 'q'},
            {"help", no_argument, NULL, 'h'},
            {0},
        };
        const char *attrs_arg = NULL, *out_arg = NULL, *path;
        nri_build_options o = {.verbose = true};
        cJSON *attrs;
        char *text;
        int c, r;

        while ((c = getopt_long(argc, argv, "a:o:qh", longopts, NULL)) >= 0) {
                switch (c) {
                case 'a':
                        attrs_arg = optarg;
                        break;
                case 'o':
                        out_arg = optarg;
                        break;
                case 'q':
                        o.verbose = false;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind != argc) {
                usage(stderr);
                return 2;
        }

        path = attrs_path(attrs_arg);
        text = read_file(path);
        if (!text) {
                fprintf(stderr, "nix-repart-image: cannot read %s: %m\n", path);
                return 1;
        }
        attrs = cJSON_Parse(text);
        free(text);
        if (!attrs) {
                fprintf(stderr, "nix-repart-image: %s is not JSON\n", path);
                return 1;
        }
        o.attrs = attrs;
        o.out = out_path(out_arg, attrs);
        o.out_from_input = !out_arg;
        if (!o.out) {
                fprintf(stderr, "nix-repart-image: no output path: neither outputs.out in %s nor $out\n",
                        path);
                cJSON_Delete(attrs);
                return 1;
        }
        r = use_bundle(attrs);
        if (r < 0) {
                cJSON_Delete(attrs);
                return 1;
        }
        /* Nix runs builders with PATH unset. */
        if (!getenv("NRI_MTOOLS_DIR"))
                setenv("NRI_MTOOLS_DIR", NRI_MTOOLS_DEFAULT_DIR, 0);
        r = source_date_epoch(&o.mtime);
        if (r >= 0)
                r = nri_build(&o);
        cJSON_Delete(attrs);
        return r < 0 ? 1 : 0;
}
