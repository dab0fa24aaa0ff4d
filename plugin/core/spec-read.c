/* spec-read.c: the builder's side of the contract — repartSpec (JSON, as
 * spec-json.c writes it) back into an nri_spec.
 *
 * The evaluator has validated everything already; this reader still checks
 * every field's type and form, because a builder run by hand, or a spec from
 * another version of the plugin, must fail with a message naming the field,
 * never with a wrong image. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "nix-repart-image/spec-json.h"

typedef struct reader {
        nri_arena *a;
        nri_error *err;
} reader;

static int bad(reader *r, const char *where, const char *what) {
        return nri_fail(r->a, r->err, NULL, "repartSpec.%s: %s", where, what);
}

static const cJSON *field(const cJSON *o, const char *name) {
        return cJSON_GetObjectItemCaseSensitive(o, name);
}

static int get_string(reader *r, const cJSON *o, const char *where, const char *name, bool nullable,
                      const char **ret) {
        const cJSON *j = field(o, name);
        const char *path = nri_printf(r->a, "%s%s", where, name);

        if (nullable && cJSON_IsNull(j)) {
                *ret = NULL;
                return 0;
        }
        if (!cJSON_IsString(j))
                return bad(r, path, nullable ? "expected a string or null" : "expected a string");
        *ret = nri_strdup(r->a, j->valuestring);
        return 0;
}

static int get_bool(reader *r, const cJSON *o, const char *where, const char *name, bool *ret) {
        const cJSON *j = field(o, name);

        if (!cJSON_IsBool(j))
                return bad(r, nri_printf(r->a, "%s%s", where, name), "expected true or false");
        *ret = cJSON_IsTrue(j);
        return 0;
}

/* A whole number in [min, max]. */
static int get_int(reader *r, const cJSON *o, const char *where, const char *name, double min, double max,
                   double *ret) {
        const cJSON *j = field(o, name);

        /* The range first: converting a double outside int64_t's range (or
         * NaN) to int64_t is undefined behaviour (found by tests/fuzz).  min
         * and max are within ±2^53. */
        if (!cJSON_IsNumber(j) || !(j->valuedouble >= min && j->valuedouble <= max) ||
            j->valuedouble != (double)(int64_t)j->valuedouble)
                return bad(r, nri_printf(r->a, "%s%s", where, name), "expected a whole number in range");
        *ret = j->valuedouble;
        return 0;
}

static int get_size(reader *r, const cJSON *o, const char *where, const char *name, uint64_t *ret) {
        double d;
        int k;

        if (cJSON_IsNull(field(o, name))) {
                *ret = NRI_SIZE_UNSET;
                return 0;
        }
        k = get_int(r, o, where, name, 0, (double)NRI_SIZE_LIMIT, &d);
        if (k < 0)
                return k;
        *ret = (uint64_t)d;
        return 0;
}

static int get_uuid(reader *r, const cJSON *o, const char *where, const char *name, nri_uuid *ret) {
        const char *s;
        int k = get_string(r, o, where, name, false, &s);

        if (k < 0)
                return k;
        if (nri_uuid_parse(s, ret) < 0)
                return bad(r, nri_printf(r->a, "%s%s", where, name), "expected a UUID");
        return 0;
}

static int get_strings(reader *r, const cJSON *o, const char *where, const char *name, const char ***ret,
                       size_t *ret_n) {
        const cJSON *j = field(o, name), *e;
        const char **items;
        size_t n = 0;

        if (!cJSON_IsArray(j))
                return bad(r, nri_printf(r->a, "%s%s", where, name), "expected a list of strings");
        items = nri_alloc(r->a, sizeof(*items) * (size_t)cJSON_GetArraySize(j));
        cJSON_ArrayForEach(e, j) {
                if (!cJSON_IsString(e) || e->valuestring[0] != '/')
                        return bad(r, nri_printf(r->a, "%s%s", where, name), "expected absolute paths");
                items[n++] = nri_strdup(r->a, e->valuestring);
        }
        *ret = items;
        *ret_n = n;
        return 0;
}

static int get_copies(reader *r, const cJSON *o, const char *where, const char *name, nri_copy **ret,
                      size_t *ret_n) {
        const cJSON *j = field(o, name), *e;
        const char *path = nri_printf(r->a, "%s%s", where, name);
        nri_copy *items;
        size_t n = 0;

        if (!cJSON_IsArray(j))
                return bad(r, path, "expected a list of { source, target }");
        items = nri_alloc(r->a, sizeof(*items) * (size_t)cJSON_GetArraySize(j));
        cJSON_ArrayForEach(e, j) {
                const char *w = nri_printf(r->a, "%s[%zu].", path, n);
                nri_copy *c = &items[n++];
                int k;

                if (!cJSON_IsObject(e))
                        return bad(r, path, "expected a list of { source, target }");
                k = get_string(r, e, w, "source", false, &c->source);
                if (k >= 0)
                        k = get_string(r, e, w, "target", false, &c->target);
                if (k < 0)
                        return k;
                if (c->source[0] != '/' || c->target[0] != '/')
                        return bad(r, path, "source and target must be absolute paths");
        }
        *ret = items;
        *ret_n = n;
        return 0;
}

