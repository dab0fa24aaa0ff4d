/* build.h: the builder half — from the derivation's structured attributes
 * to an image in $out.
 *
 * nri_build() is the whole builder: it reads the spec (spec-json.h) and each
 * partition's closure (exportReferencesGraph), plans every file system
 * (plan.h), lays the partitions out (layout.h), writes the file systems
 * (fs.h: each format's writer) and the GPT (gpt.h) into one image file, then
 * repart-output.json (output-json.h) and the split files.  The image is
 * written under a temporary name and renamed only when complete, so a failed
 * build leaves no image that looks finished. */
#pragma once

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "nix-repart-image/layout.h"
#include "mformat.h" /* nri_mtools */
#include "nix-repart-image/spec.h"

typedef struct nri_build_options {
        const cJSON *attrs; /* the whole .attrs.json */
        const char *out;    /* the output directory (created if missing) */
        /* `out` came from .attrs.json or $out, not from the command line:
         * it must be a store path (or a directory outside the store). */
        bool out_from_input;
        /* Every timestamp in the file systems (SOURCE_DATE_EPOCH; Nix's store
         * has 1). */
        long long mtime;
        /* Progress lines on stderr. */
        bool verbose;
        /* How mformat runs (vfat.h); NULL: from PATH. */
        const nri_mtools *mtools;
} nri_build_options;

/* 0, or a negative errno after a message on stderr that names the
 * partition and what failed. */
int nri_build(const nri_build_options *o);
