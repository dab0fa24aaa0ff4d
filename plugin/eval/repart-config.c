/* repart-config.c: a partition's repartConfig, read as systemd-repart 252
 * reads the [Partition] section of a repart.d file (its config_parse_*()
 * functions), then checked and completed as partition_read_definition()
 * and partition_merge_flags() do. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "nix-repart-image/parse.h"
#include "repart-config.h"
#include "validate.h"

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
                            spec_quote(c, kv->text), nri_part_type_names(c->spec->arch));
        s->type_node = kv->node;
        return 0;
}

/* systemd: config_parse_label() and gpt_partition_label_valid().  The
 * empty label is a valid one there, and here. */
static int key_label(ctx *c, part_state *s, const key_value *kv) {
        const char *label = NULL, *why;
        int r;

        r = spec_expand_percent(c, kv->node, kv->path, kv->text, &label);
        if (r < 0)
                return r;
        why = nri_why_not_label(c->a, label);
        if (why)
                return FAIL(c, kv->node, "%s: %s", kv->path, why);
        s->p->label = label;
        s->label_set = true;
        s->label_node = kv->node;
        return 0;
}

/* systemd 252: config_parse_uuid().  "" means unset; "null" is the
 * all-zero UUID, which the partition then has in the GPT (systemd-repart
 * 252 writes it as given; its file system's UUID still derives from it). */
static int key_uuid(ctx *c, part_state *s, const key_value *kv) {
        if (!*kv->text) {
                s->uuid_set = false;
                return 0;
        }
        if (streq(kv->text, "null"))
                s->p->uuid = (nri_uuid){0};
        else if (nri_uuid_parse(kv->text, &s->p->uuid) < 0)
                return FAIL(c, kv->node, "%s: %s is not a UUID (8-4-4-4-12 or 32 hexadecimal digits)",
                            kv->path, spec_quote(c, kv->text));
        s->uuid_set = true;
        s->uuid_node = kv->node;
        return 0;
}

/* systemd: config_parse_int32(). */
static int key_priority(ctx *c, part_state *s, const key_value *kv) {
        int r = nri_parse_i32(kv->text, &s->p->priority);

        if (r == -ERANGE)
                return FAIL(c, kv->node, "%s: %s is out of range (a 32-bit signed integer)", kv->path,
                            spec_quote(c, kv->text));
        if (r < 0)
                return FAIL(c, kv->node, "%s: cannot parse %s as an integer", kv->path,
                            spec_quote(c, kv->text));
        return 0;
}

/* systemd: config_parse_weight(). */
static int key_weight(ctx *c, part_state *s, const key_value *kv) {
        uint64_t v;
        int r = nri_parse_u64(kv->text, &v);

        if (r == -EINVAL)
                return FAIL(c, kv->node, "%s: cannot parse %s as a weight (a non-negative integer)",
                            kv->path, spec_quote(c, kv->text));
        if (r < 0 || v > NRI_WEIGHT_MAX)
                return FAIL(c, kv->node, "%s: %s is out of range (0 to %" PRIu32 ")", kv->path,
                            spec_quote(c, kv->text), NRI_WEIGHT_MAX);
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
                return FAIL(c, kv->node, "%s: %s: a size cannot be negative", kv->path,
                            spec_quote(c, kv->text));
        if (r == -ERANGE)
                return FAIL(c, kv->node, "%s: %s is too large", kv->path, spec_quote(c, kv->text));
        if (r < 0)
                return FAIL(
                    c, kv->node,
                    "%s: cannot parse %s as a size: expected a number of bytes with an optional K, M, G, "
                    "T, P or E suffix (powers of 1024), e.g. \"96M\"",
                    kv->path, spec_quote(c, kv->text));
        rounded = is_max ? nri_round_up(v, NRI_SIZE_GRAIN) : nri_round_down(v, NRI_SIZE_GRAIN);
        if (rounded >= NRI_SIZE_LIMIT)
                return FAIL(c, kv->node, "%s: %s is too large (the limit is 8 PiB)", kv->path,
                            spec_quote(c, kv->text));
        *size_field(s->p, kv->arg) = rounded;
        s->size_node[kv->arg] = kv->node;
        return 0;
}