static int get_flags(reader *r, const cJSON *o, const char *where, uint64_t *ret) {
        const char *s, *end;
        int k = get_string(r, o, where, "flags", false, &s);
        uint64_t v;

        if (k < 0)
                return k;
        if (strncmp(s, "0x", 2) != 0 || !s[2])
                return bad(r, nri_printf(r->a, "%sflags", where), "expected hexadecimal text 0x…");
        errno = 0;
        v = strtoull(s + 2, (char **)&end, 16);
        if (errno || *end)
                return bad(r, nri_printf(r->a, "%sflags", where), "expected hexadecimal text 0x…");
        *ret = v;
        return 0;
}

/* A name of an enumeration (string-table.h); null for nullable ones is
 * `null_value`. */
static int get_enum(reader *r, const cJSON *o, const char *where, const char *name, bool nullable,
                    int null_value, int (*from_string)(const char *), int *ret) {
        const char *s;
        int k = get_string(r, o, where, name, nullable, &s), v;

        if (k < 0)
                return k;
        v = s ? from_string(s) : null_value;
        if (v < 0)
                return bad(r, nri_printf(r->a, "%s%s", where, name),
                           nri_printf(r->a, "unknown value \"%s\"", s));
        *ret = v;
        return 0;
}

static int format_from(const char *s) {
        return nri_format_from_string(s);
}

static int minimize_from(const char *s) {
        return nri_minimize_from_string(s);
}

static int compression_from(const char *s) {
        return nri_compression_from_string(s);
}

static int read_type(reader *r, const cJSON *o, const char *where, nri_arch arch, nri_part_type *ret) {
        const char *s;
        int k = get_string(r, o, where, "typeUuid", false, &s);

        if (k < 0)
                return k;
        if (nri_part_type_resolve(s, arch, ret) < 0)
                return bad(r, nri_printf(r->a, "%stypeUuid", where), "expected a GUID");
        return 0;
}

static int read_partition(reader *r, const cJSON *o, size_t i, nri_arch arch, nri_partition *p) {
        const char *w = nri_printf(r->a, "partitions[%zu].", i);
        double d;
        int format = 0, minimize = 0, k;

        if (!cJSON_IsObject(o))
                return bad(r, nri_printf(r->a, "partitions[%zu]", i), "expected an object");
        k = get_string(r, o, w, "id", false, &p->id);
        if (k >= 0)
                k = get_int(r, o, w, "partno", i, i, &d);
        p->partno = (unsigned)i;
        if (k >= 0)
                k = read_type(r, o, w, arch, &p->type);
        if (k >= 0)
                k = get_string(r, o, w, "label", false, &p->label);
        if (k >= 0)
                k = get_uuid(r, o, w, "uuid", &p->uuid);
        if (k >= 0)
                k = get_uuid(r, o, w, "fsUuid", &p->fs_uuid);
        if (k >= 0)
                k = get_int(r, o, w, "priority", INT32_MIN, INT32_MAX, &d);
        p->priority = (int32_t)d;
        if (k >= 0)
                k = get_int(r, o, w, "weight", 0, NRI_WEIGHT_MAX, &d);
        p->weight = (uint32_t)d;
        if (k >= 0)
                k = get_int(r, o, w, "paddingWeight", 0, NRI_WEIGHT_MAX, &d);
        p->padding_weight = (uint32_t)d;
        if (k >= 0)
                k = get_size(r, o, w, "sizeMinBytes", &p->size_min);
        if (k >= 0)
                k = get_size(r, o, w, "sizeMaxBytes", &p->size_max);
        if (k >= 0)
                k = get_size(r, o, w, "paddingMinBytes", &p->padding_min);
        if (k >= 0)
                k = get_size(r, o, w, "paddingMaxBytes", &p->padding_max);
        if (k >= 0)
                k = get_enum(r, o, w, "format", true, NRI_FORMAT_NONE, format_from, &format);
        p->format = (nri_format)format;
        if (k >= 0)
                k = get_enum(r, o, w, "minimize", false, 0, minimize_from, &minimize);
        p->minimize = (nri_minimize)minimize;
        if (k >= 0)
                k = get_bool(r, o, w, "readOnly", &p->read_only);
        if (k >= 0)
                k = get_bool(r, o, w, "noAuto", &p->no_auto);
        if (k >= 0)
                k = get_bool(r, o, w, "growFileSystem", &p->grow_fs);
        if (k >= 0)
                k = get_flags(r, o, w, &p->flags);
        if (k >= 0)
                k = get_string(r, o, w, "splitName", true, &p->split_name);
        if (k >= 0)
                k = get_copies(r, o, w, "contents", &p->contents, &p->n_contents);
        if (k >= 0)
                k = get_copies(r, o, w, "copyFiles", &p->copy_files, &p->n_copy_files);
        if (k >= 0)
                k = get_strings(r, o, w, "makeDirectories", &p->make_directories, &p->n_make_directories);
        if (k >= 0)
                k = get_strings(r, o, w, "storePaths", &p->store_paths, &p->n_store_paths);
        if (k >= 0)
                k = get_string(r, o, w, "nixStorePrefix", false, &p->nix_store_prefix);
        return k;
}

