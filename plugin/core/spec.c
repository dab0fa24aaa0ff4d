/* spec.c: from the evaluated argument of builtins.repartImage to the
 * normalised spec.
 *
 * The rules are those of the NixOS module image.repart for the attributes
 * around repartConfig, and those of systemd-repart 252 (src/partition/
 * repart.c: its config_parse_*() functions, partition_read_definition(),
 * partition_acquire_uuid(), partition_acquire_label(),
 * partition_merge_flags()) for what repartConfig means.  Where systemd warns
 * and carries on ("…, ignoring"), this file refuses: an image built by Nix is
 * built far from anyone who would read the warning.
 *
 * Every error message starts with the attribute path it is about and points
 * at the node that holds the mistake. */
#include "nix-repart-image/spec.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nix-repart-image/parse.h"

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Pathname limits systemd's path_is_valid() checks. */
#define NRI_PATH_MAX 4096
#define NRI_NAME_MAX 255

/* The grain systemd-repart rounds sizes in repart.d files to. */
#define SIZE_GRAIN 4096

typedef struct ctx {
        nri_arena *a;
        nri_error *err;
        const nri_host *host;
        const char *store_dir;
        nri_spec *spec;
} ctx;

#define FAIL(c, where, ...) nri_fail((c)->a, (c)->err, (where), __VA_ARGS__)

/* ---- strings ------------------------------------------------------------ */

static bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static bool str_in(const char *s, const char *const *set) {
        for (; *set; set++)
                if (streq(s, *set))
                        return true;
        return false;
}

static bool endswith(const char *s, const char *suffix) {
        size_t n = strlen(s), m = strlen(suffix);

        return n >= m && streq(s + n - m, suffix);
}

/* A value in a message: quoted, with the characters that would make the
 * message ambiguous escaped. */
static const char *quote(ctx *c, const char *s) {
        size_t n = 2;
        char *out, *o;

        for (const char *p = s; *p; p++)
                n += (*p == '"' || *p == '\\') ? 2 : ((unsigned char)*p < 0x20 ? 4 : 1);
        out = o = nri_alloc(c->a, n + 1);
        *o++ = '"';
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p == '"' || *p == '\\') {
                        *o++ = '\\';
                        *o++ = (char)*p;
                } else if (*p < 0x20) {
                        o += sprintf(o, "\\x%02x", *p);
                } else {
                        *o++ = (char)*p;
                }
        }
        *o++ = '"';
        *o = 0;
        return out;
}

/* ---- attribute paths ---------------------------------------------------- */

static bool is_nix_identifier(const char *s) {
        static const char *const keywords[] = {"assert", "else", "if",   "in",   "inherit", "let",
                                               "or",     "rec",  "then", "with", NULL};

        if (!(isalpha((unsigned char)s[0]) || s[0] == '_'))
                return false;
        for (const char *p = s + 1; *p; p++)
                if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '\'' || *p == '-'))
                        return false;
        return !str_in(s, keywords);
}

/* "partitions" + "10-esp" → partitions."10-esp", as it is written in Nix. */
static const char *path_join(ctx *c, const char *base, const char *name) {
        const char *n = is_nix_identifier(name) ? name : quote(c, name);

        if (!base || !*base)
                return n;
        return nri_printf(c->a, "%s.%s", base, n);
}

/* ---- "did you mean" ----------------------------------------------------- */

/* Levenshtein distance, ignoring case: "sizeMinBytes" is one edit from
 * nothing, which is what a user who typed it needs to hear. */
static size_t edit_distance(const char *a, const char *b) {
        size_t n = strlen(a), m = strlen(b);
        size_t row[64];

        if (m >= ELEMENTSOF(row) || n >= ELEMENTSOF(row))
                return SIZE_MAX;
        for (size_t j = 0; j <= m; j++)
                row[j] = j;
        for (size_t i = 1; i <= n; i++) {
                size_t diag = row[0];

                row[0] = i;
                for (size_t j = 1; j <= m; j++) {
                        size_t up = row[j];
                        size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
                        size_t best = diag + cost;

                        if (up + 1 < best)
                                best = up + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        row[j] = best;
                        diag = up;
                }
        }
        return row[m];
}

static const char *nearest(const char *name, const char *const *candidates) {
        const char *best = NULL;
        size_t best_d = SIZE_MAX;

        /* A truncated name ("Sizemin") is far from the whole one in edits
         * but plainly meant it. */
        if (strlen(name) >= 4)
                for (const char *const *p = candidates; *p; p++)
                        if (strncasecmp(*p, name, strlen(name)) == 0)
                                return *p;
        for (; *candidates; candidates++) {
                size_t d = edit_distance(name, *candidates);

                if (d < best_d) {
                        best_d = d;
                        best = *candidates;
                }
        }
        /* Two edits catch the usual typos; a longer name may stray further
         * and still be recognisable. */
        if (best_d <= 2 || (best_d <= 3 && strlen(name) >= 10))
                return best;
        return NULL;
}

static const char *join_names(ctx *c, const char *const *names) {
        const char *s = "";

        for (const char *const *n = names; *n; n++)
                s = nri_printf(c->a, "%s%s%s", s, n == names ? "" : ", ", *n);
        return s;
}

/* An attribute refused with a reason of its own. */
typedef struct refusal {
        const char *name;
        const char *reason;
} refusal;

/* Refuses every attribute of `attrs` that is not in `known`. */
static int check_fields(ctx *c, const nri_node *attrs, const char *path, const char *const *known,
                        const refusal *refused) {
        for (size_t i = 0; i < attrs->attrs.n; i++) {
                const nri_attr *at = &attrs->attrs.items[i];
                const char *apath, *hint;

                if (str_in(at->name, known))
                        continue;
                apath = path_join(c, path, at->name);
                for (const refusal *r = refused; r && r->name; r++)
                        if (streq(at->name, r->name))
                                return FAIL(c, at->value, "%s: %s", apath, r->reason);
                hint = nearest(at->name, known);
                if (hint)
                        return FAIL(c, at->value, "%s: unknown attribute; did you mean %s?", apath, hint);
                return FAIL(c, at->value, "%s: unknown attribute; the attributes here are: %s", apath,
                            join_names(c, known));
        }
        return 0;
}

/* ---- value kinds -------------------------------------------------------- */

static int expect(ctx *c, const nri_node *n, const char *path, nri_kind kind) {
        if (n->kind == kind)
                return 0;
        return FAIL(c, n, "%s: expected %s, got %s", path, nri_kind_describe(kind),
                    nri_kind_describe(n->kind));
}

/* An optional attribute: NULL when absent. */
static const nri_node *opt(const nri_node *attrs, const char *name) {
        return nri_node_attr(attrs, name);
}

static int require(ctx *c, const nri_node *attrs, const char *path, const char *name, const nri_node **ret) {
        const nri_node *n = nri_node_attr(attrs, name);

        if (!n)
                return FAIL(c, attrs, "%s: required attribute is missing", path_join(c, path, name));
        *ret = n;
        return 0;
}

static int get_bool(ctx *c, const nri_node *attrs, const char *path, const char *name, bool def, bool *ret) {
        const nri_node *n = opt(attrs, name);
        int r;

        if (!n) {
                *ret = def;
                return 0;
        }
        r = expect(c, n, path_join(c, path, name), NRI_BOOL);
        if (r < 0)
                return r;
        *ret = n->b;
        return 0;
}

/* ---- paths in file systems and in the store ----------------------------- */

/* systemd's path_simplify_and_warn(PATH_CHECK_ABSOLUTE), which CopyFiles=
 * and MakeDirectories= go through: absolute; "//", "/./" and a trailing "/"
 * folded away; ".." refused (a target climbing out of the file system's
 * root, or a source out of its store path).  Returns NULL, or why not. */
static const char *normalise_path(ctx *c, const char *in, const char **ret) {
        char *out, *o;
        const char *p = in;

        if (nri_utf16_length(in) < 0)
                return "is not valid UTF-8";
        if (in[0] != '/')
                return "is not an absolute path";
        out = o = nri_alloc(c->a, strlen(in) + 2);
        while (*p) {
                size_t len;

                p += strspn(p, "/");
                len = strcspn(p, "/");
                if (len == 0 || (len == 1 && p[0] == '.')) {
                        p += len;
                        continue;
                }
                if (len == 2 && p[0] == '.' && p[1] == '.')
                        return "contains a \"..\" component";
                if (len > NRI_NAME_MAX)
                        return "has a component longer than 255 bytes";
                *o++ = '/';
                memcpy(o, p, len);
                o += len;
                p += len;
        }
        if (o == out)
                *o++ = '/';
        *o = 0;
        if (o - out >= NRI_PATH_MAX)
                return "is longer than PATH_MAX";
        *ret = out;
        return NULL;
}