/* systemd: config_parse_fstype() takes any valid file name and leaves the
 * rest to mkfs.<type>.  The formats systemd-repart (252 to 257) can make;
 * those not in the file-system table (file-systems.h) are not written
 * here yet. */
static int key_format(ctx *c, part_state *s, const key_value *kv) {
        static const char *const systemd_formats[] = {"ext2", "ext3", "ext4",     "btrfs", "xfs", "f2fs",
                                                      "vfat", "swap", "squashfs", "erofs", NULL};
        const char *t = kv->text;
        nri_format f = nri_format_from_string(t);

        s->format_node = kv->node;
        if (f > NRI_FORMAT_NONE) {
                s->p->format = f;
                return 0;
        }
        if (str_in(t, systemd_formats))
                return FAIL(c, kv->node,
                            "%s: file system %s is not supported by repartImage yet (supported: %s)",
                            kv->path, spec_quote(c, t), nri_format_names(c->a, ", "));
        if (!*t || strchr(t, '/') || streq(t, ".") || streq(t, ".."))
                return FAIL(c, kv->node, "%s: %s is not a valid file system type", kv->path,
                            spec_quote(c, t));
        return FAIL(c, kv->node, "%s: %s is not a file system systemd-repart can create; use %s%s", kv->path,
                    spec_quote(c, t), nri_format_names(c->a, " or "),
                    streq(t, "fat") || streq(t, "msdos") ? " (vfat is FAT)" : "");
}

/* One CopyFiles= source, as systemd's config_parse_copy_files() reads it,
 * but from the store only: a file from the evaluating machine goes in
 * through contents.<target>.source, which imports it. */
static int copy_source(ctx *c, const key_value *kv, const char *raw, const char **ret) {
        const char *expanded = NULL;
        int r;

        r = spec_expand_percent(c, kv->node, kv->path, raw, &expanded);
        if (r < 0)
                return r;
        return spec_store_string(c, kv->node, kv->path, "the source", expanded, ret);
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
                            spec_quote(c, kv->text));
        if (colon && strchr(colon + 1, ':'))
                return FAIL(c, kv->node, "%s: %s has too many ':'; expected \"SOURCE[:TARGET]\"", kv->path,
                            spec_quote(c, kv->text));
        raw_source = colon ? nri_strndup(c->a, kv->text, (size_t)(colon - kv->text)) : kv->text;
        raw_target = colon ? colon + 1 : raw_source;
        r = copy_source(c, kv, raw_source, &source);
        if (r < 0)
                return r;
        r = spec_expand_percent(c, kv->node, kv->path, raw_target, &target);
        if (r < 0)
                return r;
        why = nri_normalise_path(c->a, target, &target);
        if (why)
                return FAIL(c, kv->node, "%s: the target %s %s", kv->path, spec_quote(c, raw_target), why);
        spec_add_copy(c, &s->p->copy_files, &s->p->n_copy_files, &s->cap_copy, &s->copy_nodes,
                      &s->cap_copy_nodes, source, target, kv->node);
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
                r = spec_expand_percent(c, kv->node, kv->path, word, &dir);
                if (r < 0)
                        return r;
                why = nri_normalise_path(c->a, dir, &dir);
                if (why)
                        return FAIL(c, kv->node, "%s: %s %s", kv->path, spec_quote(c, word), why);
                p->make_directories =
                    spec_grow(c, p->make_directories, p->n_make_directories, &s->cap_dirs, sizeof(char *));
                s->dir_nodes =
                    spec_grow(c, s->dir_nodes, p->n_make_directories, &s->cap_dir_nodes, sizeof(nri_node *));
                s->dir_nodes[p->n_make_directories] = kv->node;
                p->make_directories[p->n_make_directories++] = dir;
        }
        if (r < 0)
                return FAIL(c, kv->node, "%s: %s has an unfinished quote or escape", kv->path,
                            spec_quote(c, kv->text));
        return 0;
}

/* CopyBlocks= (issue 14): the partition's bytes from a file in the store,
 * e.g. a partition an earlier repartImage wrote with split = true.  "auto"
 * (the running system's partition of this type) means nothing in a build. */
