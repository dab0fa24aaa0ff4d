/* spec.h: the normalised image specification.
 *
 * The evaluator half builds it from the argument of builtins.repartImage
 * (plugin/eval/spec-args.h), reports every mistake with the attribute's
 * path and position, and serialises it into the derivation (spec-json.h);
 * the builder half reads it back.  Everything systemd-repart would decide from the
 * definitions alone — type GUIDs, UUIDs, labels, flags, rounded sizes — is
 * decided here, at evaluation time, so a configuration can read it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "error.h"
#include "file-systems.h"
#include "labels.h"
#include "layout.h"
#include "string-table.h"
#include "types.h"
#include "uuid.h"

#define NRI_DEFAULT_SEED "0867da16-f251-457d-a9e8-c31f9a3c220b"
/* Sizes are carried as JSON numbers: refuse what a double cannot hold. */
#define NRI_SIZE_LIMIT (UINT64_C(1) << 53)
#define NRI_SIZE_UNSET UINT64_MAX
#define NRI_WEIGHT_MAX UINT32_C(1000000)

typedef enum nri_minimize {
        NRI_MINIMIZE_OFF,
        NRI_MINIMIZE_BEST,
        NRI_MINIMIZE_GUESS,
        _NRI_MINIMIZE_MAX,
        _NRI_MINIMIZE_INVALID = -EINVAL,
} nri_minimize;

/* Verity= (dm-verity): off, the data partition of a pair, or its hash
 * partition.  "signature" needs a private key at build time and is refused
 * at evaluation. */
typedef enum nri_verity {
        NRI_VERITY_OFF,
        NRI_VERITY_DATA,
        NRI_VERITY_HASH,
        _NRI_VERITY_MAX,
        _NRI_VERITY_INVALID = -EINVAL,
} nri_verity;

/* The block sizes a hash tree may use (VerityDataBlockSizeBytes=,
 * VerityHashBlockSizeBytes=): powers of two in this range. */
#define NRI_VERITY_BLOCK_MIN 512
#define NRI_VERITY_BLOCK_MAX 4096

typedef enum nri_compression {
        NRI_COMPRESSION_NONE,
        NRI_COMPRESSION_ZSTD,
        NRI_COMPRESSION_XZ,
        _NRI_COMPRESSION_MAX,
        _NRI_COMPRESSION_INVALID = -EINVAL,
} nri_compression;

NRI_DECLARE_STRING_TABLE_LOOKUP(nri_minimize, nri_minimize);       /* "off", "best", "guess" */
NRI_DECLARE_STRING_TABLE_LOOKUP(nri_verity, nri_verity);           /* "off", "data", "hash" */
NRI_DECLARE_STRING_TABLE_LOOKUP(nri_compression, nri_compression); /* "zstd", "xz"; NONE: NULL */
/* The levels `compression.level` takes for an algorithm (zstd 1-19, xz
 * 0-9) and its default (NixOS's: 3); -EINVAL for NRI_COMPRESSION_NONE.
 * Any of the pointers may be NULL. */
int nri_compression_levels(nri_compression alg, int *ret_min, int *ret_max, int *ret_default);

/* A file or tree copied into the file system: `contents` and CopyFiles=. */
typedef struct nri_copy {
        const char *source; /* a path in the Nix store */
        const char *target; /* absolute, normalised, in the file system */
} nri_copy;