static bool is_nix_base32(char ch) {
        return ch && strchr("0123456789abcdfghijklmnpqrsvwxyz", ch);
}

static bool is_store_name_char(char ch) {
        return isalnum((unsigned char)ch) || (ch && strchr("+-._?=", ch));
}

/* The length of the store path that `s` is or is inside of
 * (<store>/<32 hash characters>-<name>), or 0 when it is not in the store. */
static size_t store_path_length(const char *store_dir, const char *s) {
        size_t d = strlen(store_dir), len;
        const char *comp;

        if (strncmp(s, store_dir, d) != 0 || s[d] != '/')
                return 0;
        comp = s + d + 1;
        len = strcspn(comp, "/");
        if (len < 34 || len > 32 + 1 + 211 || comp[32] != '-' || comp[33] == '.')
                return 0;
        for (size_t i = 0; i < 32; i++)
                if (!is_nix_base32(comp[i]))
                        return 0;
        for (size_t i = 33; i < len; i++)
                if (!is_store_name_char(comp[i]))
                        return 0;
        return d + 1 + len;
}

/* ---- specifiers --------------------------------------------------------- */

/* Label=, CopyFiles=, MakeDirectories= and (through CopyFiles=, as NixOS
 * passes them) contents targets expand systemd's specifiers.  Apart from
 * "%%", they all describe the machine systemd-repart runs on (%m machine
 * ID, %H host name, %v kernel release, %a its architecture, …): an image
 * built in a Nix sandbox must not depend on that, so they are refused
 * rather than filled in with the builder's values. */
static int expand_percent(ctx *c, const nri_node *n, const char *path, const char *s, const char **ret) {
        char *out = nri_alloc(c->a, strlen(s) + 1), *o = out;

        for (const char *p = s; *p; p++) {
                if (*p != '%') {
                        *o++ = *p;
                        continue;
                }
                if (p[1] == '%') {
                        *o++ = '%';
                        p++;
                        continue;
                }
                if (!p[1])
                        return FAIL(c, n, "%s: %s ends in a lone %%; write %%%% for a literal %%", path,
                                    quote(c, s));
                return FAIL(c, n,
                            "%s: specifier %%%c in %s is not supported: systemd-repart would fill in a "
                            "property of the machine it runs on; write %%%% for a literal %%",
                            path, p[1], quote(c, s));
        }
        *o = 0;
        *ret = out;
        return 0;
}

/* ---- top level ---------------------------------------------------------- */

/* The image's name and version make its file name (<name>_<version>.raw)
 * and the derivation's name: keep to what both accept. */
static int check_file_name_part(ctx *c, const nri_node *n, const char *path) {
        const char *s = n->str.s;

        if (!*s)
                return FAIL(c, n, "%s: must not be empty", path);
        if (s[0] == '.')
                return FAIL(c, n, "%s: %s must not start with '.'", path, quote(c, s));
        if (strlen(s) > 100)
                return FAIL(c, n, "%s: %s is longer than 100 characters", path, quote(c, s));
        for (const char *p = s; *p; p++)
                if (!(isalnum((unsigned char)*p) || strchr("._+-", *p)))
                        return FAIL(c, n,
                                    "%s: %s cannot be part of the image's file name: character %s is not "
                                    "allowed (use letters, digits, '.', '_', '+' and '-')",
                                    path, quote(c, s), quote(c, nri_strndup(c->a, p, 1)));
        return 0;
}

static int parse_name(ctx *c, const nri_node *args) {
        const nri_node *n = NULL;
        int r;

        r = require(c, args, NULL, "name", &n);
        if (r < 0)
                return r;
        r = expect(c, n, "name", NRI_STRING);
        if (r < 0)
                return r;
        r = check_file_name_part(c, n, "name");
        if (r < 0)
                return r;
        c->spec->name = n->str.s;
        return 0;
}

static int parse_version(ctx *c, const nri_node *args) {
        const nri_node *n = opt(args, "version");
        int r;

        if (!n || n->kind == NRI_NULL)
                return 0;
        r = expect(c, n, "version", NRI_STRING);
        if (r < 0)
                return r;
        r = check_file_name_part(c, n, "version");
        if (r < 0)
                return r;
        c->spec->version = n->str.s;
        return 0;
}

static int parse_seed(ctx *c, const nri_node *args) {
        const nri_node *n = opt(args, "seed");
        const char *s = NRI_DEFAULT_SEED;
        int r;

        if (n && n->kind != NRI_NULL) {
                r = expect(c, n, "seed", NRI_STRING);
                if (r < 0)
                        return r;
                s = n->str.s;
        }
        /* null (NixOS) and "random" (systemd-repart's --seed=random, which
         * newer NixOS documents) both ask for random UUIDs. */
        if ((n && n->kind == NRI_NULL) || streq(s, "random")) {
                r = nri_uuid_random(&c->spec->seed);
                if (r < 0)
                        return FAIL(c, n, "seed: cannot draw a random seed: %s", strerror(-r));
                c->spec->seed_random = true;
                return 0;
        }
        if (nri_uuid_parse(s, &c->spec->seed) < 0)
                return FAIL(
                    c, n,
                    "seed: %s is not a UUID (8-4-4-4-12 hexadecimal digits); use null for random UUIDs",
                    quote(c, s));
        if (nri_uuid_is_null(&c->spec->seed))
                return FAIL(c, n, "seed: the all-zero UUID cannot seed anything; use null for random UUIDs");
        return 0;
}

static int parse_sector_size(ctx *c, const nri_node *args) {
        const nri_node *n = opt(args, "sectorSize");
        int r;

        /* NixOS's option is `nullOr int`; null leaves systemd-repart's
         * default, 512. */
        c->spec->sector_size = 512;
        if (!n || n->kind == NRI_NULL)
                return 0;
        r = expect(c, n, "sectorSize", NRI_INT);
        if (r < 0)
                return r;
        if (n->i != 512 && n->i != 1024 && n->i != 2048 && n->i != 4096)
                return FAIL(c, n,
                            "sectorSize: %" PRId64
                            " is not a supported sector size; use 512, 1024, 2048 or 4096",
                            n->i);
        c->spec->sector_size = (uint32_t)n->i;
        return 0;
}

/* systemd-repart's --size=: parse_size() in 1024 units, rounded up to
 * 4096 (a multiple of every sector size we allow). */
static int parse_image_size(ctx *c, const nri_node *args) {
        const nri_node *n = opt(args, "imageSize");
        uint64_t v, rounded;

        c->spec->image_size = NRI_SIZE_UNSET;
        if (!n)
                return 0;
        if (n->kind == NRI_INT) {
                if (n->i <= 0)
                        return FAIL(c, n,
                                    "imageSize: %" PRId64 " is too small; give a positive number of bytes",
                                    n->i);
                v = (uint64_t)n->i;
        } else if (n->kind == NRI_STRING) {
                if (streq(n->str.s, "auto"))
                        return 0;
                if (nri_parse_size(n->str.s, 1024, &v) < 0)
                        return FAIL(
                            c, n,
                            "imageSize: cannot parse %s as a size: expected \"auto\" or a number with an "
                            "optional K, M, G, T or P suffix (powers of 1024)",
                            quote(c, n->str.s));
        } else {
                return FAIL(c, n, "imageSize: expected \"auto\", a size string or an integer, got %s",
                            nri_kind_describe(n->kind));
        }
        rounded = nri_round_up(v, SIZE_GRAIN);
        if (rounded == 0)
                return FAIL(c, n, "imageSize: a size of 0 is too small");
        if (rounded >= NRI_SIZE_LIMIT)
                return FAIL(c, n, "imageSize: %" PRIu64 " bytes is too large (the limit is 8 PiB)", v);
        c->spec->image_size = rounded;
        return 0;
}

static int parse_split(ctx *c, const nri_node *args) {
        return get_bool(c, args, NULL, "split", false, &c->spec->split);
}

typedef struct compressor {
        const char *name;
        nri_compression id;
        int min, max, def;
} compressor;

/* Levels as the zstd and xz programs take them (zstd's 20–22 need
 * --ultra); the defaults are NixOS's. */
static const compressor compressors[] = {
    {"zstd", NRI_COMPRESSION_ZSTD, 1, 19, 3},
    {"xz", NRI_COMPRESSION_XZ, 0, 9, 3},
};

