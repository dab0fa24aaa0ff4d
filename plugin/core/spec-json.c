/* spec-json.c: what the evaluator hands Nix — the attribute set for
 * `derivation` (spec-json.h: the builder's inputs around repartSpec) and
 * what the result tells at evaluation time — made with the spec's field
 * table (spec-fields.c). */
#include "nix-repart-image/spec-json.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "spec-fields.h"

const char *nri_spec_closure_key(const nri_partition *p, char *buf, size_t size) {
        if (p->n_store_paths == 0)
                return NULL;
        snprintf(buf, size, "closure-%u", p->partno);
        return buf;
}

static cJSON *strings(json_builder *b, const char *const *items, size_t n) {
        cJSON *arr = cJSON_CreateArray();

        for (size_t i = 0; arr && i < n; i++)
                spec_json_add(b, arr, NULL, cJSON_CreateString(items[i]));
        return arr;
}

static cJSON *image_file(const nri_spec *spec) {
        nri_arena *a = nri_arena_new();
        cJSON *s = cJSON_CreateString(nri_spec_image_file_name(a, spec));

        nri_arena_free(a);
        return s;
}

static cJSON *references_graph(json_builder *b, const nri_spec *spec) {
        cJSON *o = cJSON_CreateObject();

        for (size_t i = 0; o && i < spec->n_partitions; i++) {
                const nri_partition *p = &spec->partitions[i];
                char key[32];

                if (nri_spec_closure_key(p, key, sizeof(key)))
                        spec_json_add(b, o, key, strings(b, p->store_paths, p->n_store_paths));
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
static void add_builder(json_builder *b, cJSON *o, const nri_builder_ref *builder) {
        nri_arena *a;
        cJSON *args;

        if (!builder->bundle) {
                spec_json_add(b, o, "builder", spec_json_str(builder->program));
                return;
        }
        a = nri_arena_new();
        spec_json_add(b, o, "builder", spec_json_str(nri_printf(a, "%s/lib/ld.so", builder->bundle)));
        args = spec_json_add(b, o, "args", cJSON_CreateArray());
        spec_json_add(b, args, NULL, spec_json_str("--library-path"));
        spec_json_add(b, args, NULL, spec_json_str(nri_printf(a, "%s/lib", builder->bundle)));
        spec_json_add(b, args, NULL,
                      spec_json_str(nri_printf(a, "%s/bin/nix-repart-image-builder", builder->bundle)));
        spec_json_add(b, o, "repartBundle", spec_json_str(builder->bundle));
        nri_arena_free(a);
}

cJSON *nri_spec_derivation_json(const nri_spec *spec, const nri_builder_ref *builder, const char *system) {
        cJSON *o = cJSON_CreateObject();
        json_builder b = {0};

        spec_json_add(&b, o, "name", derivation_name(spec));
        spec_json_add(&b, o, "system", spec_json_str(system));
        add_builder(&b, o, builder);
        spec_json_add(&b, o, "__structuredAttrs", cJSON_CreateTrue());
        spec_json_add(&b, o, "exportReferencesGraph", references_graph(&b, spec));
        spec_json_add(&b, o, "repartSpec", nri_spec_to_json(spec));
        return spec_json_finish(&b, o);
}

cJSON *nri_spec_summary_json(const nri_spec *spec) {
        cJSON *o = cJSON_CreateObject(), *parts;
        json_builder b = {0};

        spec_json_add(&b, o, "diskUuid", spec_json_uuid(&spec->disk_uuid));
        spec_json_add(&b, o, "seed", spec_json_uuid(&spec->seed));
        spec_json_add(&b, o, "seedRandom", cJSON_CreateBool(spec->seed_random));
        spec_json_add(&b, o, "architecture", spec_json_str(nri_arch_to_string(spec->arch)));
        spec_json_add(&b, o, "imageFile", image_file(spec));
        parts = spec_json_add(&b, o, "partitions", cJSON_CreateObject());
        for (size_t i = 0; parts && i < spec->n_partitions; i++) {
                const nri_partition *p = &spec->partitions[i];
                cJSON *po = spec_json_add(&b, parts, p->id, spec_partition_json(&b, p, true));

                /* A Verity= pair's partition UUID is half of its root hash,
                 * known only once built: null, not a wrong value. */
                if (po && p->uuid_from_root_hash)
                        cJSON_ReplaceItemInObjectCaseSensitive(po, "uuid", cJSON_CreateNull());
        }
        return spec_json_finish(&b, o);
}
