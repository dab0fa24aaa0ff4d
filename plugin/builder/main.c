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
#include "log.h"
#include "nix-repart-image/macro.h"

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
                log_error("SOURCE_DATE_EPOCH=%s is not a number of seconds", s);
                return -EINVAL;
        }
        return 0;
}

/* The attribute `repartBundle`: the store path of the bundle this builder
 * runs from (scripts/make-bundle.sh), whose loader runs it with
 * `--library-path`.  Everything the build runs or loads then comes from it:
 * mformat (run through the same loader), the C.UTF-8 locale and code page
 * 437, which this process loads too (LOCPATH and GCONV_PATH, for glibc).
 * Variables already set win, for runs by hand: NRI_MTOOLS_DIR,
 * NRI_MTOOLS_LOADER and NRI_MTOOLS_LIBRARY_PATH (empty: none), LOCPATH,
 * GCONV_PATH.  Without a bundle, mformat is where the build found it
 * (Nix runs builders with PATH unset). */
typedef struct tools {
        nri_mtools mtools;
        char *owned[5];
} tools;

static void tools_done(tools *t) {
        for (size_t i = 0; i < ELEMENTSOF(t->owned); i++)
                free(t->owned[i]);
}

/* The environment's `var`, else `sub` in the bundle (NULL without one). */
static int tool_path(tools *t, size_t i, const char *var, const char *bundle, const char *sub,
                     const char **ret) {
        const char *v = getenv(var);

        if (v || !bundle) {
                *ret = v && *v ? v : NULL;
                return 0;
        }
        if (asprintf(&t->owned[i], "%s/%s", bundle, sub) < 0)
                return -ENOMEM;
        *ret = t->owned[i];
        return 0;
}

static int find_tools(const cJSON *attrs, tools *t) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(attrs, "repartBundle");
        const char *bundle = NULL;
        nri_mtools *m = &t->mtools;
        int r;

        if (b) {
                if (!cJSON_IsString(b) || b->valuestring[0] != '/') {
                        log_error("repartBundle is not an absolute path");
                        return -EINVAL;
                }
                bundle = b->valuestring;
        }
        r = tool_path(t, 0, "NRI_MTOOLS_DIR", bundle, "bin", &m->dir);
        if (r >= 0)
                r = tool_path(t, 1, "NRI_MTOOLS_LOADER", bundle, "lib/ld.so", &m->loader);
        if (r >= 0)
                r = tool_path(t, 2, "NRI_MTOOLS_LIBRARY_PATH", bundle, "lib", &m->library_path);
        if (r >= 0)
                r = tool_path(t, 3, "LOCPATH", bundle, "lib/locale", &m->locpath);
        if (r >= 0)
                r = tool_path(t, 4, "GCONV_PATH", bundle, "lib/gconv", &m->gconv_path);
        if (r < 0)
                return r;
        if (!getenv("NRI_MTOOLS_DIR") && !bundle)
                m->dir = NRI_MTOOLS_DEFAULT_DIR;
        /* This process reads names through them too (fat-short.c). */
        if (m->locpath)
                setenv("LOCPATH", m->locpath, 0);
        if (m->gconv_path)
                setenv("GCONV_PATH", m->gconv_path, 0);
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
        _cleanup_(tools_done) tools t = {0};
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
                log_error("cannot read %s: %m", path);
                return 1;
        }
        attrs = cJSON_Parse(text);
        free(text);
        if (!attrs) {
                log_error("%s is not JSON", path);
                return 1;
        }
        o.attrs = attrs;
        o.out = out_path(out_arg, attrs);
        o.out_from_input = !out_arg;
        if (!o.out) {
                log_error("no output path: neither outputs.out in %s nor $out", path);
                cJSON_Delete(attrs);
                return 1;
        }
        r = find_tools(attrs, &t);
        if (r < 0) {
                cJSON_Delete(attrs);
                return 1;
        }
        o.mtools = &t.mtools;
        r = source_date_epoch(&o.mtime);
        if (r >= 0)
                r = nri_build(&o);
        cJSON_Delete(attrs);
        return r < 0 ? 1 : 0;
}
