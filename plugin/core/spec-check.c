/* spec-check.c: what every spec the evaluator makes holds, checked again
 * on the builder's side.
 *
 * The builder does not trust its input: a builder run by hand, or on an
 * .attrs.json written by someone else, must refuse what the evaluator would
 * refuse rather than write an image outside $out, copy a file from outside
 * the store or silently drop what it cannot place.  The rules are the
 * evaluator's own where it has a function for them (names, labels, split
 * names, store paths, path normalisation: validate.c); the rest are the
 * invariants of a normalised spec (spec.h) that nri_spec_from_args()
 * establishes: defaults applied, sizes rounded and ordered, Format= implied
 * by content, UUIDs derived, flags merged.  tests/unit/test-spec.c checks
 * that every spec the evaluator makes passes, and that each rule refuses. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "nix-repart-image/macro.h"
#include "nix-repart-image/spec-json.h"
#include "nix-repart-image/spec-rules.h"

typedef struct checker {
        nri_arena *a;
        const char *store_dir;
        nri_error *err;
} checker;

static int bad(checker *k, const char *where, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(checker *k, const char *where, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void)nri_fail(k->a, k->err, NULL, "repartSpec.%s: %s", where, nri_vprintf(k->a, fmt, ap));
        va_end(ap);
        return -EINVAL;
}

/* An absolute path in its normal form (nri_normalise_path()). */
static int check_path(checker *k, const char *where, const char *s) {
        const char *norm = NULL, *why = nri_normalise_path(k->a, s, &norm);

        if (why)
                return bad(k, where, "%s %s", nri_quote(k->a, s), why);
        if (!streq(norm, s))
                return bad(k, where, "%s is not in normal form (%s)", nri_quote(k->a, s),
                           nri_quote(k->a, norm));
        return 0;
}

/* A normalised path in the store: a store path or inside one. */
static int check_store_path(checker *k, const char *where, const char *s, bool exact) {
        size_t len;
        int r = check_path(k, where, s);

        if (r < 0)
                return r;
        len = nri_store_path_length(k->store_dir, s);
        if (!len)
                return bad(k, where, "%s is not in the Nix store (%s)", nri_quote(k->a, s), k->store_dir);
        if (exact && s[len])
                return bad(k, where, "%s is inside the store path %s, not one itself", nri_quote(k->a, s),
                           nri_quote(k->a, nri_strndup(k->a, s, len)));
        return 0;
}

static int check_copies(checker *k, const char *where, const nri_copy *items, size_t n,
                        bool unique_targets) {
        for (size_t i = 0; i < n; i++) {
                const char *w = nri_printf(k->a, "%s[%zu]", where, i);
                int r;

                r = check_store_path(k, nri_printf(k->a, "%s.source", w), items[i].source, false);
                if (r >= 0)
                        r = check_path(k, nri_printf(k->a, "%s.target", w), items[i].target);
                if (r < 0)
                        return r;
                for (size_t j = 0; unique_targets && j < i; j++)
                        if (streq(items[j].target, items[i].target))
                                return bad(k, nri_printf(k->a, "%s.target", w),
                                           "%s is the same as that of another entry",
                                           nri_quote(k->a, items[i].target));
        }
        return 0;
}