static int read_compression(reader *r, const cJSON *o, nri_spec *s) {
        const cJSON *c = field(o, "compression");
        int algorithm = 0, k;
        double level;

        if (cJSON_IsNull(c)) {
                s->compression = NRI_COMPRESSION_NONE;
                return 0;
        }
        if (!cJSON_IsObject(c))
                return bad(r, "compression", "expected an object or null");
        k = get_enum(r, c, "compression.", "algorithm", false, 0, compression_from, &algorithm);
        if (k >= 0)
                k = get_int(r, c, "compression.", "level", 0, 22, &level);
        if (k < 0)
                return k;
        s->compression = (nri_compression)algorithm;
        s->compression_level = (int)level;
        return 0;
}

/* imageFile, where given, is what the name and version make. */
static int read_image_file(reader *r, const cJSON *o, const nri_spec *s) {
        const cJSON *j = field(o, "imageFile");

        if (!j)
                return 0;
        if (!cJSON_IsString(j) || strcmp(j->valuestring, nri_spec_image_file_name(r->a, s)) != 0)
                return bad(r, "imageFile", "expected the name and version's \"<name>[_<version>].raw\"");
        return 0;
}

static int read_spec(reader *r, const cJSON *o, nri_spec *s) {
        const cJSON *parts, *e;
        const char *arch;
        double d;
        size_t i = 0;
        int k;

        if (!cJSON_IsObject(o))
                return bad(r, "", "expected an object");
        k = get_int(r, o, "", "specVersion", 0, 1e9, &d);
        if (k < 0)
                return k;
        if (d != NRI_SPEC_VERSION)
                return bad(r, "specVersion",
                           nri_printf(r->a,
                                      "this builder reads version %d, the spec is version %.0f: use the "
                                      "builder of the same nix-repart-image as the plugin",
                                      NRI_SPEC_VERSION, d));
        k = get_string(r, o, "", "name", false, &s->name);
        if (k >= 0)
                k = get_string(r, o, "", "version", true, &s->version);
        if (k >= 0)
                k = read_image_file(r, o, s);
        if (k >= 0)
                k = get_string(r, o, "", "architecture", false, &arch);
        if (k < 0)
                return k;
        s->arch = nri_arch_from_string(arch);
        if (s->arch < 0)
                return bad(r, "architecture", "unknown architecture");
        s->seed_random = cJSON_IsNull(field(o, "seed"));
        if (!s->seed_random)
                k = get_uuid(r, o, "", "seed", &s->seed);
        if (k >= 0)
                k = get_int(r, o, "", "sectorSize", 512, 4096, &d);
        s->sector_size = (uint32_t)d;
        if (k >= 0 && (s->sector_size & (s->sector_size - 1)))
                return bad(r, "sectorSize", "expected 512, 1024, 2048 or 4096");
        if (k >= 0)
                k = get_size(r, o, "", "imageSize", &s->image_size);
        if (k >= 0)
                k = get_bool(r, o, "", "split", &s->split);
        if (k >= 0)
                k = read_compression(r, o, s);
        if (k >= 0)
                k = get_string(r, o, "", "storeDir", false, &s->store_dir);
        if (k >= 0)
                k = get_uuid(r, o, "", "diskUuid", &s->disk_uuid);
        if (k < 0)
                return k;

        parts = field(o, "partitions");
        if (!cJSON_IsArray(parts) || cJSON_GetArraySize(parts) == 0)
                return bad(r, "partitions", "expected a non-empty list");
        s->n_partitions = (size_t)cJSON_GetArraySize(parts);
        s->partitions = nri_alloc(r->a, sizeof(nri_partition) * s->n_partitions);
        cJSON_ArrayForEach(e, parts) {
                k = read_partition(r, e, i, s->arch, &s->partitions[i]);
                if (k < 0)
                        return k;
                i++;
        }
        return 0;
}

int nri_spec_from_json(nri_arena *a, const cJSON *json, nri_spec **ret, nri_error *err) {
        reader r = {.a = a, .err = err};
        nri_spec *s = nri_alloc(a, sizeof(*s));
        int k = read_spec(&r, json, s);

        if (k < 0)
                return k;
        k = nri_spec_check(a, s, err);
        if (k < 0)
                return k;
        *ret = s;
        return 0;
}
