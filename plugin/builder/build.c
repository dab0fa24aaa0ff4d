/* build.c: the builder's story — spec, plans, layout, file systems, GPT,
 * repart-output.json, split files — told once, top to bottom, in
 * nri_build().  Everything about one format or one table lives in the file
 * named for it; this file only decides the order and names what failed. */
#include "build.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compress.h"
#include "copy-blocks.h"
#include "fs.h"
#include "gpt.h"
#include "log.h"
#include "nix-repart-image/layout.h"
#include "nix-repart-image/spec-json.h"
#include "nix-repart-image/spec-rules.h"
#include "output-json.h"
#include "plan.h"
#include "registration.h"
#include "verity.h"

/* Everything one build owns. */
typedef struct build {
        const nri_build_options *o;
        nri_arena *a;
        nri_spec *spec;
        nri_plan *plans;         /* one per partition */
        nri_fs_part *fs;         /* one per partition: its file system (fs.h) */
        nri_layout_part *layout; /* one per partition */
        nri_layout_disk disk;
        const char *image;   /* $out/<imageFile> */
        const char *partial; /* where it is written until complete */
        int fd;
        const char **split_names; /* one per partition: its split file's name, or NULL */
        const char **split_files;
        size_t n_split_files;
        const char **roothash; /* one per partition: a Verity=hash partition's root hash (hex), or NULL */
        bool has_verity;
} build;

static const char *partition_name(const nri_partition *p) {
        return p->id;
}

/* ---- the spec and the closures ------------------------------------------ */

/* Where the store is when $NIX_STORE does not say (Nix sets it for every
 * builder). */
#define DEFAULT_STORE_DIR "/nix/store"

/* A path that must be a store path itself: not inside one, not outside the
 * store. */
static bool is_store_path(const build *b, const char *path) {
        size_t len = nri_store_path_length(b->spec->store_dir, path);

        return nri_path_is_normal(path) && len > 0 && !path[len];
}

/* What the builder reads besides the spec, checked as the evaluator's side
 * makes it: the store the spec names is the one this build runs with, the
 * output is a store path of it (or, by hand, a directory outside the
 * store; --out is the caller's own choice), the bundle is a store path. */
static int check_inputs(build *b) {
        const char *store = getenv("NIX_STORE"), *out = b->o->out, *sd = b->spec->store_dir;
        const cJSON *bundle = cJSON_GetObjectItemCaseSensitive(b->o->attrs, "repartBundle");
        size_t n = strlen(sd);

        if (!store || !*store)
                store = DEFAULT_STORE_DIR;
        if (strcmp(store, sd) != 0) {
                log_error("repartSpec.storeDir: \"%s\" is not the store this build runs with (\"%s\")", sd,
                          store);
                return -EINVAL;
        }
        if (b->o->out_from_input &&
            (!nri_path_is_normal(out) ||
             (strncmp(out, sd, n) == 0 && out[n] == '/' && !is_store_path(b, out)))) {
                log_error("the output path \"%s\" (outputs.out, $out) is neither a store path of %s nor an "
                          "absolute path in normal form outside it",
                          out, sd);
                return -EINVAL;
        }
        if (bundle && (!cJSON_IsString(bundle) || !is_store_path(b, bundle->valuestring))) {
                log_error("repartBundle: expected a store path of %s", sd);
                return -EINVAL;
        }
        return 0;
}

static int read_spec(build *b) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(b->o->attrs, "repartSpec");
        nri_error error = {0};

        if (!j) {
                log_error(
                    "the derivation has no repartSpec attribute: was it made by builtins.repartImage?");
                return -EINVAL;
        }
        if (nri_spec_from_json(b->a, j, &b->spec, &error) < 0) {
                log_error("%s", error.message);
                return -EINVAL;
        }
        return check_inputs(b);
}

static int by_target(const void *x, const void *y) {
        return strcmp(((const nri_plan_copy *)x)->target, ((const nri_plan_copy *)y)->target);
}

/* The closure of the partition's storePaths, as exportReferencesGraph gave
 * it: every path lands at <nixStorePrefix>/<basename>. */