static int check_sizes(checker *k, const char *w, const nri_partition *p) {
        static const char *const names[] = {"sizeMinBytes", "sizeMaxBytes", "paddingMinBytes",
                                            "paddingMaxBytes"};
        const uint64_t v[] = {p->size_min, p->size_max, p->padding_min, p->padding_max};

        /* SizeMinBytes= and PaddingMinBytes= are rounded down to 4096,
         * the maximums up (key_size()). */
        for (size_t i = 0; i < ELEMENTSOF(v); i++)
                if (v[i] != NRI_SIZE_UNSET && (v[i] % NRI_SIZE_GRAIN || v[i] >= NRI_SIZE_LIMIT))
                        return bad(k, nri_printf(k->a, "%s%s", w, names[i]),
                                   "%" PRIu64 " is not a multiple of %d below 2^53", v[i], NRI_SIZE_GRAIN);
        if (p->size_min != NRI_SIZE_UNSET && p->size_max != NRI_SIZE_UNSET && p->size_min > p->size_max)
                return bad(k, nri_printf(k->a, "%ssizeMinBytes", w),
                           "%" PRIu64 " is larger than sizeMaxBytes (%" PRIu64 ")", p->size_min,
                           p->size_max);
        if (p->padding_min != NRI_SIZE_UNSET && p->padding_max != NRI_SIZE_UNSET &&
            p->padding_min > p->padding_max)
                return bad(k, nri_printf(k->a, "%spaddingMinBytes", w),
                           "%" PRIu64 " is larger than paddingMaxBytes (%" PRIu64 ")", p->padding_min,
                           p->padding_max);
        return 0;
}

/* Format= as the evaluator leaves it: implied by content, holding it, and
 * what Minimize= needs. */
static int check_format(checker *k, const char *w, const nri_partition *p) {
        const nri_fs_type *fs = nri_fs_type_of(p->format);
        bool content = p->n_contents || p->n_copy_files || p->n_make_directories || p->n_store_paths;

        if (p->nix_path_registration && p->n_store_paths == 0)
                return bad(k, nri_printf(k->a, "%snixPathRegistration", w),
                           "true, but the partition has no storePaths to register");

        if (p->deduplicate_store && p->format != NRI_FORMAT_EXT4)
                return bad(k, nri_printf(k->a, "%sdeduplicateStore", w),
                           "true, but the partition's format is %s: only ext4 holds deduplicated files",
                           p->format == NRI_FORMAT_NONE ? "null" : nri_format_to_string(p->format));

        if (!fs && content)
                return bad(
                    k, nri_printf(k->a, "%sformat", w),
                    "null, but the partition has content to copy (contents, copyFiles, makeDirectories "
                    "or storePaths); the evaluator makes such a partition %s",
                    nri_format_to_string(NRI_FORMAT_DEFAULT));
        if (fs && !fs->holds_files && content)
                return bad(k, nri_printf(k->a, "%sformat", w),
                           "%s holds no files, but the partition has content to copy", fs->name);
        if (p->verity == NRI_VERITY_HASH)
                return 0; /* it minimizes to its hash tree */
        if (p->minimize != NRI_MINIMIZE_OFF && !fs)
                return bad(k, nri_printf(k->a, "%sminimize", w), "needs a file system to minimize");
        if (p->minimize == NRI_MINIMIZE_BEST && !fs->read_only && !fs->best_size)
                return bad(k, nri_printf(k->a, "%sminimize", w),
                           "\"best\" needs a read-only file system or ext4, which %s is not", fs->name);
        return 0;
}

static bool is_block_size(uint64_t v) {
        return v >= NRI_VERITY_BLOCK_MIN && v <= NRI_VERITY_BLOCK_MAX && !(v & (v - 1));
}

/* Verity= as the evaluator leaves it: a match key exactly with a mode, the
 * block sizes exactly on a hash partition, nothing to copy into one, and a
 * sibling of the other kind (the builder pairs them by the key). */