static int key_copy_blocks(ctx *c, part_state *s, const key_value *kv) {
        s->copy_blocks_node = kv->node;
        if (!*kv->text) {
                s->p->copy_blocks = NULL;
                return 0;
        }
        if (streq(kv->text, "auto"))
                return FAIL(c, kv->node,
                            "%s: \"auto\" copies the running system's partition of the same type, and a "
                            "build has no running system to copy from; give a file in the store, e.g. "
                            "\"${image}/image.usr.raw\" of an earlier repartImage with split = true",
                            kv->path);
        return copy_source(c, kv, kv->text, &s->p->copy_blocks);
}

/* ---- dm-verity (issue 14) ---- */

/* Verity= (systemd 252 and later): data and hash make a pair with the same
 * VerityMatchKey=; "signature" would need the signing key in the build. */
static int key_verity(ctx *c, part_state *s, const key_value *kv) {
        nri_verity v = nri_verity_from_string(kv->text);

        s->verity_node = kv->node;
        if (v >= 0) {
                s->p->verity = v;
                return 0;
        }
        if (streq(kv->text, "signature"))
                return FAIL(c, kv->node,
                            "%s: \"signature\" is not supported: systemd-repart signs the root hash with a "
                            "private key at build time, and a key given to a Nix build ends up readable in "
                            "the store; sign the roothash of repart-output.json outside the build instead",
                            kv->path);
        return FAIL(c, kv->node, "%s: %s is not a verity mode; use \"off\", \"data\" or \"hash\"", kv->path,
                    spec_quote(c, kv->text));
}

/* VerityMatchKey=: systemd takes any short string; a name as a file name
 * component keeps it printable in messages. */
static int key_verity_match_key(ctx *c, part_state *s, const key_value *kv) {
        s->match_key_node = kv->node;
        if (!*kv->text || strlen(kv->text) > 255 || strchr(kv->text, '/'))
                return FAIL(c, kv->node, "%s: %s is not a match key (1 to 255 bytes, no '/')", kv->path,
                            spec_quote(c, kv->text));
        s->p->verity_match_key = kv->text;
        return 0;
}

/* VerityDataBlockSizeBytes=, VerityHashBlockSizeBytes= (systemd 255):
 * parse_size(), a power of two from 512 to 4096. */
static int key_verity_block_size(ctx *c, part_state *s, const key_value *kv) {
        uint64_t v;

        s->verity_block_node[kv->arg] = kv->node;
        if (nri_parse_size(kv->text, 1024, &v) < 0 || v < NRI_VERITY_BLOCK_MIN || v > NRI_VERITY_BLOCK_MAX ||
            (v & (v - 1)))
                return FAIL(c, kv->node, "%s: %s is not a block size: a power of two from 512 to 4096",
                            kv->path, spec_quote(c, kv->text));
        if (kv->arg)
                s->p->verity_hash_block_size = v;
        else
                s->p->verity_data_block_size = v;
        return 0;
}

/* SplitName= with %U names a file after the partition UUID, which for a
 * pair's partition without UUID= is the root hash's. */
static bool has_uuid_specifier(const char *f) {
        for (; f && *f; f++)
                if (*f == '%' && f[1]) {
                        if (f[1] == 'U')
                                return true;
                        f++;
                }
        return false;
}

/* What systemd-repart's partition_read_definition() refuses for Verity=,
 * and the block sizes a hash partition gets. */