static int parse_compression_algorithm(ctx *c, const nri_node *cn, const compressor **ret) {
        const nri_node *n = opt(cn, "algorithm");
        int r;

        *ret = &compressors[0];
        if (!n)
                return 0;
        r = expect(c, n, "compression.algorithm", NRI_STRING);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(compressors); i++)
                if (streq(n->str.s, compressors[i].name)) {
                        *ret = &compressors[i];
                        return 0;
                }
        if (streq(n->str.s, "zstd-seekable"))
                return FAIL(c, n,
                            "compression.algorithm: \"zstd-seekable\" is not supported by repartImage yet; "
                            "use \"zstd\" or \"xz\"");
        return FAIL(c, n, "compression.algorithm: %s is not a compression algorithm; use \"zstd\" or \"xz\"",
                    quote(c, n->str.s));
}

static int parse_compression(ctx *c, const nri_node *args) {
        static const char *const fields[] = {"algorithm", "enable", "level", NULL};
        const nri_node *n = opt(args, "compression"), *level;
        const compressor *alg;
        bool enable;
        int r;

        c->spec->compression = NRI_COMPRESSION_NONE;
        if (!n)
                return 0;
        r = expect(c, n, "compression", NRI_ATTRS);
        if (r < 0)
                return r;
        r = check_fields(c, n, "compression", fields, NULL);
        if (r < 0)
                return r;
        r = get_bool(c, n, "compression", "enable", false, &enable);
        if (r < 0)
                return r;
        r = parse_compression_algorithm(c, n, &alg);
        if (r < 0)
                return r;
        c->spec->compression_level = alg->def;
        level = opt(n, "level");
        if (level) {
                r = expect(c, level, "compression.level", NRI_INT);
                if (r < 0)
                        return r;
                if (level->i < alg->min || level->i > alg->max)
                        return FAIL(c, level,
                                    "compression.level: %" PRId64 " is out of range for %s (%d to %d)",
                                    level->i, alg->name, alg->min, alg->max);
                c->spec->compression_level = (int)level->i;
        }
        if (enable)
                c->spec->compression = alg->id;
        return 0;
}

static int parse_architecture(ctx *c, const nri_node *args) {
        const nri_node *n = opt(args, "architecture");
        int r;

        if (!n) {
                c->spec->arch = nri_arch_from_nix_system(c->host->system);
                if (c->spec->arch < 0)
                        return FAIL(c, args,
                                    "architecture: the evaluating system %s is neither x86_64-linux nor "
                                    "aarch64-linux; set architecture = \"x86-64\" or \"arm64\"",
                                    quote(c, c->host->system ? c->host->system : "(unknown)"));
                return 0;
        }
        r = expect(c, n, "architecture", NRI_STRING);
        if (r < 0)
                return r;
        c->spec->arch = nri_arch_from_string(n->str.s);
        if (c->spec->arch >= 0)
                return 0;
        if (streq(n->str.s, "x86_64") || streq(n->str.s, "aarch64"))
                return FAIL(c, n, "architecture: %s is Nix's name; systemd's, used here, is %s",
                            quote(c, n->str.s), streq(n->str.s, "x86_64") ? "\"x86-64\"" : "\"arm64\"");
        return FAIL(c, n, "architecture: %s is not supported; use \"x86-64\" or \"arm64\"",
                    quote(c, n->str.s));
}

/* ---- partitions: the state of one while it is read ---------------------- */

enum { TRI_READ_ONLY, TRI_NO_AUTO, TRI_GROWFS, _TRI_MAX };
enum { SZ_MIN, SZ_MAX, PAD_MIN, PAD_MAX, _SZ_MAX };

typedef struct part_state {
        nri_partition *p;
        const char *path;     /* partitions.<id> */
        const char *cfg_path; /* partitions.<id>.repartConfig */
        const nri_node *cfg;
        const nri_node *type_node, *uuid_node, *label_node, *format_node, *minimize_node, *split_node;
        const nri_node *size_node[_SZ_MAX];
        const nri_node *tri_node[_TRI_MAX];
        int tri[_TRI_MAX]; /* -1: not set */
        bool uuid_set, label_set;
        size_t cap_contents, cap_copy, cap_dirs;
        const char *split_resolved;
} part_state;

/* An arena array that doubles when full. */
static void *grow(ctx *c, void *items, size_t n, size_t *cap, size_t size) {
        void *p;

        if (n < *cap)
                return items;
        *cap = *cap ? *cap * 2 : 4;
        p = nri_alloc(c->a, *cap * size);
        if (n)
                memcpy(p, items, n * size);
        return p;
}

static void add_copy(ctx *c, nri_copy **items, size_t *n, size_t *cap, const char *source,
                     const char *target) {
        *items = grow(c, *items, *n, cap, sizeof(nri_copy));
        (*items)[(*n)++] = (nri_copy){.source = source, .target = target};
}

/* ---- partitions: contents ----------------------------------------------- */

/* The shim's message does not know the attribute: prefix it. */
static int import_path(ctx *c, const nri_node *n, const char *path, const char **ret) {
        int r = c->host->import_path(c->host->ctx, n, ret, c->err);

        if (r < 0 && c->err && c->err->message)
                c->err->message = nri_printf(c->a, "%s: %s", path, c->err->message);
        return r < 0 ? r : 0;
}

/* A string that names something in the store must carry its context, or
 * the derivation would not depend on what the image copies. */
static int store_string(ctx *c, const nri_node *n, const char *path, const char *what, const char *s,
                        const char **ret) {
        const char *why, *norm = NULL;

        why = normalise_path(c, s, &norm);
        if (why)
                return FAIL(c, n, "%s: %s %s %s", path, what, quote(c, s), why);
        if (!n->has_context)
                return FAIL(c, n,
                            "%s: %s %s is a string without store context, so the image could not depend on "
                            "it; use a path literal (./file), a derivation or \"${drv}/…\"",
                            path, what, quote(c, s));
        if (!store_path_length(c->store_dir, norm))
                return FAIL(c, n, "%s: %s %s is not in the Nix store (%s)", path, what, quote(c, s),
                            c->store_dir);
        c->host->use_context(c->host->ctx, n);
        *ret = norm;
        return 0;
}

static int content_source(ctx *c, const nri_node *n, const char *path, const char **ret) {
        switch (n->kind) {
        case NRI_PATH:
                return import_path(c, n, path, ret);
        case NRI_DERIVATION:
                c->host->use_context(c->host->ctx, n);
                *ret = n->str.s;
                return 0;
        case NRI_STRING:
                return store_string(c, n, path, "source", n->str.s, ret);
        default:
                return FAIL(c, n,
                            "%s: expected a path, a derivation or a string referring to the store, got %s",
                            path, nri_kind_describe(n->kind));
        }
}

static int content_target(ctx *c, const nri_node *n, const char *path, const char *target,
                          const char **ret) {
        const char *expanded = NULL, *why;
        int r;

        r = expand_percent(c, n, path, target, &expanded);
        if (r < 0)
                return r;
        why = normalise_path(c, expanded, ret);
        if (why)
                return FAIL(c, n, "%s: the target %s %s", path, quote(c, target), why);
        return 0;
}

static int parse_content(ctx *c, part_state *s, const char *cpath, const nri_attr *at) {
        static const char *const fields[] = {"source", NULL};
        const char *path = path_join(c, cpath, at->name), *target = NULL, *source = NULL;
        const nri_node *src = NULL;
        nri_partition *p = s->p;
        int r;

        if (at->value->kind == NRI_DERIVATION || at->value->kind == NRI_PATH)
                return FAIL(c, at->value, "%s: expected an attribute set, got %s; write %s.source = …", path,
                            nri_kind_describe(at->value->kind), path);
        r = expect(c, at->value, path, NRI_ATTRS);
        if (r < 0)
                return r;
        r = check_fields(c, at->value, path, fields, NULL);
        if (r < 0)
                return r;
        r = content_target(c, at->value, path, at->name, &target);
        if (r < 0)
                return r;
        for (size_t i = 0; i < p->n_contents; i++)
                if (streq(p->contents[i].target, target))
                        return FAIL(c, at->value, "%s: the target %s is the same as that of another entry",
                                    path, quote(c, target));
        r = require(c, at->value, path, "source", &src);
        if (r < 0)
                return r;
        r = content_source(c, src, path_join(c, path, "source"), &source);
        if (r < 0)
                return r;
        add_copy(c, &p->contents, &p->n_contents, &s->cap_contents, source, target);
        return 0;
}