static int check_verity(checker *k, const char *w, const nri_spec *s, const nri_partition *p) {
        bool hash = p->verity == NRI_VERITY_HASH;
        size_t siblings = 0, same = 0;

        if ((p->verity == NRI_VERITY_OFF) != !p->verity_match_key)
                return bad(k, nri_printf(k->a, "%sverityMatchKey", w), "set exactly when verity is not off");
        if (hash != (p->verity_data_block_size != NRI_SIZE_UNSET) ||
            (hash && !is_block_size(p->verity_data_block_size)))
                return bad(k, nri_printf(k->a, "%sverityDataBlockSize", w),
                           "a power of two from 512 to 4096 exactly when verity is \"hash\"");
        if (hash != (p->verity_hash_block_size != NRI_SIZE_UNSET) ||
            (hash && !is_block_size(p->verity_hash_block_size)))
                return bad(k, nri_printf(k->a, "%sverityHashBlockSize", w),
                           "a power of two from 512 to 4096 exactly when verity is \"hash\"");
        if (p->uuid_from_root_hash && p->verity == NRI_VERITY_OFF)
                return bad(k, nri_printf(k->a, "%suuidFromRootHash", w), "true, but verity is off");
        if (p->copy_blocks && (p->format != NRI_FORMAT_NONE || p->n_contents || p->n_copy_files ||
                               p->n_make_directories || p->n_store_paths || hash))
                return bad(k, nri_printf(k->a, "%scopyBlocks", w),
                           "set, but the partition has a format, content or a hash tree to write");
        if (hash && (p->format != NRI_FORMAT_NONE || p->n_contents || p->n_copy_files ||
                     p->n_make_directories || p->n_store_paths))
                return bad(k, nri_printf(k->a, "%sverity", w),
                           "\"hash\", but the partition has a format or content");
        if (p->verity == NRI_VERITY_OFF)
                return 0;
        for (size_t i = 0; i < s->n_partitions; i++) {
                const nri_partition *q = &s->partitions[i];

                if (q == p || !q->verity_match_key || !streq(q->verity_match_key, p->verity_match_key))
                        continue;
                if (q->verity == p->verity)
                        same++;
                else if (q->priority == p->priority)
                        siblings++;
        }
        if (same || siblings != 1)
                return bad(k, nri_printf(k->a, "%sverityMatchKey", w),
                           "%s names %zu partitions of the other kind with its priority and %zu more of its "
                           "own; a pair is one of each",
                           nri_quote(k->a, p->verity_match_key), siblings, same);
        return 0;
}

static int check_flags(checker *k, const char *w, const nri_partition *p) {
        if (p->read_only != !!(p->flags & NRI_GPT_FLAG_READ_ONLY) ||
            p->no_auto != !!(p->flags & NRI_GPT_FLAG_NO_AUTO) ||
            p->grow_fs != !!(p->flags & NRI_GPT_FLAG_GROWFS))
                return bad(k, nri_printf(k->a, "%sflags", w),
                           "0x%" PRIx64 " disagrees with readOnly, noAuto and growFileSystem", p->flags);
        return 0;
}

