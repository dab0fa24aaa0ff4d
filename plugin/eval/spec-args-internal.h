/* spec-args-internal.h: the state the files that read the argument
 * share — of nri_spec_from_args() as a whole (ctx) and of the partition
 * being read (part_state).  Each file has its own header for what it
 * offers; they include each other only downwards:
 *
 *   spec-args.c           the top level, the partitions, their UUIDs and labels
 *     repart-config.c     a partition's repartConfig
 *     partition-contents.c  a partition's contents, storePaths and store prefix
 *       validate.c        the checks and message helpers all of them use */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nix-repart-image/macro.h"
#include "nix-repart-image/spec-rules.h"
#include "nix-repart-image/spec.h"
#include "spec-args.h"

typedef struct ctx {
        nri_arena *a;
        nri_error *err;
        const nri_host *host;
        const char *store_dir;
        nri_spec *spec;
} ctx;

#define FAIL(c, where, ...) nri_fail((c)->a, (c)->err, (where), __VA_ARGS__)

/* ---- a partition while it is read --------------------------------------- */

enum { TRI_READ_ONLY, TRI_NO_AUTO, TRI_GROWFS, _TRI_MAX };
enum { SZ_MIN, SZ_MAX, PAD_MIN, PAD_MAX, _SZ_MAX };

typedef struct part_state {
        nri_partition *p;
        const nri_node *node; /* partitions.<id> */
        const char *path;     /* partitions.<id> */
        const char *cfg_path; /* partitions.<id>.repartConfig */
        const nri_node *cfg;
        const nri_node *type_node, *uuid_node, *label_node, *format_node, *minimize_node, *split_node;
        const nri_node *size_node[_SZ_MAX];
        const nri_node *tri_node[_TRI_MAX];
        int tri[_TRI_MAX]; /* -1: not set */
        bool uuid_set, label_set;
        unsigned label_k; /* default label: 1 for "<type>", k for "<type>-k" */
        size_t cap_contents, cap_copy, cap_dirs, cap_dir_nodes, cap_content_nodes, cap_copy_nodes;
        const nri_node **content_nodes; /* where each contents entry was written */
        const nri_node **copy_nodes;    /* where each CopyFiles= entry was written */
        const nri_node **dir_nodes;     /* where each MakeDirectories= entry was written */
        const nri_node **store_nodes;   /* where each storePaths element was written */
        const nri_node *prefix_node;    /* nixStorePrefix, or NULL */
        /* Verity=, VerityMatchKey=, VerityDataBlockSizeBytes=,
         * VerityHashBlockSizeBytes= (issue 14) */
        const nri_node *verity_node, *match_key_node, *verity_block_node[2];
        const nri_node *copy_blocks_node; /* CopyBlocks= */
} part_state;