static int plan_closure(build *b, const nri_partition *p, nri_plan_copy **copies, size_t *n) {
        char key[32];
        const cJSON *graph, *e;
        const char *prefix = strcmp(p->nix_store_prefix, "/") == 0 ? "" : p->nix_store_prefix;
        size_t start = *n;

        if (!nri_spec_closure_key(p, key, sizeof(key)))
                return 0;
        graph = cJSON_GetObjectItemCaseSensitive(b->o->attrs, key);
        if (!cJSON_IsArray(graph)) {
                log_error("partition %s: the references graph %s is missing from .attrs.json",
                          partition_name(p), key);
                return -EINVAL;
        }
        cJSON_ArrayForEach(e, graph) {
                const cJSON *path = cJSON_GetObjectItemCaseSensitive(e, "path");
                const char *base;

                if (!cJSON_IsString(path) || !is_store_path(b, path->valuestring)) {
                        log_error("partition %s: %s holds an entry whose path is not a store path of %s",
                                  partition_name(p), key, b->spec->store_dir);
                        return -EINVAL;
                }
                base = strrchr(path->valuestring, '/') + 1;
                (*copies)[(*n)++] = (nri_plan_copy){
                    .source = nri_strdup(b->a, path->valuestring),
                    .target = nri_printf(b->a, "%s/%s", prefix, base),
                };
        }
        /* Store paths in name order, whatever order Nix listed them in. */
        qsort(*copies + start, *n - start, sizeof(nri_plan_copy), by_target);
        for (size_t i = start + 1; i < *n; i++)
                if (strcmp((*copies)[i - 1].target, (*copies)[i].target) == 0) {
                        log_error("partition %s: %s lists %s twice", partition_name(p), key,
                                  (*copies)[i].source);
                        return -EINVAL;
                }
        /* The closure of the storePaths holds each of them. */
        for (size_t i = 0; i < p->n_store_paths; i++) {
                nri_plan_copy want = {
                    .target = nri_printf(b->a, "%s/%s", prefix, strrchr(p->store_paths[i], '/') + 1)};
                const nri_plan_copy *got =
                    bsearch(&want, *copies + start, *n - start, sizeof(nri_plan_copy), by_target);

                if (!got || strcmp(got->source, p->store_paths[i]) != 0) {
                        log_error("partition %s: its closure %s does not hold its store path %s",
                                  partition_name(p), key, p->store_paths[i]);
                        return -EINVAL;
                }
        }
        return 0;
}

/* nixPathRegistration: the closure's registration, written into the build
 * directory and copied last, to /nix-path-registration (registration.h). */
static int plan_registration(build *b, const nri_partition *p, nri_plan *plan) {
        const char *tmp = getenv("TMPDIR"), *dir = tmp && *tmp ? tmp : "/tmp", *path;
        char key[32];
        int r;

        if (!nri_spec_closure_key(p, key, sizeof(key)))
                return 0; /* no storePaths: the spec check refuses it */
        path = nri_printf(b->a, "%s/nri-path-registration-%u", dir, p->partno);
        r = nri_registration_write(cJSON_GetObjectItemCaseSensitive(b->o->attrs, key), path,
                                   nri_printf(b->a, "partition %s", partition_name(p)));
        if (r < 0)
                return r;
        plan->builder_dir = dir;
        plan->copies[plan->n_copies++] = (nri_plan_copy){.source = path, .target = "/nix-path-registration"};
        return 0;
}

static size_t closure_size(build *b, const nri_partition *p) {
        char key[32];
        const cJSON *graph;

        if (!nri_spec_closure_key(p, key, sizeof(key)))
                return 0;
        graph = cJSON_GetObjectItemCaseSensitive(b->o->attrs, key);
        return cJSON_IsArray(graph) ? (size_t)cJSON_GetArraySize(graph) : 0;
}

/* The order systemd-repart's CopyFiles= would copy in, as the NixOS module
 * writes it: the closure first, then contents, then CopyFiles=. */