int spec_check_verity(ctx *c, part_state *s) {
        nri_partition *p = s->p;
        const char *mode = nri_verity_to_string(p->verity);

        if (p->verity != NRI_VERITY_OFF && !p->verity_match_key)
                return FAIL(c, s->verity_node,
                            "%s.VerityMatchKey: required with Verity=%s: it names the pair of data and hash "
                            "partitions",
                            s->cfg_path, mode);
        if (p->verity == NRI_VERITY_OFF && p->verity_match_key)
                return FAIL(c, s->match_key_node, "%s.VerityMatchKey: only with Verity=data or Verity=hash",
                            s->cfg_path);
        for (int i = 0; i < 2; i++)
                if (s->verity_block_node[i] && p->verity != NRI_VERITY_HASH)
                        return FAIL(c, s->verity_block_node[i],
                                    "%s.Verity%sBlockSizeBytes: only with Verity=hash, whose hash tree it "
                                    "shapes",
                                    s->cfg_path, i ? "Hash" : "Data");
        if (p->verity == NRI_VERITY_HASH && (s->format_node || p->copy_blocks || p->n_copy_files ||
                                             p->n_make_directories || p->n_contents || p->n_store_paths))
                return FAIL(c, s->verity_node,
                            "%s.Verity: a Verity=hash partition holds the hash tree of its data partition; "
                            "Format, CopyBlocks, CopyFiles, MakeDirectories, contents and storePaths cannot "
                            "fill it",
                            s->cfg_path);
        /* systemd-repart: CopyBlocks= gives all the bytes. */
        if (p->copy_blocks && (s->format_node || p->n_copy_files || p->n_make_directories || p->n_contents ||
                               p->n_store_paths))
                return FAIL(c, s->copy_blocks_node,
                            "%s.CopyBlocks: the partition's bytes are the file's; Format, CopyFiles, "
                            "MakeDirectories, contents and storePaths cannot be combined with it",
                            s->cfg_path);
        if (p->copy_blocks && p->minimize != NRI_MINIMIZE_OFF)
                return FAIL(c, s->minimize_node,
                            "%s.Minimize: a CopyBlocks= partition is as large as its file already",
                            s->cfg_path);
        if (p->verity == NRI_VERITY_HASH) {
                /* systemd: the file-system sector size, which is the image's
                 * when given (NixOS always gives it: sectorSize). */
                if (p->verity_data_block_size == NRI_SIZE_UNSET)
                        p->verity_data_block_size = c->spec->sector_size;
                if (p->verity_hash_block_size == NRI_SIZE_UNSET)
                        p->verity_hash_block_size = c->spec->sector_size;
        }
        p->uuid_from_root_hash = p->verity != NRI_VERITY_OFF && !s->uuid_set;
        if (p->uuid_from_root_hash && has_uuid_specifier(p->split_name))
                return FAIL(c, s->split_node ? s->split_node : s->verity_node,
                            "%s.SplitName: %%U names the file after the partition UUID, which for a "
                            "Verity=%s partition without UUID= is half of the root hash, known only once "
                            "built; set UUID or use another specifier",
                            s->cfg_path, mode);
        return 0;
}

/* Minimize= (systemd 253 and later; NixOS passes it): off, best, guess, or
 * a boolean meaning best/off. */
static int key_minimize(ctx *c, part_state *s, const key_value *kv) {
        nri_minimize m = nri_minimize_from_string(kv->text);
        int b;

        s->minimize_node = kv->node;
        if (m >= 0) {
                s->p->minimize = m;
                return 0;
        }
        b = nri_parse_boolean(kv->text);
        if (b < 0)
                return FAIL(c, kv->node,
                            "%s: %s is not a minimize mode; use \"off\", \"best\", \"guess\" or a boolean",
                            kv->path, spec_quote(c, kv->text));
        s->p->minimize = b ? NRI_MINIMIZE_BEST : NRI_MINIMIZE_OFF;
        return 0;
}

/* systemd: config_parse_gpt_flags(), safe_atou64(). */
static int key_flags(ctx *c, part_state *s, const key_value *kv) {
        int r = nri_parse_u64(kv->text, &s->p->flags);

        if (r == -ERANGE)
                return FAIL(c, kv->node, "%s: %s is out of range (64 bits)", kv->path,
                            spec_quote(c, kv->text));
        if (r < 0)
                return FAIL(c, kv->node,
                            "%s: cannot parse %s as flags (an unsigned 64-bit integer, 0x… for hexadecimal)",
                            kv->path, spec_quote(c, kv->text));
        return 0;
}

/* systemd: config_parse_tristate() for NoAuto=, ReadOnly=, GrowFileSystem=. */
static int key_tristate(ctx *c, part_state *s, const key_value *kv) {
        int b = nri_parse_boolean(kv->text);

        if (b < 0)
                return FAIL(c, kv->node,
                            "%s: cannot parse %s as a boolean (yes/no, true/false, on/off, 1/0)", kv->path,
                            spec_quote(c, kv->text));
        s->tri[kv->arg] = b;
        s->tri_node[kv->arg] = kv->node;
        return 0;
}

