/* spec-json.c: the normalised spec as JSON, for the derivation (the
 * builder's contract, spec-json.h) and for what the result tells at
 * evaluation time.
 *
 * cJSON reports a failed allocation by returning NULL; a builder flag
 * collects those so that each function has one check at its end instead of
 * one per field, and a half-built object is never returned. */
#include "nix-repart-image/spec-json.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef struct jb {
        bool oom;
} jb;

static cJSON *add(jb *b, cJSON *obj, const char *key, cJSON *item) {
        if (!item || !obj) {
                cJSON_Delete(item);
                b->oom = true;
                return NULL;
        }
        if (!(key ? cJSON_AddItemToObject(obj, key, item) : cJSON_AddItemToArray(obj, item))) {
                cJSON_Delete(item);
                b->oom = true;
                return NULL;
        }
        return item;
}

static cJSON *j_str(const char *s) {
        return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

/* Sizes and counts stay below 2^53 (NRI_SIZE_LIMIT): exact as doubles. */
static cJSON *j_num(uint64_t v) {
        return cJSON_CreateNumber((double)v);
}

static cJSON *j_size(uint64_t v) {
        return v == NRI_SIZE_UNSET ? cJSON_CreateNull() : j_num(v);
}

static cJSON *j_uuid(const nri_uuid *u) {
        char buf[NRI_UUID_STRING_MAX];

        nri_uuid_format(u, buf);
        return cJSON_CreateString(buf);
}

/* GPT attribute bits as hexadecimal text ("0x0", "0x800000000000000"):
 * a double cannot hold bit 63. */
static cJSON *j_flags(uint64_t f) {
        char buf[2 + 16 + 1];

        snprintf(buf, sizeof(buf), "0x%" PRIx64, f);
        return cJSON_CreateString(buf);
}

static cJSON *j_strings(jb *b, const char *const *items, size_t n) {
        cJSON *arr = cJSON_CreateArray();

        for (size_t i = 0; arr && i < n; i++)
                add(b, arr, NULL, cJSON_CreateString(items[i]));
        return arr;
}

static cJSON *j_copies(jb *b, const nri_copy *items, size_t n) {
        cJSON *arr = cJSON_CreateArray();

        for (size_t i = 0; arr && i < n; i++) {
                cJSON *o = add(b, arr, NULL, cJSON_CreateObject());

                add(b, o, "source", j_str(items[i].source));
                add(b, o, "target", j_str(items[i].target));
        }
        return arr;
}

static cJSON *vfat_volume_id(const nri_partition *p) {
        char buf[9];

        snprintf(buf, sizeof(buf), "%08" PRIx32, nri_uuid_vfat_volume_id(&p->fs_uuid));
        return cJSON_CreateString(buf);
}

static const char *type_name(const nri_partition *p, char buf[NRI_UUID_STRING_MAX]) {
        return nri_part_type_display(&p->type, buf);
}

const char *nri_spec_closure_key(const nri_partition *p, char *buf, size_t size) {
        if (p->n_store_paths == 0)
                return NULL;
        snprintf(buf, size, "closure-%u", p->partno);
        return buf;
}

/* What identifies a partition: shared by the spec and the summary. */
static void add_identity(jb *b, cJSON *o, const nri_partition *p) {
        char buf[NRI_UUID_STRING_MAX];

        add(b, o, "partno", j_num(p->partno));
        add(b, o, "type", j_str(type_name(p, buf)));
        add(b, o, "typeUuid", j_uuid(&p->type.uuid));
        add(b, o, "label", j_str(p->label));
        add(b, o, "uuid", j_uuid(&p->uuid));
        add(b, o, "fsUuid", j_uuid(&p->fs_uuid));
        if (nri_fs_type_of(p->format) && nri_fs_type_of(p->format)->volume_id)
                add(b, o, "vfatVolumeId", vfat_volume_id(p));
}

static void add_sizes(jb *b, cJSON *o, const nri_partition *p) {
        add(b, o, "priority", cJSON_CreateNumber(p->priority));
        add(b, o, "weight", j_num(p->weight));
        add(b, o, "paddingWeight", j_num(p->padding_weight));
        add(b, o, "sizeMinBytes", j_size(p->size_min));
        add(b, o, "sizeMaxBytes", j_size(p->size_max));
        add(b, o, "paddingMinBytes", j_size(p->padding_min));
        add(b, o, "paddingMaxBytes", j_size(p->padding_max));
}

static void add_file_system(jb *b, cJSON *o, const nri_partition *p) {
        char key[32];

        add(b, o, "format", j_str(nri_format_to_string(p->format)));
        add(b, o, "minimize", j_str(nri_minimize_to_string(p->minimize)));
        add(b, o, "readOnly", cJSON_CreateBool(p->read_only));
        add(b, o, "noAuto", cJSON_CreateBool(p->no_auto));
        add(b, o, "growFileSystem", cJSON_CreateBool(p->grow_fs));
        add(b, o, "flags", j_flags(p->flags));
        add(b, o, "splitName", j_str(p->split_name));
        add(b, o, "contents", j_copies(b, p->contents, p->n_contents));
        add(b, o, "copyFiles", j_copies(b, p->copy_files, p->n_copy_files));
        add(b, o, "makeDirectories", j_strings(b, p->make_directories, p->n_make_directories));
        add(b, o, "storePaths", j_strings(b, p->store_paths, p->n_store_paths));
        add(b, o, "closure", j_str(nri_spec_closure_key(p, key, sizeof(key))));
        add(b, o, "nixStorePrefix", j_str(p->nix_store_prefix));
}

static cJSON *partition_to_json(jb *b, const nri_partition *p) {
        cJSON *o = cJSON_CreateObject();

        add(b, o, "id", j_str(p->id));
        add_identity(b, o, p);
        add_sizes(b, o, p);
        add_file_system(b, o, p);
        return o;
}

static cJSON *compression_to_json(const nri_spec *spec, jb *b) {
        cJSON *o;

        if (spec->compression == NRI_COMPRESSION_NONE)
                return cJSON_CreateNull();
        o = cJSON_CreateObject();
        add(b, o, "algorithm", j_str(nri_compression_to_string(spec->compression)));
        add(b, o, "level", cJSON_CreateNumber(spec->compression_level));
        return o;
}

static cJSON *image_file(const nri_spec *spec) {
        nri_arena *a = nri_arena_new();
        cJSON *s = cJSON_CreateString(nri_spec_image_file_name(a, spec));

        nri_arena_free(a);
        return s;
}

static cJSON *finish(jb *b, cJSON *o) {
        if (b->oom || !o) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

cJSON *nri_spec_to_json(const nri_spec *spec) {
        cJSON *o = cJSON_CreateObject(), *parts;
        jb b = {0};

        add(&b, o, "specVersion", j_num(NRI_SPEC_VERSION));
        add(&b, o, "name", j_str(spec->name));
        add(&b, o, "version", j_str(spec->version));
        add(&b, o, "imageFile", image_file(spec));
        add(&b, o, "seed", spec->seed_random ? cJSON_CreateNull() : j_uuid(&spec->seed));
        add(&b, o, "architecture", j_str(nri_arch_to_string(spec->arch)));
        add(&b, o, "sectorSize", j_num(spec->sector_size));
        add(&b, o, "imageSize", j_size(spec->image_size));
        add(&b, o, "split", cJSON_CreateBool(spec->split));
        add(&b, o, "compression", compression_to_json(spec, &b));
        add(&b, o, "storeDir", j_str(spec->store_dir));
        add(&b, o, "diskUuid", j_uuid(&spec->disk_uuid));
        parts = add(&b, o, "partitions", cJSON_CreateArray());
        for (size_t i = 0; parts && i < spec->n_partitions; i++)
                add(&b, parts, NULL, partition_to_json(&b, &spec->partitions[i]));
        return finish(&b, o);
}

static cJSON *references_graph(jb *b, const nri_spec *spec) {
        cJSON *o = cJSON_CreateObject();

        for (size_t i = 0; o && i < spec->n_partitions; i++) {
                const nri_partition *p = &spec->partitions[i];
                char key[32];

                if (nri_spec_closure_key(p, key, sizeof(key)))
                        add(b, o, key, j_strings(b, p->store_paths, p->n_store_paths));
        }
        return o;
}

/* The derivation's name: NixOS's mkDerivation would make it
 * "<name>-<version>". */
static cJSON *derivation_name(const nri_spec *spec) {
        nri_arena *a = nri_arena_new();
        const char *n = spec->version ? nri_printf(a, "%s-%s", spec->name, spec->version) : spec->name;
        cJSON *s = cJSON_CreateString(n);

        nri_arena_free(a);
        return s;
}

/* The bundle's builder, started by the bundle's loader with the bundle's
 * libraries: nothing outside the store is needed. */
static void add_builder(jb *b, cJSON *o, const nri_builder_ref *builder) {
        nri_arena *a;
        cJSON *args;

        if (!builder->bundle) {
                add(b, o, "builder", j_str(builder->program));
                return;
        }
        a = nri_arena_new();
        add(b, o, "builder", j_str(nri_printf(a, "%s/lib/ld.so", builder->bundle)));
        args = add(b, o, "args", cJSON_CreateArray());
        add(b, args, NULL, j_str("--library-path"));
        add(b, args, NULL, j_str(nri_printf(a, "%s/lib", builder->bundle)));
        add(b, args, NULL, j_str(nri_printf(a, "%s/bin/nix-repart-image-builder", builder->bundle)));
        add(b, o, "repartBundle", j_str(builder->bundle));
        nri_arena_free(a);
}

cJSON *nri_spec_derivation_json(const nri_spec *spec, const nri_builder_ref *builder, const char *system) {
        cJSON *o = cJSON_CreateObject();
        jb b = {0};

        add(&b, o, "name", derivation_name(spec));
        add(&b, o, "system", j_str(system));
        add_builder(&b, o, builder);
        add(&b, o, "__structuredAttrs", cJSON_CreateTrue());
        add(&b, o, "exportReferencesGraph", references_graph(&b, spec));
        add(&b, o, "repartSpec", nri_spec_to_json(spec));
        return finish(&b, o);
}

cJSON *nri_spec_summary_json(const nri_spec *spec) {
        cJSON *o = cJSON_CreateObject(), *parts;
        jb b = {0};

        add(&b, o, "diskUuid", j_uuid(&spec->disk_uuid));
        add(&b, o, "seed", j_uuid(&spec->seed));
        add(&b, o, "seedRandom", cJSON_CreateBool(spec->seed_random));
        add(&b, o, "architecture", j_str(nri_arch_to_string(spec->arch)));
        add(&b, o, "imageFile", image_file(spec));
        parts = add(&b, o, "partitions", cJSON_CreateObject());
        for (size_t i = 0; parts && i < spec->n_partitions; i++) {
                const nri_partition *p = &spec->partitions[i];
                cJSON *po = add(&b, parts, p->id, cJSON_CreateObject());

                add_identity(&b, po, p);
                add(&b, po, "flags", j_flags(p->flags));
        }
        return finish(&b, o);
}