typedef struct nri_partition {
        const char *id;  /* its attribute name under `partitions` */
        unsigned partno; /* 0-based, in name order */

        nri_part_type type;
        const char *label;
        nri_uuid uuid;
        nri_uuid fs_uuid;

        int32_t priority;
        uint32_t weight, padding_weight;
        /* Rounded as systemd-repart rounds them; NRI_SIZE_UNSET when unset. */
        uint64_t size_min, size_max, padding_min, padding_max;

        nri_format format;
        nri_minimize minimize;
        bool read_only, no_auto, grow_fs;
        uint64_t flags;         /* the GPT attribute bits as written */
        const char *split_name; /* SplitName=, unexpanded; NULL for "-" */

        nri_copy *contents;
        size_t n_contents;
        nri_copy *copy_files;
        size_t n_copy_files;
        const char **make_directories;
        size_t n_make_directories;
        const char **store_paths;
        size_t n_store_paths;
        /* Where store paths land in the file system: "/nix/store" by
         * default, "/" with stripNixStorePrefix. */
        const char *nix_store_prefix;
        /* Write the closure's registration (nix-store --load-db's format)
         * at /nix-path-registration of the file system. */
        bool nix_path_registration;
        /* Identical regular files of the closure (same size, permission
         * bits and SHA-256) are one inode with several names.  ext4 only. */
        bool deduplicate_store;

        /* dm-verity (issue 14).  A data and a hash partition with the same
         * match key are a pair; the hash partition holds the data
         * partition's hash tree with these block sizes (NRI_SIZE_UNSET for
         * the others). */
        nri_verity verity;
        const char *verity_match_key; /* NULL when verity is off */
        uint64_t verity_data_block_size, verity_hash_block_size;
        /* No UUID= on a partition of a pair: its GPT UUID is half of the root
         * hash, known only once built (uuid is then the seed-derived one, which
         * fs_uuid derives from). */
        bool uuid_from_root_hash;
        /* CopyBlocks= (issue 14): a file in the store whose bytes are the
         * partition's, or NULL. */
        const char *copy_blocks;
} nri_partition;

typedef struct nri_spec {
        const char *name;
        const char *version; /* NULL when not given */
        bool seed_random;    /* seed = null: drawn at evaluation time */
        nri_uuid seed;
        nri_arch arch;
        uint32_t sector_size;
        uint64_t image_size; /* NRI_SIZE_UNSET: "auto" */
        bool split;
        nri_compression compression;
        int compression_level;
        const char *store_dir;
        nri_uuid disk_uuid;
        nri_partition *partitions; /* in name order */
        size_t n_partitions;
} nri_spec;

/* The layout's view of a partition: its sizes, paddings, weights and
 * priority; content_min (what its content needs) is the caller's to set. */
static inline nri_layout_part nri_spec_layout_part(const nri_partition *p) {
        return (nri_layout_part){
            .size_min = p->size_min,
            .size_max = p->size_max,
            .padding_min = p->padding_min,
            .padding_max = p->padding_max,
            .weight = p->weight,
            .padding_weight = p->padding_weight,
            .priority = p->priority,
            /* Minimize= (253 on) sizes a read-only file system or a hash tree
             * exactly; without it, 252's 10 MiB default stays. */
            .no_default_min = (p->minimize != NRI_MINIMIZE_OFF &&
                               ((nri_fs_type_of(p->format) && nri_fs_type_of(p->format)->read_only) ||
                                p->verity == NRI_VERITY_HASH)) ||
                              (p->copy_blocks && p->verity != NRI_VERITY_OFF),
        };
}

/* The file name of the image: "<name>.raw" or "<name>_<version>.raw". */
char *nri_spec_image_file_name(nri_arena *a, const nri_spec *spec);

/* The partition's SplitName= with its specifiers expanded as
 * systemd-repart's split_name_printf() does: %t the type's name (its GUID
 * for a type without one), %T and %U the type and partition UUIDs as 32
 * hexadecimal digits, %n `partno` — the partition's number in the
 * partition table (0 for the first), %% a '%'.  NULL for a partition not
 * split (SplitName=-). */
const char *nri_split_name_expand(nri_arena *a, const nri_partition *p, unsigned partno);

/* The split file names of an image, as systemd-repart 252 resolves them
 * (split_name_resolve(), context_split()): the partitions `dropped` by
 * Priority= (NULL: none) are not in the table, so they have no name and no
 * number, and %n counts only the others.  ret_names[i] (room for
 * spec->n_partitions) is NULL for a partition not split or dropped.
 *
 * 0; -ENAMETOOLONG for a name longer than 255 bytes (partition
 * *ret_partition), or -EEXIST for two partitions with the same name
 * (*ret_partition and the earlier *ret_other), which systemd-repart
 * refuses.  The evaluator calls this with the partitions its layout drops,
 * the builder again with those its layout (with the content) drops. */
int nri_split_names(nri_arena *a, const nri_spec *spec, const bool *dropped, const char **ret_names,
                    size_t *ret_partition, size_t *ret_other);