static int key_split_name(ctx *c, part_state *s, const key_value *kv) {
        const char *why;

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
        why = nri_why_not_split_name(c->a, kv->text);
        if (why)
                return FAIL(c, kv->node, "%s: %s", kv->path, why);
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
    {"Verity", key_verity, 0, false},
    {"VerityMatchKey", key_verity_match_key, 0, false},
    {"VerityDataBlockSizeBytes", key_verity_block_size, 0, false},
    {"VerityHashBlockSizeBytes", key_verity_block_size, 1, false},
    {"CopyBlocks", key_copy_blocks, 0, false},
};

/* The [Partition] settings of systemd-repart (252 to 257) that this builtin
 * does not implement. */
static const char *const repart_keys_later[] = {
    "AddValidateFS",    "Compression",
    "CompressionLevel", "DefaultSubvolume",
    "Encrypt",          "EncryptedVolume",
    "ExcludeFiles",     "ExcludeFilesTarget",
    "FactoryReset",     "MakeSymlinks",
    "MountPoint",       "Subvolumes",
    "SupplementFor",    NULL,
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
        hint = spec_nearest(at->name, repart_key_names(c));
        if (hint)
                return FAIL(c, at->value, "%s: unknown systemd-repart setting; did you mean %s?", path,
                            hint);
        return FAIL(c, at->value, "%s: unknown systemd-repart setting; repartImage implements: %s", path,
                    spec_join_names(c, implemented_key_names(c)));
}

int spec_parse_repart_config(ctx *c, part_state *s) {
        for (size_t i = 0; i < s->cfg->attrs.n; i++) {
                const nri_attr *at = &s->cfg->attrs.items[i];
                const char *path = spec_path_join(c, s->cfg_path, at->name);
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

/* ---- repartConfig: checks of partition_read_definition() ---------------- */

static const char *size_text(ctx *c, uint64_t v) {
        return nri_printf(c->a, "%" PRIu64, v);
}

int spec_check_ranges(ctx *c, part_state *s) {
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

/* Format= as systemd-repart 252 implies it, what it holds, and Minimize=
 * as systemd 253+ checks it. */
int spec_check_format(ctx *c, part_state *s) {
        nri_partition *p = s->p;
        bool content = p->n_copy_files || p->n_make_directories || p->n_contents || p->n_store_paths;
        const nri_fs_type *fs;

        /* systemd 252: a partition that gets files and has no Format= is
         * made ext4.  NixOS turns contents and storePaths into CopyFiles=,
         * so they count too. */
        if (p->format == NRI_FORMAT_NONE && content)
                p->format = NRI_FORMAT_DEFAULT;
        fs = nri_fs_type_of(p->format);
        if (fs && !fs->holds_files && content)
                return FAIL(c, s->format_node,
                            "%s.Format: %s holds no files; contents, storePaths, CopyFiles and "
                            "MakeDirectories cannot fill it",
                            s->cfg_path, fs->name);
        /* A Verity=hash partition minimizes to its hash tree. */
        if (p->verity == NRI_VERITY_HASH)
                return 0;
        if (p->minimize != NRI_MINIMIZE_OFF && !fs)
                return FAIL(c, s->minimize_node,
                            "%s.Minimize: needs a file system to minimize; set Format too", s->cfg_path);
        if (p->minimize == NRI_MINIMIZE_BEST && !fs->read_only && !fs->best_size)
                return FAIL(c, s->minimize_node,
                            "%s.Minimize: \"best\" only works with read-only file systems (squashfs, erofs) "
                            "and ext4, and Format=%s is neither; use \"guess\"",
                            s->cfg_path, fs->name);
        return 0;
}

static bool endswith(const char *s, const char *suffix) {
        size_t n = strlen(s), m = strlen(suffix);

        return n >= m && streq(s + n - m, suffix);
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

int spec_merge_flags(ctx *c, part_state *s) {
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
