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
 * at the node that holds the mistake.
 *
 * This file reads the top level and the partitions as a whole, and decides
 * what is decided across partitions (UUIDs, labels, split names); a
 * partition's repartConfig is read in repart-config.c, its contents and
 * storePaths in partition-contents.c. */
#include "spec-args.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "nix-repart-image/parse.h"
#include "partition-contents.h"
#include "repart-config.h"
#include "validate.h"

/* ---- top level ---------------------------------------------------------- */

static int check_file_name_part(ctx *c, const nri_node *n, const char *path) {
        const char *why = nri_why_not_file_name_part(c->a, n->str.s);

        return why ? FAIL(c, n, "%s: %s", path, why) : 0;
}

static int parse_name(ctx *c, const nri_node *args) {
        const nri_node *n = NULL;
        int r;

        r = spec_require(c, args, NULL, "name", &n);
        if (r < 0)
                return r;
        r = spec_expect(c, n, "name", NRI_STRING);
        if (r < 0)
                return r;
        r = check_file_name_part(c, n, "name");
        if (r < 0)
                return r;
        c->spec->name = n->str.s;
        return 0;
}

static int parse_version(ctx *c, const nri_node *args) {
        const nri_node *n = spec_opt(args, "version");
        int r;

        if (!n || n->kind == NRI_NULL)
                return 0;
        r = spec_expect(c, n, "version", NRI_STRING);
        if (r < 0)
                return r;
        r = check_file_name_part(c, n, "version");
        if (r < 0)
                return r;
        c->spec->version = n->str.s;
        return 0;
}

static int parse_seed(ctx *c, const nri_node *args) {
        const nri_node *n = spec_opt(args, "seed");
        const char *s = NRI_DEFAULT_SEED;
        int r;

        if (n && n->kind != NRI_NULL) {
                r = spec_expect(c, n, "seed", NRI_STRING);
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
                    spec_quote(c, s));
        if (nri_uuid_is_null(&c->spec->seed))
                return FAIL(c, n, "seed: the all-zero UUID cannot seed anything; use null for random UUIDs");
        return 0;
}

static int parse_sector_size(ctx *c, const nri_node *args) {
        const nri_node *n = spec_opt(args, "sectorSize");
        int r;

        /* NixOS's option is `nullOr int`; null leaves systemd-repart's
         * default, 512. */
        c->spec->sector_size = 512;
        if (!n || n->kind == NRI_NULL)
                return 0;
        r = spec_expect(c, n, "sectorSize", NRI_INT);
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
        const nri_node *n = spec_opt(args, "imageSize");
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
                            spec_quote(c, n->str.s));
        } else {
                return FAIL(c, n, "imageSize: expected \"auto\", a size string or an integer, got %s",
                            nri_kind_describe(n->kind));
        }
        rounded = nri_round_up(v, NRI_SIZE_GRAIN);
        if (rounded == 0)
                return FAIL(c, n, "imageSize: a size of 0 is too small");
        if (rounded >= NRI_SIZE_LIMIT)
                return FAIL(c, n, "imageSize: %" PRIu64 " bytes is too large (the limit is 8 PiB)", v);
        c->spec->image_size = rounded;
        return 0;
}

static int parse_split(ctx *c, const nri_node *args) {
        return spec_get_bool(c, args, NULL, "split", false, &c->spec->split);
}

static int parse_compression_algorithm(ctx *c, const nri_node *cn, nri_compression *ret) {
        const nri_node *n = spec_opt(cn, "algorithm");
        int r;

        *ret = NRI_COMPRESSION_ZSTD;
        if (!n)
                return 0;
        r = spec_expect(c, n, "compression.algorithm", NRI_STRING);
        if (r < 0)
                return r;
        *ret = nri_compression_from_string(n->str.s);
        if (*ret > NRI_COMPRESSION_NONE)
                return 0;
        if (streq(n->str.s, "zstd-seekable"))
                return FAIL(c, n,
                            "compression.algorithm: \"zstd-seekable\" is not supported by repartImage yet; "
                            "use \"zstd\" or \"xz\"");
        return FAIL(c, n, "compression.algorithm: %s is not a compression algorithm; use \"zstd\" or \"xz\"",
                    spec_quote(c, n->str.s));
}