static int plan_partition(build *b, const nri_partition *p, nri_plan *plan) {
        size_t cap = closure_size(b, p) + p->n_contents + p->n_copy_files + 1;
        int r;

        plan->directories = p->make_directories;
        plan->n_directories = p->n_make_directories;
        plan->copies = nri_alloc(b->a, sizeof(nri_plan_copy) * (cap ? cap : 1));
        plan->mtime = b->o->mtime;
        /* Every source is in the store, where hard links exist only when the
         * store was optimised (the NAR format has none): keeping them would
         * make the image depend on the machine's store, not on the closure. */
        plan->ignore_hardlinks = true;
        plan->store_dir = b->spec->store_dir;
        if (nri_fs_type_of(p->format))
                plan->existing = nri_fs_type_of(p->format)->existing;
        r = plan_closure(b, p, &plan->copies, &plan->n_copies);
        if (r < 0)
                return r;
        /* the closure comes first: only its copies are deduplicated */
        if (p->deduplicate_store)
                plan->n_dedup = plan->n_copies;
        for (size_t i = 0; i < p->n_contents; i++)
                plan->copies[plan->n_copies++] =
                    (nri_plan_copy){.source = p->contents[i].source, .target = p->contents[i].target};
        for (size_t i = 0; i < p->n_copy_files; i++)
                plan->copies[plan->n_copies++] =
                    (nri_plan_copy){.source = p->copy_files[i].source, .target = p->copy_files[i].target};
        if (p->nix_path_registration)
                return plan_registration(b, p, plan);
        return 0;
}

/* ---- sizes -------------------------------------------------------------- */

/* The split files' names, with the partitions this layout keeps
 * (nri_split_names(): the content may make it drop more than the
 * evaluator's did). */
static int name_split_files(build *b) {
        size_t n = b->spec->n_partitions, i = 0, j = 0;
        bool *dropped = nri_alloc(b->a, n * sizeof(bool));
        int r;

        b->split_names = nri_alloc(b->a, n * sizeof(char *));
        if (!b->spec->split)
                return 0;
        for (size_t k = 0; k < n; k++)
                dropped[k] = b->layout[k].dropped;
        r = nri_split_names(b->a, b->spec, dropped, b->split_names, &i, &j);
        if (r == -ENAMETOOLONG)
                log_error("partition %s: its split file name is longer than 255 bytes",
                          partition_name(&b->spec->partitions[i]));
        else if (r == -EEXIST)
                log_error("partition %s: its split file name \"%s\" is also that of partition %s",
                          partition_name(&b->spec->partitions[i]), b->split_names[i],
                          partition_name(&b->spec->partitions[j]));
        return r;
}

/* ---- dm-verity pairs ---------------------------------------------------- */

/* The Verity=data partition with the hash partition's match key (the spec
 * checker made sure there is exactly one). */
static size_t verity_data_of(const build *b, size_t hash) {
        const nri_partition *h = &b->spec->partitions[hash];

        for (size_t i = 0; i < b->spec->n_partitions; i++) {
                const nri_partition *p = &b->spec->partitions[i];

                if (p->verity == NRI_VERITY_DATA && strcmp(p->verity_match_key, h->verity_match_key) == 0)
                        return i;
        }
        return SIZE_MAX;
}

static void verity_options(const build *b, const nri_partition *h, nri_verity_options *o) {
        *o = (nri_verity_options){
            .data_block_size = (uint32_t)h->verity_data_block_size,
            .hash_block_size = (uint32_t)h->verity_hash_block_size,
            .what = nri_printf(b->a, "partition %s", h->id),
        };
        nri_verity_derive(&b->spec->seed, o);
}

/* What a hash partition must hold for its data partition of `data_size`
 * bytes. */
static int verity_hash_size(const build *b, size_t hash, uint64_t data_size, uint64_t *ret) {
        nri_verity_options o;
        int r;

        verity_options(b, &b->spec->partitions[hash], &o);
        r = nri_verity_hash_size(data_size, &o, ret);
        if (r < 0)
                log_error("partition %s: no hash tree for %" PRIu64 " bytes of data",
                          partition_name(&b->spec->partitions[hash]), data_size);
        return r;
}

/* Before the layout: a data partition with SizeMaxBytes= bounds the tree,
 * and a hash partition without SizeMinBytes= takes that bound as its
 * minimum (systemd-repart's context_update_verity_size()). */
static int verity_bound_sizes(build *b) {
        for (size_t i = 0; i < b->spec->n_partitions; i++) {
                const nri_partition *h = &b->spec->partitions[i];
                size_t d;
                uint64_t sz;
                int r;

                if (h->verity != NRI_VERITY_HASH)
                        continue;
                b->has_verity = true;
                d = verity_data_of(b, i);
                if (h->size_min != NRI_SIZE_UNSET || b->spec->partitions[d].size_max == NRI_SIZE_UNSET)
                        continue;
                r = verity_hash_size(b, i, b->spec->partitions[d].size_max, &sz);
                if (r < 0)
                        return r;
                b->layout[i].content_min = sz > b->layout[i].content_min ? sz : b->layout[i].content_min;
        }
        return 0;
}

