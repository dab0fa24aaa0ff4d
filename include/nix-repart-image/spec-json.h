/* spec-json.h: the contract between the two halves.
 *
 * The derivation that builtins.repartImage returns has structured attributes
 * (`__structuredAttrs = true`); the builder reads them from `.attrs.json` in
 * its build directory.  nri_spec_derivation_json() returns the attribute set
 * given to `derivation`:
 *
 *   name, system                 the derivation's own; name is
 *                                "<name>" or "<name>-<version>"
 *   builder, args                with a bundle (README, "How the builder
 *                                reaches the sandbox"): builder =
 *                                <bundle>/lib/ld.so, args = [ "--library-path"
 *                                <bundle>/lib <bundle>/bin/nix-repart-image-builder ];
 *                                with a host program: builder = it, no args
 *   repartBundle                 <bundle>, with a bundle: where the builder
 *                                finds mtools and their libraries
 *   __structuredAttrs = true
 *   exportReferencesGraph        { "closure-<partno>": [store paths] } for
 *                                each partition with storePaths
 *   repartSpec                   the spec below
 *
 * repartSpec, version 2 (NRI_SPEC_VERSION; 2 added nixPathRegistration, deduplicateStore
 * and the dm-verity fields).  Sizes are bytes as JSON
 * integers below 2^53; a size that is not set is null; UUIDs are lower-case
 * 8-4-4-4-12 text:
 *
 *   { "specVersion": 2,
 *     "name": "image", "version": null | "1.0",
 *     "imageFile": "image.raw",            name[_version].raw
 *     "seed": "<uuid>" | null,             null: drawn at random at evaluation
 *     "architecture": "x86-64" | "arm64",
 *     "sectorSize": 512,
 *     "imageSize": null | bytes,           null: "auto"
 *     "split": false,
 *     "compression": null | { "algorithm": "zstd" | "xz", "level": n },
 *     "storeDir": "/nix/store",
 *     "diskUuid": "<uuid>",
 *     "partitions": [                      index = partno; in the byte order
 *                                          of "<id>.conf", as systemd-repart
 *                                          reads definition files ("a-b"
 *                                          before "a")
 *       { "id": "root",                    the attribute name
 *         "partno": 0,
 *         "type": "root-x86-64",           canonical name, or the GUID
 *         "typeUuid": "<uuid>",
 *         "label": "nixos",
 *         "uuid": "<uuid>",
 *         "fsUuid": "<uuid>",              the file system's (the one it
 *                                          would have, without Format=)
 *         "vfatVolumeId": "1234abcd",      only with Format=vfat
 *         "priority": 0, "weight": 1000, "paddingWeight": 0,
 *         "sizeMinBytes": n|null, "sizeMaxBytes": n|null,
 *         "paddingMinBytes": n|null, "paddingMaxBytes": n|null,
 *         "format": "<name>" | null,       a row's name in file-systems.h;
 *                                          ext4 also when the partition gets
 *                                          files and has no Format= (as in
 *                                          systemd-repart 252)
 *         "minimize": "off" | "best" | "guess",
 *         "readOnly": b, "noAuto": b, "growFileSystem": b,
 *         "flags": "0x1000000000000000",   GPT attribute bits, hexadecimal
 *                                          without leading zeros ("0x0"):
 *                                          Flags= with ReadOnly=, NoAuto=,
 *                                          GrowFileSystem= merged
 *         "splitName": "%t" | null,        null: not split; unexpanded: the
 *                                          builder expands %t (type), %T
 *                                          (typeUuid), %U (uuid), %n (the
 *                                          number in the partition table,
 *                                          which partitions its layout drops
 *                                          are not in: nri_split_names())
 *                                          and %%, and refuses two equal
 *                                          names when split is true
 *         "contents": [ { "source": "/nix/store/…", "target": "/EFI/…" } ],
 *         "copyFiles": [ { "source": "/nix/store/…", "target": "/usr" } ],
 *         "makeDirectories": [ "/var", … ],
 *         "storePaths": [ "/nix/store/…" ],  exact store paths, first
 *                                          occurrence kept
 *         "closure": "closure-0" | null,   key of exportReferencesGraph;
 *                                          null when storePaths is empty
 *         "nixStorePrefix": "/nix/store",
 *         "nixPathRegistration": false,   true: the builder writes the
 *                                          closure's registration at
 *                                          /nix-path-registration (needs
 *                                          storePaths)
 *         "deduplicateStore": false,      true: identical regular files
 *                                          of the closure are one inode
 *                                          (ext4 only)
 *         "verity": "off" | "data" | "hash",  Verity=
 *         "verityMatchKey": "usr" | null,  VerityMatchKey=; null with
 *                                          verity off
 *         "verityDataBlockSize": n|null,   for "hash": the tree's block
 *         "verityHashBlockSize": n|null,   sizes (512-4096); null otherwise
 *         "uuidFromRootHash": b,           a pair's partition without UUID=:
 *                                          its GPT UUID is the root hash's
 *                                          first (data) or second (hash)
 *                                          half, "uuid" the seed-derived one
 *                                          "fsUuid" derives from
 *         "copyBlocks": "/nix/store/…" | null }  ] }
 *                                          CopyBlocks=: a file inside a
 *                                          store path, the partition's bytes
 *
 * The builder refuses a specVersion it does not know, and a field it does
 * not know (never reading it as unset).  A change that an older builder
 * would misread increments NRI_SPEC_VERSION. */
#pragma once

#include <cjson/cJSON.h>

#include "spec.h"

#define NRI_SPEC_VERSION 2

/* The exportReferencesGraph key of a partition's closure ("closure-<partno>"),
 * written into buf; NULL when the partition has no storePaths. */
const char *nri_spec_closure_key(const nri_partition *p, char *buf, size_t size);

/* The repartSpec object. */
cJSON *nri_spec_to_json(const nri_spec *spec);

/* What the derivation runs: exactly one of the two is set. */
typedef struct nri_builder_ref {
        const char *bundle;  /* a bundle directory in the store */
        const char *program; /* a program outside the store (for debugging) */
} nri_builder_ref;

/* The attribute set for `derivation` (see above). */
cJSON *nri_spec_derivation_json(const nri_spec *spec, const nri_builder_ref *builder, const char *system);

/* Reads a repartSpec object back (the builder's side): every field's type
 * and form, then nri_spec_check().  Refuses another specVersion.  0, or
 * -EINVAL with *err naming the field (its message from `a`). */
int nri_spec_from_json(nri_arena *a, const cJSON *json, nri_spec **ret, nri_error *err);

/* Whether `spec` is one the evaluator could have made: what
 * nri_spec_from_args() refuses, refused again with the same rules (names,
 * labels, split names, paths in normal form, sources inside the store
 * directory, store paths exact, sizes rounded and ordered, Format= implied
 * by content, Minimize= with a writable file system, flags merged, UUIDs
 * derived, compression levels in range, at most NRI_GPT_ENTRIES
 * partitions).  0, or -EINVAL with *err naming the field
 * ("repartSpec.partitions[0].contents[1].source: …"). */
int nri_spec_check(nri_arena *a, const nri_spec *spec, nri_error *err);

/* What the returned value exposes at evaluation time, under `image`:
 *   { diskUuid, seed, seedRandom, architecture, imageFile,
 *     partitions.<id> = { partno, type, typeUuid, label, uuid, fsUuid,
 *                         vfatVolumeId?, flags } }
 * seed is the seed used, also when drawn at random (seedRandom = true);
 * fsUuid, vfatVolumeId and flags as in the spec. */
cJSON *nri_spec_summary_json(const nri_spec *spec);