static int parse_compression(ctx *c, const nri_node *args) {
        static const char *const fields[] = {"algorithm", "enable", "level", NULL};
        const nri_node *n = spec_opt(args, "compression"), *level;
        nri_compression alg;
        int min, max;
        bool enable;
        int r;

        c->spec->compression = NRI_COMPRESSION_NONE;
        if (!n)
                return 0;
        r = spec_expect(c, n, "compression", NRI_ATTRS);
        if (r < 0)
                return r;
        r = spec_check_fields(c, n, "compression", fields, NULL);
        if (r < 0)
                return r;
        r = spec_get_bool(c, n, "compression", "enable", false, &enable);
        if (r < 0)
                return r;
        r = parse_compression_algorithm(c, n, &alg);
        if (r < 0)
                return r;
        (void)nri_compression_levels(alg, &min, &max, &c->spec->compression_level);
        level = spec_opt(n, "level");
        if (level) {
                r = spec_expect(c, level, "compression.level", NRI_INT);
                if (r < 0)
                        return r;
                if (level->i < min || level->i > max)
                        return FAIL(c, level,
                                    "compression.level: %" PRId64 " is out of range for %s (%d to %d)",
                                    level->i, nri_compression_to_string(alg), min, max);
                c->spec->compression_level = (int)level->i;
        }
        if (enable)
                c->spec->compression = alg;
        return 0;
}

static int parse_architecture(ctx *c, const nri_node *args) {
        const nri_node *n = spec_opt(args, "architecture");
        int r;

        if (!n) {
                c->spec->arch = nri_arch_from_nix_system(c->host->system);
                if (c->spec->arch < 0)
                        return FAIL(c, args,
                                    "architecture: the evaluating system %s is neither x86_64-linux nor "
                                    "aarch64-linux; set architecture = \"x86-64\" or \"arm64\"",
                                    spec_quote(c, c->host->system ? c->host->system : "(unknown)"));
                return 0;
        }
        r = spec_expect(c, n, "architecture", NRI_STRING);
        if (r < 0)
                return r;
        c->spec->arch = nri_arch_from_string(n->str.s);
        if (c->spec->arch >= 0)
                return 0;
        if (streq(n->str.s, "x86_64") || streq(n->str.s, "aarch64"))
                return FAIL(c, n, "architecture: %s is Nix's name; systemd's, used here, is %s",
                            spec_quote(c, n->str.s), streq(n->str.s, "x86_64") ? "\"x86-64\"" : "\"arm64\"");
        return FAIL(c, n, "architecture: %s is not supported; use \"x86-64\" or \"arm64\"",
                    spec_quote(c, n->str.s));
}

/* ---- partitions: one ---------------------------------------------------- */

static int check_partition_name(ctx *c, const nri_attr *at, const char *path) {
        const char *why = nri_why_not_partition_name(c->a, at->name);

        return why ? FAIL(c, at->value, "%s: %s", path, why) : 0;
}