static int check_partition(checker *k, const nri_spec *s, size_t i) {
        const nri_partition *p = &s->partitions[i];
        const char *w = nri_printf(k->a, "partitions[%zu].", i), *why;
        const nri_fs_type *fst;
        nri_uuid fs;
        int r;

        why = nri_why_not_partition_name(k->a, p->id);
        if (why)
                return bad(k, nri_printf(k->a, "%sid", w), "%s", why);
        why = nri_why_not_label(k->a, p->label);
        if (why)
                return bad(k, nri_printf(k->a, "%slabel", w), "%s", why);
        fst = nri_fs_type_of(p->format);
        why = fst && fst->label_problem ? fst->label_problem(k->a, p->label) : NULL;
        if (why)
                return bad(k, nri_printf(k->a, "%slabel", w), "%s %s", nri_quote(k->a, p->label), why);
        nri_uuid_file_system(&p->uuid, &fs);
        if (!nri_uuid_equal(&fs, &p->fs_uuid))
                return bad(k, nri_printf(k->a, "%sfsUuid", w),
                           "is not the one derived from the partition's uuid");
        for (size_t j = 0; j < i; j++) {
                const nri_partition *q = &s->partitions[j];

                if (streq(q->id, p->id))
                        return bad(k, nri_printf(k->a, "%sid", w), "%s is also the id of partitions[%zu]",
                                   nri_quote(k->a, p->id), j);
                if (streq(q->label, p->label))
                        return bad(k, nri_printf(k->a, "%slabel", w),
                                   "%s is also the label of partitions[%zu]", nri_quote(k->a, p->label), j);
                if (nri_uuid_equal(&q->uuid, &p->uuid))
                        return bad(k, nri_printf(k->a, "%suuid", w), "is also the uuid of partitions[%zu]",
                                   j);
        }
        /* Whether the split names of the partitions in the table differ
         * depends on which the layout drops: the builder checks them once
         * it has laid out (nri_split_names()). */
        why = p->split_name ? nri_why_not_split_name(k->a, p->split_name) : NULL;
        if (why)
                return bad(k, nri_printf(k->a, "%ssplitName", w), "%s", why);
        r = check_sizes(k, w, p);
        if (r >= 0)
                r = check_format(k, w, p);
        if (r >= 0)
                r = check_flags(k, w, p);
        if (r >= 0)
                r = check_copies(k, nri_printf(k->a, "%scontents", w), p->contents, p->n_contents, true);
        if (r >= 0)
                r = check_copies(k, nri_printf(k->a, "%scopyFiles", w), p->copy_files, p->n_copy_files,
                                 false);
        for (size_t j = 0; r >= 0 && j < p->n_make_directories; j++)
                r = check_path(k, nri_printf(k->a, "%smakeDirectories[%zu]", w, j), p->make_directories[j]);
        for (size_t j = 0; r >= 0 && j < p->n_store_paths; j++) {
                const char *where = nri_printf(k->a, "%sstorePaths[%zu]", w, j);

                r = check_store_path(k, where, p->store_paths[j], true);
                for (size_t m = 0; r >= 0 && m < j; m++)
                        if (streq(p->store_paths[m], p->store_paths[j]))
                                r = bad(k, where, "%s is listed twice", nri_quote(k->a, p->store_paths[j]));
        }
        if (r >= 0)
                r = check_verity(k, w, s, p);
        if (r >= 0 && p->copy_blocks)
                r = check_store_path(k, nri_printf(k->a, "%scopyBlocks", w), p->copy_blocks, false);
        if (r >= 0)
                r = check_path(k, nri_printf(k->a, "%snixStorePrefix", w), p->nix_store_prefix);
        return r;
}

static int check_top(checker *k, const nri_spec *s) {
        const char *why;
        int min, max;

        why = nri_why_not_file_name_part(k->a, s->name);
        if (why)
                return bad(k, "name", "%s", why);
        why = s->version ? nri_why_not_file_name_part(k->a, s->version) : NULL;
        if (why)
                return bad(k, "version", "%s", why);
        if (streq(s->store_dir, "/") || check_path(k, "storeDir", s->store_dir) < 0)
                return bad(k, "storeDir", "%s is not an absolute directory in normal form",
                           nri_quote(k->a, s->store_dir));
        if (s->image_size != NRI_SIZE_UNSET && (s->image_size == 0 || s->image_size % NRI_SIZE_GRAIN))
                return bad(k, "imageSize", "%" PRIu64 " is not a positive multiple of %d", s->image_size,
                           NRI_SIZE_GRAIN);
        if (s->compression != NRI_COMPRESSION_NONE &&
            (nri_compression_levels(s->compression, &min, &max, NULL) < 0 || s->compression_level < min ||
             s->compression_level > max))
                return bad(k, "compression.level", "%d is out of range for %s", s->compression_level,
                           nri_compression_to_string(s->compression));
        if (!s->seed_random) {
                nri_uuid disk;

                if (nri_uuid_is_null(&s->seed))
                        return bad(k, "seed", "the all-zero UUID cannot seed anything");
                nri_uuid_disk(&s->seed, &disk);
                if (!nri_uuid_equal(&disk, &s->disk_uuid))
                        return bad(k, "diskUuid", "is not the one derived from the seed");
        }
        if (s->n_partitions > NRI_GPT_ENTRIES)
                return bad(k, "partitions", "%zu partitions; a GPT holds at most %d", s->n_partitions,
                           NRI_GPT_ENTRIES);
        return 0;
}

int nri_spec_check(nri_arena *a, const nri_spec *spec, nri_error *err) {
        checker k = {.a = a, .store_dir = spec->store_dir, .err = err};
        int r = check_top(&k, spec);

        for (size_t i = 0; r >= 0 && i < spec->n_partitions; i++)
                r = check_partition(&k, spec, i);
        return r;
}