/* After a layout: does every hash partition hold its data partition's
 * tree?  One with Minimize= that does not is raised to it (*ret_again: lay
 * out again); one without is an error, as in systemd-repart. */
static int verity_check_sizes(build *b, bool *ret_again) {
        *ret_again = false;
        for (size_t i = 0; i < b->spec->n_partitions; i++) {
                const nri_partition *h = &b->spec->partitions[i];
                size_t d;
                uint64_t need;
                int r;

                if (h->verity != NRI_VERITY_HASH || b->layout[i].dropped)
                        continue;
                d = verity_data_of(b, i);
                r = verity_hash_size(b, i, b->layout[d].size, &need);
                if (r < 0)
                        return r;
                if (need <= b->layout[i].size)
                        continue;
                if (h->minimize == NRI_MINIMIZE_OFF) {
                        log_error(
                            "partition %s: the hash tree of partition %s (%" PRIu64 " bytes) needs %" PRIu64
                            " bytes, the partition has %" PRIu64 ": raise its SizeMinBytes= or set "
                            "Minimize = \"best\"",
                            h->id, b->spec->partitions[d].id, b->layout[d].size, need, b->layout[i].size);
                        return -ENOSPC;
                }
                b->layout[i].content_min = need;
                *ret_again = true;
        }
        return 0;
}

static int lay_out(build *b) {
        size_t failed = SIZE_MAX;
        nri_error err = {0};
        bool again = true;
        int r;

        b->layout = nri_alloc(b->a, sizeof(nri_layout_part) * b->spec->n_partitions);
        for (size_t i = 0; i < b->spec->n_partitions; i++) {
                nri_layout_part *l = &b->layout[i];

                *l = nri_spec_layout_part(&b->spec->partitions[i]);
                if (b->spec->partitions[i].copy_blocks)
                        r = nri_copy_blocks_size(b->spec->store_dir, b->spec->partitions[i].copy_blocks,
                                                 b->fs[i].what, &l->content_min);
                else
                        r = nri_fs_min_size(&b->fs[i], &l->content_min);
                if (r < 0)
                        return r;
        }
        r = verity_bound_sizes(b);
        if (r < 0)
                return r;
        /* A hash partition's minimum depends on its data partition's size,
         * which the layout decides: lay out until both agree (raising a
         * minimum only takes space from the weights, so this ends). */
        for (int round = 0; again; round++) {
                if (round == 8) {
                        log_error("the hash partitions' sizes do not settle; set SizeMinBytes= on them");
                        return -ELOOP;
                }
                r = nri_layout_compute(b->layout, b->spec->n_partitions, b->spec->sector_size,
                                       b->spec->image_size, &b->disk, &failed, b->a, &err);
                if (r < 0) {
                        if (failed < b->spec->n_partitions)
                                log_error("partition %s: %s", partition_name(&b->spec->partitions[failed]),
                                          err.message);
                        else
                                log_error("%s", err.message);
                        return r;
                }
                r = verity_check_sizes(b, &again);
                if (r < 0)
                        return r;
        }
        return name_split_files(b);
}

/* ---- file systems ------------------------------------------------------- */

/* What each partition's file-system writer is given (fs.h). */
static void describe_file_systems(build *b) {
        b->fs = nri_alloc(b->a, sizeof(nri_fs_part) * b->spec->n_partitions);
        for (size_t i = 0; i < b->spec->n_partitions; i++) {
                const nri_partition *p = &b->spec->partitions[i];

                b->fs[i] = (nri_fs_part){
                    .spec = b->spec,
                    .p = p,
                    .type = nri_fs_type_of(p->format),
                    .plan = &b->plans[i],
                    .what = nri_printf(b->a, "partition %s", partition_name(p)),
                    .mtools = b->o->mtools,
                    .tmp_dir = b->o->out,
                    .verbose = b->o->verbose,
                };
        }
}