static int parse_partition(ctx *c, part_state *s, const nri_node *pn) {
        static const char *const fields[] = {
            "contents",     "deduplicateStore", "nixPathRegistration", "nixStorePrefix",
            "repartConfig", "storePaths",       "stripNixStorePrefix", NULL};
        nri_partition *p = s->p;
        int r;

        *p = (nri_partition){
            .id = p->id,
            .partno = p->partno,
            .weight = 1000,
            .size_min = NRI_SIZE_UNSET,
            .size_max = NRI_SIZE_UNSET,
            .padding_min = NRI_SIZE_UNSET,
            .padding_max = NRI_SIZE_UNSET,
            .split_name = "%t",
            .verity_data_block_size = NRI_SIZE_UNSET,
            .verity_hash_block_size = NRI_SIZE_UNSET,
        };
        for (int i = 0; i < _TRI_MAX; i++)
                s->tri[i] = -1;
        r = spec_expect(c, pn, s->path, NRI_ATTRS);
        if (r >= 0)
                r = spec_check_fields(c, pn, s->path, fields, NULL);
        if (r >= 0)
                r = spec_require(c, pn, s->path, "repartConfig", &s->cfg);
        if (r >= 0)
                r = spec_expect(c, s->cfg, s->cfg_path, NRI_ATTRS);
        if (r >= 0)
                r = spec_parse_repart_config(c, s);
        if (r >= 0 && !s->type_node)
                r = FAIL(c, s->cfg,
                         "%s.Type: required setting is missing (e.g. \"root\", \"esp\" or a GUID)",
                         s->cfg_path);
        if (r >= 0)
                r = spec_parse_contents(c, s, pn);
        if (r >= 0)
                r = spec_parse_store_paths(c, s, pn);
        if (r >= 0)
                r = spec_parse_store_prefix(c, s, pn);
        if (r >= 0)
                r = spec_parse_registration(c, s, pn);
        if (r >= 0)
                r = spec_check_ranges(c, s);
        if (r >= 0)
                r = spec_check_verity(c, s);
        if (r >= 0)
                r = spec_check_format(c, s);
        if (r >= 0)
                r = spec_parse_dedup(c, s, pn);
        if (r >= 0)
                r = spec_check_names(c, s);
        if (r >= 0)
                r = spec_merge_flags(c, s);
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

static const char *label_prefix(const nri_partition *p) {
        return p->type.name ? p->type.name : "linux";
}

/* systemd-repart 252 partition_acquire_label(): the type's name ("linux"
 * for a GUID it does not know), then "<name>-2", "-3", … until no earlier
 * partition has it.  The labels taken only grow from one partition to the
 * next, so the search starts where the last default label with the same
 * prefix ended: without that, thousands of partitions of one type took
 * cubic time (5000: 90 s; found by tests/integration/test_hostile.py). */
static const char *default_label(ctx *c, part_state *st, size_t i) {
        nri_partition *ps = c->spec->partitions;
        const char *prefix = label_prefix(&ps[i]);
        unsigned k = 1;

        for (size_t j = i; j-- > 0;)
                if (!st[j].label_set && streq(label_prefix(&ps[j]), prefix)) {
                        k = st[j].label_k;
                        break;
                }
        for (;; k++) {
                const char *label = k == 1 ? prefix : nri_printf(c->a, "%s-%u", prefix, k);
                bool taken = false;

                for (size_t j = 0; j < i && !taken; j++)
                        taken = streq(ps[j].label, label);
                if (!taken) {
                        st[i].label_k = k;
                        return label;
                }
        }
}

static int acquire_label(ctx *c, part_state *st, size_t i) {
        nri_partition *ps = c->spec->partitions;

        if (!st[i].label_set) {
                ps[i].label = default_label(c, st, i);
                return 0;
        }
        for (size_t j = 0; j < i; j++)
                if (streq(ps[j].label, ps[i].label))
                        return FAIL(c, st[i].label_node, "%s.Label: %s is already the %slabel of %s",
                                    st[i].cfg_path, spec_quote(c, ps[i].label),
                                    st[j].label_set ? "" : "default ", st[j].path);
        return 0;
}

/* systemd-repart makes the file system's label from the partition's; a
 * format may cut or change it (FAT keeps 11 upper-case ASCII characters),
 * but some labels it cannot hold at all. */
static int check_fs_label(ctx *c, part_state *st, size_t i) {
        const nri_partition *p = &c->spec->partitions[i];
        const nri_fs_type *t = nri_fs_type_of(p->format);
        const char *why = t && t->label_problem ? t->label_problem(c->a, p->label) : NULL;

        if (why)
                return FAIL(c, st[i].label_node ? st[i].label_node : st[i].node, "%s.Label: %s %s",
                            st[i].cfg_path, spec_quote(c, p->label), why);
        return 0;
}

/* systemd-repart's context_read_definitions(): each Verity= partition has
 * exactly one sibling of the other kind with its VerityMatchKey=, and the
 * same Priority= (so that both or neither are dropped). */
static int check_verity_pairs(ctx *c, part_state *st) {
        const nri_partition *ps = c->spec->partitions;
        size_t n = c->spec->n_partitions;

        for (size_t i = 0; i < n; i++) {
                size_t same = SIZE_MAX, other = SIZE_MAX;

                if (ps[i].verity == NRI_VERITY_OFF)
                        continue;
                for (size_t j = 0; j < n; j++) {
                        if (j == i || ps[j].verity == NRI_VERITY_OFF ||
                            !streq(ps[j].verity_match_key, ps[i].verity_match_key))
                                continue;
                        if (ps[j].verity == ps[i].verity) {
                                if (same == SIZE_MAX)
                                        same = j;
                        } else if (other == SIZE_MAX)
                                other = j;
                }
                if (same != SIZE_MAX)
                        return FAIL(c, st[i].match_key_node,
                                    "%s.VerityMatchKey: %s is also that of %s, another Verity=%s partition",
                                    st[i].cfg_path, spec_quote(c, ps[i].verity_match_key), st[same].path,
                                    nri_verity_to_string(ps[i].verity));
                if (other == SIZE_MAX)
                        return FAIL(c, st[i].match_key_node,
                                    "%s.VerityMatchKey: no Verity=%s partition has VerityMatchKey %s",
                                    st[i].cfg_path, ps[i].verity == NRI_VERITY_DATA ? "hash" : "data",
                                    spec_quote(c, ps[i].verity_match_key));
                if (ps[other].priority != ps[i].priority)
                        return FAIL(c, st[i].node,
                                    "%s.Priority: the partitions of a Verity= pair need the same Priority "
                                    "(%s has %" PRId32 ", this one %" PRId32 ")",
                                    st[i].cfg_path, st[other].path, ps[other].priority, ps[i].priority);
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
        if (r >= 0)
                r = check_verity_pairs(c, st);
        for (size_t i = 0; r >= 0 && i < c->spec->n_partitions; i++)
                r = acquire_label(c, st, i);
        for (size_t i = 0; r >= 0 && i < c->spec->n_partitions; i++)
                r = check_fs_label(c, st, i);
        return r;
}

/* ---- partitions: where they go ------------------------------------------ */

/* The builder lays the partitions out (layout.h) with what each file system
 * and its content need at least; before the content is read, that is the
 * least the format needs.  Content can only raise a minimum, so a layout
 * that fails here fails in the builder too: a size that no content could
 * make fit is a mistake of the expression, said here. */
static int check_layout(ctx *c, part_state *st, const nri_node *args, bool **ret_dropped) {
        const nri_node *image_size = spec_opt(args, "imageSize");
        size_t n = c->spec->n_partitions, failed = SIZE_MAX;
        nri_layout_part *parts = nri_alloc(c->a, n * sizeof(*parts));
        nri_error err = {0};
        int r;

        for (size_t i = 0; i < n; i++) {
                parts[i] = nri_spec_layout_part(&c->spec->partitions[i]);
                parts[i].content_min = nri_format_min_size(c->spec->partitions[i].format);
        }
        r = nri_layout_compute(parts, n, c->spec->sector_size, c->spec->image_size, NULL, &failed, c->a,
                               &err);
        if (r >= 0) {
                *ret_dropped = nri_alloc(c->a, n * sizeof(bool));
                for (size_t i = 0; i < n; i++)
                        (*ret_dropped)[i] = parts[i].dropped;
                return 0;
        }
        if (failed < n) {
                nri_layout_part alone = nri_spec_layout_part(&c->spec->partitions[failed]);
                nri_error err_alone = {0};

                /* Too large for its own SizeMaxBytes=, whatever the image, or
                 * too large for the image with the others. */
                alone.content_min = parts[failed].content_min;
                if (nri_layout_compute(&alone, 1, c->spec->sector_size, NRI_LAYOUT_UNSET, NULL, NULL, c->a,
                                       &err_alone) < 0)
                        return FAIL(
                            c, st[failed].size_node[SZ_MAX] ? st[failed].size_node[SZ_MAX] : st[failed].node,
                            "%s.SizeMaxBytes: the partition %s", st[failed].cfg_path, err_alone.message);
                if (image_size)
                        return FAIL(c, image_size, "imageSize: %s %s", st[failed].path, err.message);
                return FAIL(c, st[failed].node, "%s: %s", st[failed].path, err.message);
        }
        if (image_size)
                return FAIL(c, image_size, "imageSize: %s", err.message);
        return FAIL(c, spec_opt(args, "partitions"), "partitions: %s", err.message);
}

/* The split files' names, for split = true: as systemd-repart names them
 * (nri_split_names()), for the partitions the layout keeps; they must
 * differ.  The builder checks them again with its own layout, which the
 * content may make drop more. */
static int check_split_names(ctx *c, part_state *st, const bool *dropped) {
        const char **names = nri_alloc(c->a, c->spec->n_partitions * sizeof(char *));
        size_t i = 0, j = 0;
        int r = nri_split_names(c->a, c->spec, dropped, names, &i, &j);
        const nri_node *where = r < 0 ? (st[i].split_node ? st[i].split_node : st[i].node) : NULL;

        if (r == -ENAMETOOLONG)
                return FAIL(c, where, "%s.SplitName: the split name is longer than 255 bytes",
                            st[i].cfg_path);
        if (r == -EEXIST)
                return FAIL(c, where,
                            "%s.SplitName: the split file name %s is also that of %s; set SplitName "
                            "(e.g. \"%%t-%%n\") or SplitName = \"-\"",
                            st[i].cfg_path, spec_quote(c, names[i]), st[j].path);
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
        bool *dropped = NULL;
        part_state *st;
        int r;

        r = spec_require(c, args, NULL, "partitions", &n);
        if (r < 0)
                return r;
        r = spec_expect(c, n, "partitions", NRI_ATTRS);
        if (r < 0)
                return r;
        /* No partitions: an empty GPT, as systemd-repart writes one for an
         * empty definitions directory. */
        if (n->attrs.n > NRI_GPT_ENTRIES)
                return FAIL(c, n, "partitions: %zu partitions do not fit in a GPT, which has %d entries",
                            n->attrs.n, NRI_GPT_ENTRIES);
        order = nri_alloc(c->a, n->attrs.n * sizeof(*order));
        for (size_t i = 0; i < n->attrs.n; i++)
                order[i] = &n->attrs.items[i];
        qsort(order, n->attrs.n, sizeof(*order), definition_order);

        c->spec->n_partitions = n->attrs.n;
        c->spec->partitions = nri_alloc(c->a, n->attrs.n * sizeof(nri_partition));
        st = nri_alloc(c->a, n->attrs.n * sizeof(part_state));
        for (size_t i = 0; i < n->attrs.n; i++) {
                st[i].p = &c->spec->partitions[i];
                st[i].node = order[i]->value;
                st[i].path = spec_path_join(c, "partitions", order[i]->name);
                st[i].cfg_path = spec_path_join(c, st[i].path, "repartConfig");
                st[i].p->id = order[i]->name;
                st[i].p->partno = (unsigned)i;
                r = check_partition_name(c, order[i], st[i].path);
                if (r < 0)
                        return r;
                r = parse_partition(c, &st[i], order[i]->value);
                if (r < 0)
                        return r;
        }
        r = derive_partitions(c, st);
        if (r >= 0)
                r = check_layout(c, st, args, &dropped);
        if (r >= 0 && c->spec->split)
                r = check_split_names(c, st, dropped);
        return r;
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
    {"mkfsOptions",
     NOT_HERE "it writes each file system with its own fixed options, not with mkfs programs"},
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
        r = spec_check_fields(&c, args, NULL, top_fields, top_refused);
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
