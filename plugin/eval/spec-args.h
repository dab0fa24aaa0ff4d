/* spec-args.h: the evaluator's way to a spec — from the argument of
 * builtins.repartImage, as the C++ shim (primop.cc) hands it over in the
 * value tree (node.h), to the normalised spec (nix-repart-image/spec.h).
 * Only the evaluator half sees this: the builder reads its spec from JSON
 * (nix-repart-image/spec-json.h).
 *
 * The rules are those of the NixOS module image.repart for the attributes
 * around repartConfig, and those of systemd-repart 252 for what
 * repartConfig means; every mistake is an error naming the attribute's path
 * and pointing at its node. */
#pragma once

#include <stdbool.h>

#include "nix-repart-image/arena.h"
#include "nix-repart-image/error.h"
#include "nix-repart-image/spec.h"
#include "node.h"

/* What the evaluator offers the core. */
typedef struct nri_host {
        const char *store_dir; /* e.g. "/nix/store" */
        const char *system;    /* e.g. "x86_64-linux", for the default architecture */
        void *ctx;
        /* Copies the path literal in `node` into the store (as "${./x}"
         * would) and returns the store path, or fails with *err set. */
        int (*import_path)(void *ctx, const nri_node *node, const char **ret_store_path, nri_error *err);
        /* The string in `node` names `store_path` (a store path, or a path
         * inside one), which goes into the derivation: keep the string's
         * context for it. */
        void (*use_context)(void *ctx, const nri_node *node, const char *store_path);
        /* Coerces the set in `node` (NRI_COERCIBLE) to a string as "${set}"
         * does — its __toString, else its outPath, again while the result
         * is a set; a path is added to the store — into *ret, an NRI_STRING
         * node with the string's context, at node's position.  Fails with
         * *err set to a message without the attribute path. */
        int (*coerce)(void *ctx, const nri_node *node, const nri_node **ret, nri_error *err);
        /* Read-only evaluation (nix-instantiate --eval, nix eval --read-only,
         * nix-env -qa): no .drv file is written, this derivation's neither,
         * so nothing evaluated here can be built. */
        bool read_only;
} nri_host;

/* Validates and normalises the argument of builtins.repartImage.  0, or a
 * negative errno with *err naming the attribute. */
int nri_spec_from_args(nri_arena *a, const nri_node *args, const nri_host *host, nri_spec **ret,
                       nri_error *err);