static int write_file_systems(build *b) {
        for (size_t i = 0; i < b->spec->n_partitions; i++) {
                int r;

                if (b->layout[i].dropped)
                        continue;
                b->fs[i].image = b->partial;
                b->fs[i].offset = b->layout[i].offset;
                b->fs[i].size = b->layout[i].size;
                if (b->spec->partitions[i].copy_blocks)
                        r = nri_copy_blocks_write(b->spec->store_dir, b->spec->partitions[i].copy_blocks,
                                                  b->partial, b->fs[i].offset, b->fs[i].size, b->fs[i].what);
                else
                        r = nri_fs_write(&b->fs[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* After the data partitions are written: each hash partition gets its data
 * partition's hash tree, and the pair without UUID= get the root hash's
 * halves as partition UUIDs (systemd-repart's partition_format_verity_hash()
 * and its UUID update). */
static int write_verity(build *b) {
        b->roothash = nri_alloc(b->a, sizeof(char *) * b->spec->n_partitions);
        for (size_t i = 0; i < b->spec->n_partitions; i++) {
                nri_partition *h = &b->spec->partitions[i], *dp;
                uint8_t root[NRI_VERITY_ROOT_HASH_SIZE];
                nri_verity_options o;
                nri_uuid data_uuid, hash_uuid;
                char *hex;
                size_t d;
                int r;

                if (h->verity != NRI_VERITY_HASH || b->layout[i].dropped)
                        continue;
                d = verity_data_of(b, i);
                dp = &b->spec->partitions[d];
                verity_options(b, h, &o);
                if (b->o->verbose)
                        log_info("partition %s: the hash tree of partition %s", h->id, dp->id);
                r = nri_verity_write(b->partial, b->layout[d].offset, b->layout[d].size, b->partial,
                                     b->layout[i].offset, b->layout[i].size, &o, root);
                if (r < 0) {
                        log_error("partition %s: writing the hash tree of partition %s failed", h->id,
                                  dp->id);
                        return r;
                }
                nri_verity_partition_uuids(root, &data_uuid, &hash_uuid);
                if (dp->uuid_from_root_hash)
                        dp->uuid = data_uuid;
                if (h->uuid_from_root_hash)
                        h->uuid = hash_uuid;
                hex = nri_alloc(b->a, 2 * sizeof(root) + 1);
                for (size_t k = 0; k < sizeof(root); k++)
                        snprintf(hex + 2 * k, 3, "%02x", root[k]);
                b->roothash[i] = hex;
        }
        return 0;
}

/* ---- the partition table and the JSON ----------------------------------- */

static int write_gpt(build *b) {
        nri_gpt_part *parts = nri_alloc(b->a, sizeof(nri_gpt_part) * b->spec->n_partitions);
        nri_gpt_table t = {
            .sector_size = b->spec->sector_size,
            .parts = parts,
            .first_lba = b->disk.first_lba,
            .last_lba = b->disk.last_lba,
        };
        char disk_uuid[NRI_UUID_STRING_MAX];

        nri_uuid_format(&b->spec->disk_uuid, disk_uuid);
        t.disk_uuid = disk_uuid;
        for (size_t i = 0; i < b->spec->n_partitions; i++) {
                const nri_partition *p = &b->spec->partitions[i];
                char *type = nri_alloc(b->a, NRI_UUID_STRING_MAX),
                     *uuid = nri_alloc(b->a, NRI_UUID_STRING_MAX);

                if (b->layout[i].dropped)
                        continue;
                nri_uuid_format(&p->type.uuid, type);
                nri_uuid_format(&p->uuid, uuid);
                parts[t.n_parts++] = (nri_gpt_part){
                    .type_uuid = type,
                    .uuid = uuid,
                    .label = p->label,
                    .flags = p->flags,
                    .offset = b->layout[i].offset,
                    .size = b->layout[i].size,
                };
        }
        return nri_gpt_write(b->fd, b->image, &t);
}

static const char *image_file_name(const build *b) {
        const char *s = strrchr(b->image, '/');
        return s ? s + 1 : b->image;
}

static int write_output_json(build *b) {
        nri_output_part *parts = nri_alloc(b->a, sizeof(nri_output_part) * b->spec->n_partitions);
        size_t n = 0;
        int r;

        for (size_t i = 0; i < b->spec->n_partitions; i++) {
                const nri_partition *p = &b->spec->partitions[i];
                char *type = nri_alloc(b->a, NRI_UUID_STRING_MAX),
                     *uuid = nri_alloc(b->a, NRI_UUID_STRING_MAX);

                if (b->layout[i].dropped)
                        continue;
                nri_uuid_format(&p->uuid, uuid);
                parts[n++] = (nri_output_part){
                    .type = nri_part_type_display(&p->type, type),
                    .label = p->label,
                    .uuid = uuid,
                    .file = nri_printf(b->a, "%s.conf", p->id),
                    .offset = b->layout[i].offset,
                    .size = b->layout[i].size,
                    .padding = b->layout[i].padding,
                    .roothash = b->roothash ? b->roothash[i] : NULL,
                };
        }
        r = nri_output_json_write(nri_printf(b->a, "%s/repart-output.json", b->o->out), image_file_name(b),
                                  parts, n);
        if (r < 0)
                log_error_errno(r, "writing %s/repart-output.json: %m", b->o->out);
        return r;
}

/* ---- split files and compression ---------------------------------------- */

/* "<out>/image.raw" → "<out>/image.<name>.raw", as systemd-repart names them. */
static const char *split_path(build *b, const char *name) {
        size_t len = strlen(b->image);
        bool raw = len >= 4 && strcmp(b->image + len - 4, ".raw") == 0;

        return nri_printf(b->a, "%.*s.%s%s", (int)(raw ? len - 4 : len), b->image, name, raw ? ".raw" : "");
}

static int copy_range(int in, uint64_t offset, uint64_t size, const char *path) {
        int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        loff_t off_in = (loff_t)offset, off_out = 0;
        int r = 0;

        if (out < 0) {
                log_error("cannot create %s: %m", path);
                return -errno;
        }
        if (ftruncate(out, (off_t)size) < 0) {
                r = -errno;
                log_error("cannot make %s %" PRIu64 " bytes long: %m", path, size);
        }
        /* Only the data: holes in the image stay holes in the split file. */
        while (r >= 0 && (uint64_t)off_out < size) {
                off_t data = lseek(in, (off_t)(offset + (uint64_t)off_out), SEEK_DATA);
                off_t hole;
                ssize_t n;

                if (data < 0 || (uint64_t)data >= offset + size)
                        break;
                hole = lseek(in, data, SEEK_HOLE);
                if (hole < 0 || (uint64_t)hole > offset + size)
                        hole = (off_t)(offset + size);
                off_in = data;
                off_out = data - (off_t)offset;
                while (off_in < hole) {
                        n = copy_file_range(in, &off_in, out, &off_out, (size_t)(hole - off_in), 0);
                        if (n <= 0) {
                                r = n < 0 ? -errno : -EIO;
                                log_error_errno(r, "copying into %s: %m", path);
                                break;
                        }
                }
        }
        if (close(out) < 0 && r >= 0) {
                r = -errno;
                log_error("writing %s: %m", path);
        }
        if (r < 0)
                unlink(path);
        return r;
}

static int write_split_files(build *b) {
        int in;

        if (!b->spec->split)
                return 0;
        in = open(b->image, O_RDONLY | O_CLOEXEC);
        if (in < 0) {
                log_error("cannot open %s: %m", b->image);
                return -errno;
        }
        for (size_t i = 0; i < b->spec->n_partitions; i++) {
                const nri_partition *p = &b->spec->partitions[i];
                const char *path;
                int r;

                if (!b->split_names[i])
                        continue;
                path = split_path(b, b->split_names[i]);
                r = copy_range(in, b->layout[i].offset, b->layout[i].size, path);
                if (r < 0) {
                        log_error("partition %s: writing its split file failed", partition_name(p));
                        close(in);
                        return r;
                }
                b->split_files[b->n_split_files++] = path;
        }
        close(in);
        return 0;
}

/* As NixOS's module does: every .raw file of the output compressed, the raw
 * one removed. */
static int compress_outputs(build *b) {
        if (b->spec->compression == NRI_COMPRESSION_NONE)
                return 0;
        for (size_t i = 0; i <= b->n_split_files; i++) {
                const char *raw = i == 0 ? b->image : b->split_files[i - 1];
                const char *packed =
                    nri_printf(b->a, "%s%s", raw, nri_compress_suffix(b->spec->compression));
                int r;

                if (b->o->verbose)
                        log_info("compressing %s (%s, level %d)", raw,
                                 nri_compression_to_string(b->spec->compression),
                                 b->spec->compression_level);
                r = nri_compress_file(raw, packed, b->spec->compression, b->spec->compression_level);
                if (r < 0)
                        return r;
                if (unlink(raw) < 0) {
                        log_error("cannot remove %s: %m", raw);
                        return -errno;
                }
        }
        return 0;
}

/* ---- the image file ----------------------------------------------------- */

/* Every file the build writes is new (O_EXCL), in an output directory that
 * is one (not a symlink to one): nothing is written through a name that
 * was there before. */
static int create_out_dir(build *b) {
        struct stat st;

        if (mkdir(b->o->out, 0755) < 0 && errno != EEXIST) {
                log_error("cannot create %s: %m", b->o->out);
                return -errno;
        }
        if (lstat(b->o->out, &st) < 0 || !S_ISDIR(st.st_mode)) {
                log_error("%s: not a directory", b->o->out);
                return -ENOTDIR;
        }
        return 0;
}

static int create_image(build *b) {
        const char *partial;

        b->image = nri_printf(b->a, "%s/%s", b->o->out, nri_spec_image_file_name(b->a, b->spec));
        partial = nri_printf(b->a, "%s.partial", b->image);
        b->fd = open(partial, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (b->fd < 0) {
                log_error("cannot create %s: %m", partial);
                return -errno;
        }
        b->partial = partial;
        if (ftruncate(b->fd, (off_t)b->disk.image_size) < 0) {
                log_error("cannot make %s %" PRIu64 " bytes long: %m", b->partial, b->disk.image_size);
                return -errno;
        }
        return 0;
}

static int finish_image(build *b) {
        /* Not synced: see ext4.c.  Nix registers the output as it is; a crash
         * of the machine before write-back loses it as it loses any output. */
        if (close(b->fd) < 0) {
                b->fd = -1;
                log_error("writing %s: %m", b->partial);
                return -errno;
        }
        b->fd = -1;
        if (rename(b->partial, b->image) < 0) {
                log_error("cannot rename %s to %s: %m", b->partial, b->image);
                return -errno;
        }
        b->partial = NULL;
        return 0;
}

/* A build that failed after the image was complete leaves nothing either. */
static void remove_outputs(build *b) {
        const char *suffix = nri_compress_suffix(b->spec->compression);

        for (size_t i = 0; i <= b->n_split_files; i++) {
                const char *raw = i == 0 ? b->image : b->split_files[i - 1];

                unlink(raw);
                unlink(nri_printf(b->a, "%s%s", raw, suffix));
        }
        unlink(nri_printf(b->a, "%s/repart-output.json", b->o->out));
}

int nri_build(const nri_build_options *o) {
        build b = {.o = o, .a = nri_arena_new(), .fd = -1};
        int r;

        r = read_spec(&b);
        if (r >= 0) {
                b.plans = nri_alloc(b.a, sizeof(nri_plan) * b.spec->n_partitions);
                for (size_t i = 0; r >= 0 && i < b.spec->n_partitions; i++)
                        r = plan_partition(&b, &b.spec->partitions[i], &b.plans[i]);
                if (r >= 0)
                        describe_file_systems(&b);
        }
        /* Before the layout: a writer may build a file system aside there to
         * measure it (fs.h's tmp_dir). */
        if (r >= 0)
                r = create_out_dir(&b);
        if (r >= 0)
                r = lay_out(&b);
        if (r >= 0)
                r = create_image(&b);
        /* The table first: libfdisk fsync()s the image when it writes one,
         * which costs nothing while the image is still holes.  With dm-verity
         * it comes last: the pairs' UUIDs come from their root hashes. */
        if (r >= 0 && !b.has_verity)
                r = write_gpt(&b);
        if (r >= 0)
                r = write_file_systems(&b);
        if (r >= 0)
                r = write_verity(&b);
        if (r >= 0 && b.has_verity)
                r = write_gpt(&b);
        if (r >= 0)
                r = finish_image(&b);
        if (r >= 0) {
                b.split_files = nri_alloc(b.a, sizeof(char *) * b.spec->n_partitions);
                r = write_split_files(&b);
        }
        if (r >= 0)
                r = write_output_json(&b);
        if (r >= 0)
                r = compress_outputs(&b);

        if (b.fd >= 0)
                close(b.fd);
        if (b.partial)
                unlink(b.partial);
        if (r < 0 && b.image && !b.partial)
                remove_outputs(&b);
        for (size_t i = 0; b.fs && i < b.spec->n_partitions; i++)
                nri_fs_part_done(&b.fs[i]);
        if (r >= 0 && o->verbose)
                log_info("wrote %s (%" PRIu64 " bytes)", b.image, b.disk.image_size);
        nri_arena_free(b.a);
        return r;
}