static int parse_contents(ctx *c, part_state *s, const nri_node *pn) {
        const char *path = path_join(c, s->path, "contents");
        const nri_node *n = opt(pn, "contents");
        int r;

        if (!n)
                return 0;
        r = expect(c, n, path, NRI_ATTRS);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n->attrs.n; i++) {
                r = parse_content(c, s, path, &n->attrs.items[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- partitions: storePaths --------------------------------------------- */

static int store_path_element(ctx *c, const nri_node *n, const char *path, const char **ret) {
        const char *s = NULL, *why;
        size_t len;
        int r;

        switch (n->kind) {
        case NRI_DERIVATION:
                s = n->str.s;
                break;
        case NRI_PATH:
                r = import_path(c, n, path, &s);
                if (r < 0)
                        return r;
                break;
        case NRI_STRING:
                why = normalise_path(c, n->str.s, &s);
                if (why)
                        return FAIL(c, n, "%s: %s %s", path, quote(c, n->str.s), why);
                break;
        default:
                return FAIL(c, n, "%s: expected a derivation or a store path, got %s", path,
                            nri_kind_describe(n->kind));
        }
        len = store_path_length(c->store_dir, s);
        if (!len)
                return FAIL(c, n, "%s: %s is not a store path (%s/<hash>-<name>)", path, quote(c, s),
                            c->store_dir);
        if (s[len])
                return FAIL(c, n, "%s: %s is inside the store path %s; give %s itself", path, quote(c, s),
                            nri_strndup(c->a, s, len), nri_strndup(c->a, s, len));
        if (n->kind == NRI_STRING && !n->has_context)
                return FAIL(
                    c, n,
                    "%s: %s is a string without store context, so Nix would not know the image needs "
                    "it; use the derivation itself or \"${drv}\"",
                    path, quote(c, s));
        if (n->kind != NRI_PATH)
                c->host->use_context(c->host->ctx, n);
        *ret = s;
        return 0;
}

static int parse_store_paths(ctx *c, part_state *s, const nri_node *pn) {
        const char *path = path_join(c, s->path, "storePaths");
        const nri_node *n = opt(pn, "storePaths");
        nri_partition *p = s->p;
        int r;

        if (!n)
                return 0;
        r = expect(c, n, path, NRI_LIST);
        if (r < 0)
                return r;
        p->store_paths = nri_alloc(c->a, (n->list.n + 1) * sizeof(char *));
        for (size_t i = 0; i < n->list.n; i++) {
                const char *sp = NULL;
                bool dup = false;

                r = store_path_element(c, n->list.items[i], path, &sp);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < p->n_store_paths && !dup; j++)
                        dup = streq(p->store_paths[j], sp);
                if (!dup)
                        p->store_paths[p->n_store_paths++] = sp;
        }
        return 0;
}

/* ---- partitions: where the store lands ---------------------------------- */

static int parse_store_prefix(ctx *c, part_state *s, const nri_node *pn) {
        const char *ppath = path_join(c, s->path, "nixStorePrefix");
        const nri_node *n = opt(pn, "nixStorePrefix");
        const char *why;
        bool strip;
        int r;

        r = get_bool(c, pn, s->path, "stripNixStorePrefix", false, &strip);
        if (r < 0)
                return r;
        s->p->nix_store_prefix = strip ? "/" : c->store_dir;
        if (!n)
                return 0;
        if (n->kind != NRI_STRING && n->kind != NRI_PATH)
                return FAIL(c, n, "%s: expected a string, got %s", ppath, nri_kind_describe(n->kind));
        if (n->has_context)
                return FAIL(c, n, "%s: %s refers to the store; the prefix is a directory inside the image",
                            ppath, quote(c, n->str.s));
        why = normalise_path(c, n->str.s, &s->p->nix_store_prefix);
        if (why)
                return FAIL(c, n, "%s: %s %s", ppath, quote(c, n->str.s), why);
        if (strip && !streq(s->p->nix_store_prefix, "/"))
                return FAIL(
                    c, n,
                    "%s: %s conflicts with stripNixStorePrefix = true, which means \"/\"; set only one "
                    "of them",
                    ppath, quote(c, n->str.s));
        return 0;
}

/* ---- repartConfig: the keys --------------------------------------------- */

typedef struct key_value {
        const nri_node *node; /* the value, or the list element */
        const char *path;     /* partitions.<id>.repartConfig.<Key> */
        const char *text;     /* the value as a repart.d file would hold it */
        int arg;
} key_value;

typedef int (*key_parser)(ctx *c, part_state *s, const key_value *kv);

static int key_type(ctx *c, part_state *s, const key_value *kv) {
        if (nri_part_type_resolve(kv->text, c->spec->arch, &s->p->type) < 0)
                return FAIL(c, kv->node, "%s: unknown partition type %s; use a GUID or one of: %s", kv->path,
                            quote(c, kv->text), nri_part_type_names(c->spec->arch));
        s->type_node = kv->node;
        return 0;
}

/* systemd: config_parse_label() and gpt_partition_label_valid().  The
 * empty label is a valid one there, and here. */
static int key_label(ctx *c, part_state *s, const key_value *kv) {
        const char *label = NULL;
        long units;
        int r;

        r = expand_percent(c, kv->node, kv->path, kv->text, &label);
        if (r < 0)
                return r;
        units = nri_utf16_length(label);
        if (units < 0)
                return FAIL(c, kv->node, "%s: %s is not valid UTF-8", kv->path, quote(c, kv->text));
        if (units > NRI_LABEL_MAX_UTF16)
                return FAIL(c, kv->node,
                            "%s: %s is %ld UTF-16 code units long; a GPT partition label holds %d", kv->path,
                            quote(c, label), units, NRI_LABEL_MAX_UTF16);
        s->p->label = label;
        s->label_set = true;
        s->label_node = kv->node;
        return 0;
}

/* systemd: config_parse_uuid().  "" means unset, as there; "null" (the
 * all-zero UUID there) is refused: it identifies nothing. */
static int key_uuid(ctx *c, part_state *s, const key_value *kv) {
        if (!*kv->text) {
                s->uuid_set = false;
                return 0;
        }
        if (streq(kv->text, "null"))
                return FAIL(c, kv->node,
                            "%s: the null UUID cannot identify a partition; leave UUID unset to derive "
                            "one from the seed",
                            kv->path);
        if (nri_uuid_parse(kv->text, &s->p->uuid) < 0)
                return FAIL(c, kv->node, "%s: %s is not a UUID (8-4-4-4-12 or 32 hexadecimal digits)",
                            kv->path, quote(c, kv->text));
        if (nri_uuid_is_null(&s->p->uuid))
                return FAIL(c, kv->node, "%s: the null UUID cannot identify a partition", kv->path);
        s->uuid_set = true;
        s->uuid_node = kv->node;
        return 0;
}

/* systemd: config_parse_int32(). */
static int key_priority(ctx *c, part_state *s, const key_value *kv) {
        int r = nri_parse_i32(kv->text, &s->p->priority);

        if (r == -ERANGE)
                return FAIL(c, kv->node, "%s: %s is out of range (a 32-bit signed integer)", kv->path,
                            quote(c, kv->text));
        if (r < 0)
                return FAIL(c, kv->node, "%s: cannot parse %s as an integer", kv->path, quote(c, kv->text));
        return 0;
}

/* systemd: config_parse_weight(). */
static int key_weight(ctx *c, part_state *s, const key_value *kv) {
        uint64_t v;
        int r = nri_parse_u64(kv->text, &v);

        if (r == -EINVAL)
                return FAIL(c, kv->node, "%s: cannot parse %s as a weight (a non-negative integer)",
                            kv->path, quote(c, kv->text));
        if (r < 0 || v > NRI_WEIGHT_MAX)
                return FAIL(c, kv->node, "%s: %s is out of range (0 to %" PRIu32 ")", kv->path,
                            quote(c, kv->text), NRI_WEIGHT_MAX);
        if (kv->arg)
                s->p->padding_weight = (uint32_t)v;
        else
                s->p->weight = (uint32_t)v;
        return 0;
}

static uint64_t *size_field(nri_partition *p, int which) {
        switch (which) {
        case SZ_MIN:
                return &p->size_min;
        case SZ_MAX:
                return &p->size_max;
        case PAD_MIN:
                return &p->padding_min;
        default:
                return &p->padding_max;
        }
}

/* systemd: config_parse_size4096().  systemd-repart 252 as shipped (checked
 * against 252.38: SizeMinBytes=10000 becomes 8192, SizeMaxBytes=20000000
 * becomes 20000768) rounds the minimums down and the maximums up. */
static int key_size(ctx *c, part_state *s, const key_value *kv) {
        bool is_max = kv->arg == SZ_MAX || kv->arg == PAD_MAX;
        uint64_t v, rounded;
        int r;

        r = nri_parse_size(kv->text, 1024, &v);
        if (r < 0 && kv->text[strspn(kv->text, " \t\n\r")] == '-')
                return FAIL(c, kv->node, "%s: %s: a size cannot be negative", kv->path, quote(c, kv->text));
        if (r == -ERANGE)
                return FAIL(c, kv->node, "%s: %s is too large", kv->path, quote(c, kv->text));
        if (r < 0)
                return FAIL(
                    c, kv->node,
                    "%s: cannot parse %s as a size: expected a number of bytes with an optional K, M, G, "
                    "T, P or E suffix (powers of 1024), e.g. \"96M\"",
                    kv->path, quote(c, kv->text));
        rounded = is_max ? nri_round_up(v, SIZE_GRAIN) : nri_round_down(v, SIZE_GRAIN);
        if (rounded >= NRI_SIZE_LIMIT)
                return FAIL(c, kv->node, "%s: %s is too large (the limit is 8 PiB)", kv->path,
                            quote(c, kv->text));
        *size_field(s->p, kv->arg) = rounded;
        s->size_node[kv->arg] = kv->node;
        return 0;
}

/* systemd: config_parse_fstype() takes any valid file name and leaves the
 * rest to mkfs.<type>. */
static int key_format(ctx *c, part_state *s, const key_value *kv) {
        static const char *const later[] = {"ext2", "ext3",     "btrfs", "xfs", "f2fs",
                                            "swap", "squashfs", "erofs", NULL};
        const char *t = kv->text;

        s->format_node = kv->node;
        if (streq(t, "ext4")) {
                s->p->format = NRI_FORMAT_EXT4;
                return 0;
        }
        if (streq(t, "vfat")) {
                s->p->format = NRI_FORMAT_VFAT;
                return 0;
        }
        if (str_in(t, later))
                return FAIL(c, kv->node,
                            "%s: file system %s is not supported by repartImage yet (supported: ext4, vfat)",
                            kv->path, quote(c, t));
        if (!*t || strchr(t, '/') || streq(t, ".") || streq(t, ".."))
                return FAIL(c, kv->node, "%s: %s is not a valid file system type", kv->path, quote(c, t));
        return FAIL(c, kv->node, "%s: %s is not a file system systemd-repart can create; use ext4 or vfat%s",
                    kv->path, quote(c, t), streq(t, "fat") || streq(t, "msdos") ? " (vfat is FAT)" : "");
}

/* One CopyFiles= source, as systemd's config_parse_copy_files() reads it,
 * but from the store only: a file from the evaluating machine goes in
 * through contents.<target>.source, which imports it. */
static int copy_source(ctx *c, const key_value *kv, const char *raw, const char **ret) {
        const char *expanded = NULL;
        int r;

        r = expand_percent(c, kv->node, kv->path, raw, &expanded);
        if (r < 0)
                return r;
        return store_string(c, kv->node, kv->path, "the source", expanded, ret);
}

/* systemd: config_parse_copy_files(): "SOURCE[:TARGET]", TARGET defaulting
 * to SOURCE, each a normalised absolute path. */
static int key_copy_files(ctx *c, part_state *s, const key_value *kv) {
        const char *colon = strchr(kv->text, ':'), *raw_source, *raw_target, *source = NULL, *target = NULL,
                   *why;
        int r;

        if (!*kv->text)
                return FAIL(c, kv->node, "%s: empty value; expected \"SOURCE[:TARGET]\"", kv->path);
        /* systemd C-unescapes both halves; store paths and image paths
         * need no escapes, so any backslash is more likely a mistake. */
        if (strchr(kv->text, '\\'))
                return FAIL(c, kv->node, "%s: %s: escape sequences are not supported", kv->path,
                            quote(c, kv->text));
        if (colon && strchr(colon + 1, ':'))
                return FAIL(c, kv->node, "%s: %s has too many ':'; expected \"SOURCE[:TARGET]\"", kv->path,
                            quote(c, kv->text));
        raw_source = colon ? nri_strndup(c->a, kv->text, (size_t)(colon - kv->text)) : kv->text;
        raw_target = colon ? colon + 1 : raw_source;
        r = copy_source(c, kv, raw_source, &source);
        if (r < 0)
                return r;
        r = expand_percent(c, kv->node, kv->path, raw_target, &target);
        if (r < 0)
                return r;
        why = normalise_path(c, target, &target);
        if (why)
                return FAIL(c, kv->node, "%s: the target %s %s", kv->path, quote(c, raw_target), why);
        add_copy(c, &s->p->copy_files, &s->p->n_copy_files, &s->cap_copy, source, target);
        return 0;
}

/* systemd's extract_first_word(…, NULL, EXTRACT_UNQUOTE): white space
 * separates, single and double quotes group, a backslash takes the next
 * character literally.  Returns 1 with a word, 0 at the end, -EINVAL for
 * an unfinished quote or escape. */
static int next_word(ctx *c, const char **p, const char **ret) {
        const char *s = *p + strspn(*p, " \t\n\r");
        char *out, *o, quote_ch = 0;

        if (!*s)
                return 0;
        out = o = nri_alloc(c->a, strlen(s) + 1);
        for (; *s; s++) {
                if (!quote_ch && strchr(" \t\n\r", *s))
                        break;
                if (*s == '\\') {
                        if (!s[1])
                                return -EINVAL;
                        *o++ = *++s;
                } else if (quote_ch && *s == quote_ch) {
                        quote_ch = 0;
                } else if (!quote_ch && (*s == '\'' || *s == '"')) {
                        quote_ch = *s;
                } else {
                        *o++ = *s;
                }
        }
        if (quote_ch)
                return -EINVAL;
        *o = 0;
        *p = s;
        *ret = out;
        return 1;
}

/* systemd: config_parse_make_dirs(): white-space-separated absolute
 * paths. */
static int key_make_dirs(ctx *c, part_state *s, const key_value *kv) {
        nri_partition *p = s->p;
        const char *cur = kv->text, *word = NULL, *dir = NULL, *why;
        int r;

        while ((r = next_word(c, &cur, &word)) > 0) {
                r = expand_percent(c, kv->node, kv->path, word, &dir);
                if (r < 0)
                        return r;
                why = normalise_path(c, dir, &dir);
                if (why)
                        return FAIL(c, kv->node, "%s: %s %s", kv->path, quote(c, word), why);
                p->make_directories =
                    grow(c, p->make_directories, p->n_make_directories, &s->cap_dirs, sizeof(char *));
                p->make_directories[p->n_make_directories++] = dir;
        }
        if (r < 0)
                return FAIL(c, kv->node, "%s: %s has an unfinished quote or escape", kv->path,
                            quote(c, kv->text));
        return 0;
}

/* Minimize= (systemd 253 and later; NixOS passes it): off, best, guess, or
 * a boolean meaning best/off. */
static int key_minimize(ctx *c, part_state *s, const key_value *kv) {
        static const char *const modes[_NRI_MINIMIZE_MAX] = {
            [NRI_MINIMIZE_OFF] = "off",
            [NRI_MINIMIZE_BEST] = "best",
            [NRI_MINIMIZE_GUESS] = "guess",
        };
        int b;

        s->minimize_node = kv->node;
        for (int m = 0; m < _NRI_MINIMIZE_MAX; m++)
                if (streq(kv->text, modes[m])) {
                        s->p->minimize = (nri_minimize)m;
                        return 0;
                }
        b = nri_parse_boolean(kv->text);
        if (b < 0)
                return FAIL(c, kv->node,
                            "%s: %s is not a minimize mode; use \"off\", \"best\", \"guess\" or a boolean",
                            kv->path, quote(c, kv->text));
        s->p->minimize = b ? NRI_MINIMIZE_BEST : NRI_MINIMIZE_OFF;
        return 0;
}

/* systemd: config_parse_gpt_flags(), safe_atou64(). */
static int key_flags(ctx *c, part_state *s, const key_value *kv) {
        int r = nri_parse_u64(kv->text, &s->p->flags);

        if (r == -ERANGE)
                return FAIL(c, kv->node, "%s: %s is out of range (64 bits)", kv->path, quote(c, kv->text));
        if (r < 0)
                return FAIL(c, kv->node,
                            "%s: cannot parse %s as flags (an unsigned 64-bit integer, 0x… for hexadecimal)",
                            kv->path, quote(c, kv->text));
        return 0;
}

/* systemd: config_parse_tristate() for NoAuto=, ReadOnly=, GrowFileSystem=. */
static int key_tristate(ctx *c, part_state *s, const key_value *kv) {
        int b = nri_parse_boolean(kv->text);

        if (b < 0)
                return FAIL(c, kv->node,
                            "%s: cannot parse %s as a boolean (yes/no, true/false, on/off, 1/0)", kv->path,
                            quote(c, kv->text));
        s->tri[kv->arg] = b;
        s->tri_node[kv->arg] = kv->node;
        return 0;
}

/* The specifiers of systemd-repart's split_name_printf() that describe the
 * partition; the machine-describing ones are refused as in expand_percent(). */
static const char split_specifiers[] = "tTUn%";

static int key_split_name(ctx *c, part_state *s, const key_value *kv) {
        s->split_node = kv->node;
        /* config_parse_string(): the empty value resets to the default. */
        if (!*kv->text) {
                s->p->split_name = "%t";
                return 0;
        }
        if (streq(kv->text, "-")) {
                s->p->split_name = NULL;
                return 0;
        }
        if (strchr(kv->text, '/'))
                return FAIL(c, kv->node, "%s: %s names a file and cannot contain '/'", kv->path,
                            quote(c, kv->text));
        for (const char *p = kv->text; *p; p++) {
                if (*p != '%')
                        continue;
                if (!p[1] || !strchr(split_specifiers, p[1]))
                        return FAIL(
                            c, kv->node,
                            "%s: specifier %%%s in %s is not supported; use %%t (type), %%T (type UUID), "
                            "%%U (partition UUID), %%n (partition number) or %%%%",
                            kv->path, p[1] ? nri_strndup(c->a, p + 1, 1) : "", quote(c, kv->text));
                p++;
        }
        s->p->split_name = kv->text;
        return 0;
}

typedef struct repart_key {
        const char *name;
        key_parser parse;
        int arg;
        bool list; /* may be given several times: a list in Nix */
} repart_key;

static const repart_key repart_keys[] = {
    {"Type", key_type, 0, false},
    {"Label", key_label, 0, false},
    {"UUID", key_uuid, 0, false},
    {"Priority", key_priority, 0, false},
    {"Weight", key_weight, 0, false},
    {"PaddingWeight", key_weight, 1, false},
    {"SizeMinBytes", key_size, SZ_MIN, false},
    {"SizeMaxBytes", key_size, SZ_MAX, false},
    {"PaddingMinBytes", key_size, PAD_MIN, false},
    {"PaddingMaxBytes", key_size, PAD_MAX, false},
    {"Format", key_format, 0, false},
    {"CopyFiles", key_copy_files, 0, true},
    {"MakeDirectories", key_make_dirs, 0, true},
    {"Minimize", key_minimize, 0, false},
    {"Flags", key_flags, 0, false},
    {"NoAuto", key_tristate, TRI_NO_AUTO, false},
    {"ReadOnly", key_tristate, TRI_READ_ONLY, false},
    {"GrowFileSystem", key_tristate, TRI_GROWFS, false},
    {"SplitName", key_split_name, 0, false},
};

/* The [Partition] settings of systemd-repart (252 to 257) that this builtin
 * does not implement. */
static const char *const repart_keys_later[] = {
    "AddValidateFS",
    "CopyBlocks",
    "Compression",
    "CompressionLevel",
    "DefaultSubvolume",
    "Encrypt",
    "EncryptedVolume",
    "ExcludeFiles",
    "ExcludeFilesTarget",
    "FactoryReset",
    "MakeSymlinks",
    "MountPoint",
    "Subvolumes",
    "SupplementFor",
    "Verity",
    "VerityDataBlockSizeBytes",
    "VerityHashBlockSizeBytes",
    "VerityMatchKey",
    NULL,
};

static const char *const *repart_key_names(ctx *c) {
        size_t n = ELEMENTSOF(repart_keys), m = ELEMENTSOF(repart_keys_later);
        const char **names = nri_alloc(c->a, (n + m) * sizeof(char *));

        for (size_t i = 0; i < n; i++)
                names[i] = repart_keys[i].name;
        memcpy(names + n, repart_keys_later, m * sizeof(char *));
        return names;
}

static const char *const *implemented_key_names(ctx *c) {
        const char **names = nri_alloc(c->a, (ELEMENTSOF(repart_keys) + 1) * sizeof(char *));

        for (size_t i = 0; i < ELEMENTSOF(repart_keys); i++)
                names[i] = repart_keys[i].name;
        return names;
}

/* The text a repart.d file generated by NixOS would hold for a scalar:
 * integers in decimal, booleans as yes/no. */
static int key_text(ctx *c, const nri_node *n, const char *path, const char **ret) {
        switch (n->kind) {
        case NRI_STRING:
                *ret = n->str.s;
                return 0;
        case NRI_INT:
                *ret = nri_printf(c->a, "%" PRId64, n->i);
                return 0;
        case NRI_BOOL:
                *ret = n->b ? "yes" : "no";
                return 0;
        default:
                return FAIL(c, n, "%s: expected a string, an integer or a Boolean, got %s", path,
                            nri_kind_describe(n->kind));
        }
}

static int parse_key_value(ctx *c, part_state *s, const repart_key *k, const nri_node *n, const char *path) {
        key_value kv = {.node = n, .path = path, .arg = k->arg};
        int r;

        r = key_text(c, n, path, &kv.text);
        if (r < 0)
                return r;
        return k->parse(c, s, &kv);
}

static int parse_key(ctx *c, part_state *s, const repart_key *k, const nri_node *n, const char *path) {
        int r;

        if (n->kind != NRI_LIST)
                return parse_key_value(c, s, k, n, path);
        if (!k->list)
                return FAIL(c, n,
                            "%s: expected a string, an integer or a Boolean, got a list; only CopyFiles and "
                            "MakeDirectories take lists",
                            path);
        for (size_t i = 0; i < n->list.n; i++) {
                const nri_node *e = n->list.items[i];

                if (e->kind != NRI_STRING)
                        return FAIL(c, e, "%s: list elements must be strings, got %s", path,
                                    nri_kind_describe(e->kind));
                r = parse_key_value(c, s, k, e, path);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int unknown_key(ctx *c, const nri_attr *at, const char *path) {
        const char *hint;

        if (str_in(at->name, repart_keys_later))
                return FAIL(c, at->value,
                            "%s: %s is a systemd-repart setting that repartImage does not implement yet",
                            path, at->name);
        hint = nearest(at->name, repart_key_names(c));
        if (hint)
                return FAIL(c, at->value, "%s: unknown systemd-repart setting; did you mean %s?", path,
                            hint);
        return FAIL(c, at->value, "%s: unknown systemd-repart setting; repartImage implements: %s", path,
                    join_names(c, implemented_key_names(c)));
}

static int parse_repart_config(ctx *c, part_state *s) {
        for (size_t i = 0; i < s->cfg->attrs.n; i++) {
                const nri_attr *at = &s->cfg->attrs.items[i];
                const char *path = path_join(c, s->cfg_path, at->name);
                const repart_key *k = NULL;
                int r;

                for (size_t j = 0; j < ELEMENTSOF(repart_keys) && !k; j++)
                        if (streq(at->name, repart_keys[j].name))
                                k = &repart_keys[j];
                r = k ? parse_key(c, s, k, at->value, path) : unknown_key(c, at, path);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- partitions: checks of partition_read_definition() ----------------- */

static const char *size_text(ctx *c, uint64_t v) {
        return nri_printf(c->a, "%" PRIu64, v);
}

static int check_ranges(ctx *c, part_state *s) {
        nri_partition *p = s->p;

        if (p->size_min != NRI_SIZE_UNSET && p->size_max != NRI_SIZE_UNSET && p->size_min > p->size_max)
                return FAIL(c, s->size_node[SZ_MIN],
                            "%s.SizeMinBytes: %s bytes (rounded down to a multiple of 4096) is larger than "
                            "SizeMaxBytes (%s bytes, rounded up)",
                            s->cfg_path, size_text(c, p->size_min), size_text(c, p->size_max));
        if (p->padding_min != NRI_SIZE_UNSET && p->padding_max != NRI_SIZE_UNSET &&
            p->padding_min > p->padding_max)
                return FAIL(
                    c, s->size_node[PAD_MIN],
                    "%s.PaddingMinBytes: %s bytes (rounded down to a multiple of 4096) is larger than "
                    "PaddingMaxBytes (%s bytes, rounded up)",
                    s->cfg_path, size_text(c, p->padding_min), size_text(c, p->padding_max));
        return 0;
}

/* Minimize= as systemd 253+ checks it, after the implied Format=. */
static int check_format(ctx *c, part_state *s) {
        nri_partition *p = s->p;

        /* systemd 252: a partition that gets files and has no Format= is
         * made ext4.  NixOS turns contents and storePaths into CopyFiles=,
         * so they count too. */
        if (p->format == NRI_FORMAT_NONE &&
            (p->n_copy_files || p->n_make_directories || p->n_contents || p->n_store_paths))
                p->format = NRI_FORMAT_EXT4;
        if (p->minimize != NRI_MINIMIZE_OFF && p->format == NRI_FORMAT_NONE)
                return FAIL(c, s->minimize_node,
                            "%s.Minimize: needs a file system to minimize; set Format too", s->cfg_path);
        if (p->minimize == NRI_MINIMIZE_BEST)
                return FAIL(
                    c, s->minimize_node,
                    "%s.Minimize: \"best\" only works with read-only file systems (squashfs, erofs) and "
                    "Format=%s is writable; use \"guess\"",
                    s->cfg_path, nri_format_to_string(p->format));
        return 0;
}

static bool type_is_verity(const nri_part_type *t) {
        return t->name && endswith(t->name, "-verity");
}

/* One of ReadOnly=/NoAuto=/GrowFileSystem= onto the flags, as systemd's
 * partition_merge_flags(); where systemd warns that the type does not know
 * the bit and ignores the setting, setting it is an error here. */
static int merge_flag(ctx *c, part_state *s, uint64_t *f, int which, int value, bool knows, uint64_t bit) {
        static const char *const keys[_TRI_MAX] = {
            [TRI_READ_ONLY] = "ReadOnly",
            [TRI_NO_AUTO] = "NoAuto",
            [TRI_GROWFS] = "GrowFileSystem",
        };
        char buf[NRI_UUID_STRING_MAX];

        if (value < 0)
                return 0;
        if (knows) {
                *f = value ? (*f | bit) : (*f & ~bit);
                return 0;
        }
        if (value > 0 && s->tri_node[which])
                return FAIL(
                    c, s->tri_node[which],
                    "%s.%s: partition type %s has no such flag (systemd-repart would ignore the setting)",
                    s->cfg_path, keys[which], nri_part_type_display(&s->p->type, buf));
        return 0;
}

static int merge_flags(ctx *c, part_state *s) {
        nri_partition *p = s->p;
        const nri_part_type *t = &p->type;
        int read_only = s->tri[TRI_READ_ONLY], growfs = s->tri[TRI_GROWFS];
        uint64_t f = p->flags;
        int r;

        /* Verity partitions are read-only unless told otherwise. */
        if (read_only < 0 && type_is_verity(t))
                read_only = 1;
        /* systemd 252 turns GrowFileSystem on for these types even over an
         * explicit GrowFileSystem=no (fixed in 253); an explicit "no" is
         * honoured here. */
        if (growfs < 0 && t->growfs_by_default && read_only <= 0)
                growfs = 1;
        r = merge_flag(c, s, &f, TRI_NO_AUTO, s->tri[TRI_NO_AUTO], t->knows_no_auto, NRI_GPT_FLAG_NO_AUTO);
        if (r >= 0)
                r = merge_flag(c, s, &f, TRI_READ_ONLY, read_only, t->knows_read_only,
                               NRI_GPT_FLAG_READ_ONLY);
        if (r >= 0)
                r = merge_flag(c, s, &f, TRI_GROWFS, growfs, t->knows_growfs, NRI_GPT_FLAG_GROWFS);
        if (r < 0)
                return r;
        p->flags = f;
        p->read_only = f & NRI_GPT_FLAG_READ_ONLY;
        p->no_auto = f & NRI_GPT_FLAG_NO_AUTO;
        p->grow_fs = f & NRI_GPT_FLAG_GROWFS;
        return 0;
}

/* ---- partitions: one ---------------------------------------------------- */

/* The attribute name becomes the definition file <name>.conf. */
static int check_partition_name(ctx *c, const nri_attr *at, const char *path) {
        const char *s = at->name;

        if (!*s)
                return FAIL(c, at->value, "%s: a partition name must not be empty", path);
        if (s[0] == '.')
                return FAIL(c, at->value,
                            "%s: a partition name must not start with '.': it names a definition file, and "
                            "systemd-repart ignores hidden ones",
                            path);
        if (strlen(s) > NRI_NAME_MAX - strlen(".conf"))
                return FAIL(c, at->value, "%s: the partition name is longer than %zu characters", path,
                            NRI_NAME_MAX - strlen(".conf"));
        for (const char *p = s; *p; p++)
                if (!(isalnum((unsigned char)*p) || strchr("._-", *p)))
                        return FAIL(c, at->value,
                                    "%s: character %s is not allowed in a partition name: it names the "
                                    "partition's definition file (use letters, digits, '.', '_' and '-')",
                                    path, quote(c, nri_strndup(c->a, p, 1)));
        return 0;
}

static int parse_partition(ctx *c, part_state *s, const nri_node *pn) {
        static const char *const fields[] = {"contents",   "nixStorePrefix",      "repartConfig",
                                             "storePaths", "stripNixStorePrefix", NULL};
        nri_partition *p = s->p;
        int r;

        *p = (nri_partition){
            .node = pn,
            .id = p->id,
            .partno = p->partno,
            .weight = 1000,
            .size_min = NRI_SIZE_UNSET,
            .size_max = NRI_SIZE_UNSET,
            .padding_min = NRI_SIZE_UNSET,
            .padding_max = NRI_SIZE_UNSET,
            .split_name = "%t",
        };
        for (int i = 0; i < _TRI_MAX; i++)
                s->tri[i] = -1;
        r = expect(c, pn, s->path, NRI_ATTRS);
        if (r >= 0)
                r = check_fields(c, pn, s->path, fields, NULL);
        if (r >= 0)
                r = require(c, pn, s->path, "repartConfig", &s->cfg);
        if (r >= 0)
                r = expect(c, s->cfg, s->cfg_path, NRI_ATTRS);
        if (r >= 0)
                r = parse_repart_config(c, s);
        if (r >= 0 && !s->type_node)
                r = FAIL(c, s->cfg,
                         "%s.Type: required setting is missing (e.g. \"root\", \"esp\" or a GUID)",
                         s->cfg_path);
        if (r >= 0)
                r = parse_contents(c, s, pn);
        if (r >= 0)
                r = parse_store_paths(c, s, pn);
        if (r >= 0)
                r = parse_store_prefix(c, s, pn);
        if (r >= 0)
                r = check_ranges(c, s);
        if (r >= 0)
                r = check_format(c, s);
        if (r >= 0)
                r = merge_flags(c, s);
        return r;
}

/* ---- partitions: what is decided across them ---------------------------- */

/* systemd-repart 252 partition_acquire_uuid(): keyed by the seed, the
 * message is the type GUID, followed by le64(k) for the k-th further
 * partition of that type (all earlier ones count, whatever their UUID=). */
static int derive_uuid(ctx *c, part_state *st, size_t i) {
        nri_partition *ps = c->spec->partitions, *p = &ps[i];
        uint64_t k = 0;

        for (size_t j = 0; j < i; j++)
                k += nri_uuid_equal(&ps[j].type.uuid, &p->type.uuid);
        if (!st[i].uuid_set)
                nri_uuid_partition(&c->spec->seed, &p->type.uuid, k, &p->uuid);
        nri_uuid_file_system(&p->uuid, &p->fs_uuid);
        return 0;
}

/* Explicit UUIDs must be unique, and must not be what the seed gives
 * another partition (systemd would quietly randomise that one). */
static int check_uuids(ctx *c, part_state *st) {
        nri_partition *ps = c->spec->partitions;
        size_t n = c->spec->n_partitions;
        char buf[NRI_UUID_STRING_MAX];

        for (size_t i = 0; i < n; i++) {
                if (!st[i].uuid_set)
                        continue;
                for (size_t j = 0; j < n; j++) {
                        if (j == i || !nri_uuid_equal(&ps[i].uuid, &ps[j].uuid))
                                continue;
                        if (st[j].uuid_set && j > i)
                                continue; /* reported on the later one */
                        nri_uuid_format(&ps[i].uuid, buf);
                        return FAIL(c, st[i].uuid_node, "%s.UUID: %s is %s UUID of %s", st[i].cfg_path, buf,
                                    st[j].uuid_set ? "already the" : "the seed-derived", st[j].path);
                }
        }
        return 0;
}

/* systemd-repart 252 partition_acquire_label(): the type's name ("linux"
 * for a GUID it does not know), then "<name>-2", "-3", … until no earlier
 * partition has it. */
static const char *default_label(ctx *c, size_t i) {
        nri_partition *ps = c->spec->partitions;
        const char *prefix = ps[i].type.name ? ps[i].type.name : "linux", *label = prefix;

        for (unsigned k = 1;;) {
                bool taken = false;

                for (size_t j = 0; j < i && !taken; j++)
                        taken = streq(ps[j].label, label);
                if (!taken)
                        return label;
                label = nri_printf(c->a, "%s-%u", prefix, ++k);
        }
}

static int acquire_label(ctx *c, part_state *st, size_t i) {
        nri_partition *ps = c->spec->partitions;

        if (!st[i].label_set) {
                ps[i].label = default_label(c, i);
                return 0;
        }
        for (size_t j = 0; j < i; j++)
                if (streq(ps[j].label, ps[i].label))
                        return FAIL(c, st[i].label_node, "%s.Label: %s is already the %slabel of %s",
                                    st[i].cfg_path, quote(c, ps[i].label), st[j].label_set ? "" : "default ",
                                    st[j].path);
        return 0;
}

/* systemd-repart's split_name_printf(), for the partitions split when
 * split = true; the names must differ (split_name_resolve()). */
static const char *resolve_split_name(ctx *c, const nri_partition *p) {
        char buf[NRI_UUID_STRING_MAX];
        const char *out = "";

        for (const char *s = p->split_name; *s; s++) {
                const char *piece;

                if (*s != '%') {
                        out = nri_printf(c->a, "%s%c", out, *s);
                        continue;
                }
                switch (*++s) {
                case 't':
                        piece = nri_strdup(c->a, nri_part_type_display(&p->type, buf));
                        break;
                case 'T':
                        nri_uuid_format(&p->type.uuid, buf);
                        piece = nri_strdup(c->a, buf);
                        break;
                case 'U':
                        nri_uuid_format(&p->uuid, buf);
                        piece = nri_strdup(c->a, buf);
                        break;
                case 'n':
                        piece = nri_printf(c->a, "%u", p->partno);
                        break;
                default:
                        piece = "%";
                        break;
                }
                out = nri_printf(c->a, "%s%s", out, piece);
        }
        return out;
}

static int check_split_names(ctx *c, part_state *st) {
        nri_partition *ps = c->spec->partitions;

        for (size_t i = 0; i < c->spec->n_partitions; i++) {
                const nri_node *where = st[i].split_node ? st[i].split_node : ps[i].node;

                if (!ps[i].split_name)
                        continue;
                st[i].split_resolved = resolve_split_name(c, &ps[i]);
                if (strlen(st[i].split_resolved) > NRI_NAME_MAX)
                        return FAIL(c, where, "%s.SplitName: the split name is longer than 255 bytes",
                                    st[i].cfg_path);
                for (size_t j = 0; j < i; j++)
                        if (st[j].split_resolved && streq(st[j].split_resolved, st[i].split_resolved))
                                return FAIL(
                                    c, where,
                                    "%s.SplitName: the split file name %s is also that of %s; set SplitName "
                                    "(e.g. \"%%t-%%n\") or SplitName = \"-\"",
                                    st[i].cfg_path, quote(c, st[i].split_resolved), st[j].path);
        }
        return 0;
}

static int derive_partitions(ctx *c, part_state *st) {
        int r;

        for (size_t i = 0; i < c->spec->n_partitions; i++) {
                r = derive_uuid(c, st, i);
                if (r < 0)
                        return r;
        }
        r = check_uuids(c, st);
        for (size_t i = 0; r >= 0 && i < c->spec->n_partitions; i++)
                r = acquire_label(c, st, i);
        if (r >= 0 && c->spec->split)
                r = check_split_names(c, st);
        return r;
}

/* ---- partitions: all ---------------------------------------------------- */

/* systemd-repart reads definitions in the order of their file names,
 * "<name>.conf": "a-b.conf" sorts before "a.conf" although "a" < "a-b". */
static int definition_order(const void *x, const void *y) {
        const nri_attr *a = *(const nri_attr *const *)x, *b = *(const nri_attr *const *)y;
        size_t la = strlen(a->name), lb = strlen(b->name), n = la < lb ? la : lb;
        int r = memcmp(a->name, b->name, n);

        if (r != 0 || la == lb)
                return r;
        /* One name is a prefix of the other: compare ".conf" against the
         * rest of the longer one. */
        return la < lb ? strcmp(".conf", b->name + n) : strcmp(a->name + n, ".conf");
}

static int parse_partitions(ctx *c, const nri_node *args) {
        const nri_node *n = NULL;
        const nri_attr **order;
        part_state *st;
        int r;

        r = require(c, args, NULL, "partitions", &n);
        if (r < 0)
                return r;
        r = expect(c, n, "partitions", NRI_ATTRS);
        if (r < 0)
                return r;
        if (n->attrs.n == 0)
                return FAIL(c, n, "partitions: an image needs at least one partition");
        order = nri_alloc(c->a, n->attrs.n * sizeof(*order));
        for (size_t i = 0; i < n->attrs.n; i++)
                order[i] = &n->attrs.items[i];
        qsort(order, n->attrs.n, sizeof(*order), definition_order);

        c->spec->n_partitions = n->attrs.n;
        c->spec->partitions = nri_alloc(c->a, n->attrs.n * sizeof(nri_partition));
        st = nri_alloc(c->a, n->attrs.n * sizeof(part_state));
        for (size_t i = 0; i < n->attrs.n; i++) {
                st[i].p = &c->spec->partitions[i];
                st[i].path = path_join(c, "partitions", order[i]->name);
                st[i].cfg_path = path_join(c, st[i].path, "repartConfig");
                st[i].p->id = order[i]->name;
                st[i].p->partno = (unsigned)i;
                r = check_partition_name(c, order[i], st[i].path);
                if (r < 0)
                        return r;
                r = parse_partition(c, &st[i], order[i]->value);
                if (r < 0)
                        return r;
        }
        return derive_partitions(c, st);
}

/* ---- the whole ---------------------------------------------------------- */

static const char *const top_fields[] = {"architecture", "compression", "imageSize", "name",    "partitions",
                                         "sectorSize",   "seed",        "split",     "version", NULL};

#define NOT_HERE "is not supported by repartImage: "
#define MODULE_OUTPUT                                                                                       \
        "is an output of the NixOS module, not an input; the result's `image` attribute tells it"
#define MODULE_INTERNAL NOT_HERE "it is internal to the NixOS module"

static const refusal top_refused[] = {
    {"package", NOT_HERE "it writes the image itself and runs no systemd-repart"},
    {"mkfsOptions", NOT_HERE "it writes ext4 and vfat with its own fixed options, not with mkfs programs"},
    {"finalPartitions", MODULE_INTERNAL},
    {"assertions", MODULE_INTERNAL},
    {"warnings", MODULE_INTERNAL},
    {"image", MODULE_INTERNAL},
    {"imageFile", MODULE_OUTPUT},
    {"imageFileBasename", MODULE_OUTPUT},
    {NULL, NULL},
};

typedef int (*top_parser)(ctx *c, const nri_node *args);

/* In this order: the partitions need the seed, the architecture and
 * `split`. */
static const top_parser top_parsers[] = {
    parse_name,  parse_version,     parse_seed,         parse_sector_size, parse_image_size,
    parse_split, parse_compression, parse_architecture, parse_partitions,
};

int nri_spec_from_args(nri_arena *a, const nri_node *args, const nri_host *host, nri_spec **ret,
                       nri_error *err) {
        ctx c = {
            .a = a,
            .err = err,
            .host = host,
            .store_dir = host->store_dir ? host->store_dir : "/nix/store",
        };
        int r;

        if (!args || args->kind != NRI_ATTRS)
                return nri_fail(a, err, args, "argument: expected an attribute set, got %s",
                                nri_kind_describe(args ? args->kind : NRI_NULL));
        c.spec = nri_alloc(a, sizeof(nri_spec));
        c.spec->store_dir = c.store_dir;
        r = check_fields(&c, args, NULL, top_fields, top_refused);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(top_parsers); i++) {
                r = top_parsers[i](&c, args);
                if (r < 0)
                        return r;
        }
        nri_uuid_disk(&c.spec->seed, &c.spec->disk_uuid);
        *ret = c.spec;
        return 0;
}

char *nri_spec_image_file_name(nri_arena *a, const nri_spec *spec) {
        if (spec->version)
                return nri_printf(a, "%s_%s.raw", spec->name, spec->version);
        return nri_printf(a, "%s.raw", spec->name);
}

const char *nri_format_to_string(nri_format f) {
        switch (f) {
        case NRI_FORMAT_EXT4:
                return "ext4";
        case NRI_FORMAT_VFAT:
                return "vfat";
        default:
                return NULL;
        }
}

const char *nri_minimize_to_string(nri_minimize m) {
        switch (m) {
        case NRI_MINIMIZE_OFF:
                return "off";
        case NRI_MINIMIZE_BEST:
                return "best";
        case NRI_MINIMIZE_GUESS:
                return "guess";
        default:
                return NULL;
        }
}

const char *nri_compression_to_string(nri_compression c) {
        switch (c) {
        case NRI_COMPRESSION_ZSTD:
                return "zstd";
        case NRI_COMPRESSION_XZ:
                return "xz";
        default:
                return NULL;
        }
}
