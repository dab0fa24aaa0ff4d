/* spec-fields.c: the spec's JSON contract (spec-json.h), both ways, from
 * one field table.
 *
 * Each row of fields_top[] and fields_partition[] is one key of repartSpec:
 * its name, where its value lives in nri_spec or nri_partition, and its
 * codec — the function that writes it (nri_spec_to_json(), for the
 * derivation) beside the one that reads it back (nri_spec_from_json(), in
 * the builder), as systemd's JSON dispatch tables pair a name with its
 * parser.  A field cannot be added on one side only, and the keys keep the
 * table's order (the derivation, and so its hash, depends on it).
 *
 * Reading checks every field's type and form, then nri_spec_check()
 * applies the evaluator's rules: a builder run by hand, or a spec from
 * another version of the plugin, fails with a message naming the field,
 * never with a wrong image.  Fields derived from others (imageFile, type,
 * vfatVolumeId, closure) are written for readers of the derivation; the
 * builder derives them again rather than trusting them (imageFile, where
 * given, must be what name and version make).
 *
 * cJSON reports a failed allocation by returning NULL; the writer collects
 * those in a flag so that a half-built object is never returned. */
#include "spec-fields.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nix-repart-image/macro.h"

/* ---- writing ------------------------------------------------------------ */

cJSON *spec_json_add(json_builder *b, cJSON *obj, const char *key, cJSON *item) {
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

cJSON *spec_json_str(const char *s) {
        return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

/* Sizes and counts stay below 2^53 (NRI_SIZE_LIMIT): exact as doubles. */
static cJSON *json_num(uint64_t v) {
        return cJSON_CreateNumber((double)v);
}

cJSON *spec_json_uuid(const nri_uuid *u) {
        char buf[NRI_UUID_STRING_MAX];

        nri_uuid_format(u, buf);
        return cJSON_CreateString(buf);
}

cJSON *spec_json_finish(json_builder *b, cJSON *o) {
        if (b->oom || !o) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct reader {
        nri_arena *a;
        nri_error *err;
        nri_spec *spec; /* being read: the architecture, for partitions' types */
        size_t index;   /* the partition being read */
} reader;

static int bad(reader *r, const char *path, const char *what) {
        return nri_fail(r->a, r->err, NULL, "repartSpec.%s: %s", path, what);
}

/* A whole number in [min, max]. */
static int read_number(reader *r, const cJSON *j, const char *path, double min, double max, double *ret) {
        /* The range first: converting a double outside int64_t's range (or
         * NaN) to int64_t is undefined behaviour (found by tests/fuzz).  min
         * and max are within ±2^53. */
        if (!cJSON_IsNumber(j) || !(j->valuedouble >= min && j->valuedouble <= max) ||
            j->valuedouble != (double)(int64_t)j->valuedouble)
                return bad(r, path, "expected a whole number in range");
        *ret = j->valuedouble;
        return 0;
}

static int read_string(reader *r, const cJSON *j, const char *path, bool nullable, const char **ret) {
        if (nullable && cJSON_IsNull(j)) {
                *ret = NULL;
                return 0;
        }
        if (!cJSON_IsString(j))
                return bad(r, path, nullable ? "expected a string or null" : "expected a string");
        *ret = nri_strdup(r->a, j->valuestring);
        return 0;
}

/* ---- the codecs --------------------------------------------------------- */

/* Where a field's value is: `obj` is the nri_spec or nri_partition. */
#define AT(type, obj, f) ((type *)((char *)(obj) + (f)->offset))
#define AT_CONST(type, obj, f) ((const type *)((const char *)(obj) + (f)->offset))

static cJSON *write_string(json_builder *b, const spec_field *f, const void *obj) {
        (void)b;
        return spec_json_str(*AT_CONST(const char *, obj, f));
}

static int read_string_field(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        return read_string(r, j, path, f->nullable, AT(const char *, obj, f));
}

static const field_codec STRING = {.write = write_string, .read = read_string_field};

static cJSON *write_bool(json_builder *b, const spec_field *f, const void *obj) {
        (void)b;
        return cJSON_CreateBool(*AT_CONST(bool, obj, f));
}

static int read_bool(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        (void)f;
        if (!cJSON_IsBool(j))
                return bad(r, path, "expected true or false");
        *AT(bool, obj, f) = cJSON_IsTrue(j);
        return 0;
}

static const field_codec BOOL = {.write = write_bool, .read = read_bool};

static cJSON *write_uuid(json_builder *b, const spec_field *f, const void *obj) {
        (void)b;
        return spec_json_uuid(AT_CONST(nri_uuid, obj, f));
}

static int read_uuid(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        const char *s = NULL;
        int k = read_string(r, j, path, false, &s);

        if (k < 0)
                return k;
        if (nri_uuid_parse(s, AT(nri_uuid, obj, f)) < 0)
                return bad(r, path, "expected a UUID");
        return 0;
}

static const field_codec UUID = {.write = write_uuid, .read = read_uuid};

/* A size in bytes, null when not set. */
static cJSON *write_size(json_builder *b, const spec_field *f, const void *obj) {
        uint64_t v = *AT_CONST(uint64_t, obj, f);

        (void)b;
        return v == NRI_SIZE_UNSET ? cJSON_CreateNull() : json_num(v);
}

static int read_size(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        double d = 0;
        int k;

        if (cJSON_IsNull(j)) {
                *AT(uint64_t, obj, f) = NRI_SIZE_UNSET;
                return 0;
        }
        k = read_number(r, j, path, 0, (double)NRI_SIZE_LIMIT, &d);
        if (k >= 0)
                *AT(uint64_t, obj, f) = (uint64_t)d;
        return k;
}

static const field_codec SIZE = {.write = write_size, .read = read_size};

/* Numbers of the partition in [f->min, f->max]. */
static cJSON *write_int32(json_builder *b, const spec_field *f, const void *obj) {
        (void)b;
        return cJSON_CreateNumber(*AT_CONST(int32_t, obj, f));
}

static int read_int32(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        double d = 0;
        int k = read_number(r, j, path, (double)f->min, (double)f->max, &d);

        if (k >= 0)
                *AT(int32_t, obj, f) = (int32_t)d;
        return k;
}

static const field_codec INT32 = {.write = write_int32, .read = read_int32};

static cJSON *write_uint32(json_builder *b, const spec_field *f, const void *obj) {
        (void)b;
        return json_num(*AT_CONST(uint32_t, obj, f));
}

static int read_uint32(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        double d = 0;
        int k = read_number(r, j, path, (double)f->min, (double)f->max, &d);

        if (k >= 0)
                *AT(uint32_t, obj, f) = (uint32_t)d;
        return k;
}

static const field_codec UINT32 = {.write = write_uint32, .read = read_uint32};

/* An enumeration by its name (string-table.h); f->nullable: NULL names
 * the value 0 (none) and is written as null. */
static cJSON *write_enum(json_builder *b, const spec_field *f, const void *obj) {
        (void)b;
        return spec_json_str(f->names->to_string(*AT_CONST(int, obj, f)));
}

static int read_enum(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        const char *s = NULL;
        int k = read_string(r, j, path, f->nullable, &s), v;

        if (k < 0)
                return k;
        v = s ? f->names->from_string(s) : 0;
        if (v < 0)
                return bad(r, path, f->unknown ? f->unknown : nri_printf(r->a, "unknown value \"%s\"", s));
        *AT(int, obj, f) = v;
        return 0;
}

static const field_codec ENUM = {.write = write_enum, .read = read_enum};

/* GPT attribute bits as hexadecimal text ("0x0", "0x800000000000000"): a
 * double cannot hold bit 63. */
static cJSON *write_flags(json_builder *b, const spec_field *f, const void *obj) {
        char buf[2 + 16 + 1];

        (void)b;
        snprintf(buf, sizeof(buf), "0x%" PRIx64, *AT_CONST(uint64_t, obj, f));
        return cJSON_CreateString(buf);
}

static int read_flags(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        const char *s = NULL;
        char *end;
        uint64_t v;
        int k = read_string(r, j, path, false, &s);

        if (k < 0)
                return k;
        if (strncmp(s, "0x", 2) != 0 || !s[2])
                return bad(r, path, "expected hexadecimal text 0x…");
        errno = 0;
        v = strtoull(s + 2, &end, 16);
        if (errno || *end)
                return bad(r, path, "expected hexadecimal text 0x…");
        *AT(uint64_t, obj, f) = v;
        return 0;
}

static const field_codec FLAGS = {.write = write_flags, .read = read_flags};

/* A list of absolute paths, its length at f->count. */
static cJSON *write_paths(json_builder *b, const spec_field *f, const void *obj) {
        const char *const *items = *AT_CONST(const char *const *, obj, f);
        size_t n = *(const size_t *)((const char *)obj + f->count);
        cJSON *arr = cJSON_CreateArray();

        for (size_t i = 0; arr && i < n; i++)
                spec_json_add(b, arr, NULL, cJSON_CreateString(items[i]));
        return arr;
}

static int read_paths(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        const char **items;
        const cJSON *e;
        size_t n = 0;

        if (!cJSON_IsArray(j))
                return bad(r, path, "expected a list of strings");
        items = nri_alloc(r->a, sizeof(*items) * (size_t)cJSON_GetArraySize(j));
        cJSON_ArrayForEach(e, j) {
                if (!cJSON_IsString(e) || e->valuestring[0] != '/')
                        return bad(r, path, "expected absolute paths");
                items[n++] = nri_strdup(r->a, e->valuestring);
        }
        *AT(const char **, obj, f) = items;
        *(size_t *)((char *)obj + f->count) = n;
        return 0;
}

static const field_codec PATHS = {.write = write_paths, .read = read_paths};

/* A list of { source, target }, its length at f->count. */
static cJSON *write_copies(json_builder *b, const spec_field *f, const void *obj) {
        const nri_copy *items = *AT_CONST(const nri_copy *, obj, f);
        size_t n = *(const size_t *)((const char *)obj + f->count);
        cJSON *arr = cJSON_CreateArray();

        for (size_t i = 0; arr && i < n; i++) {
                cJSON *o = spec_json_add(b, arr, NULL, cJSON_CreateObject());

                spec_json_add(b, o, "source", spec_json_str(items[i].source));
                spec_json_add(b, o, "target", spec_json_str(items[i].target));
        }
        return arr;
}

static int read_copies(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        const cJSON *e;
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
                k = read_string(r, cJSON_GetObjectItemCaseSensitive(e, "source"),
                                nri_printf(r->a, "%ssource", w), false, &c->source);
                if (k >= 0)
                        k = read_string(r, cJSON_GetObjectItemCaseSensitive(e, "target"),
                                        nri_printf(r->a, "%starget", w), false, &c->target);
                if (k < 0)
                        return k;
                if (c->source[0] != '/' || c->target[0] != '/')
                        return bad(r, path, "source and target must be absolute paths");
        }
        *AT(nri_copy *, obj, f) = items;
        *(size_t *)((char *)obj + f->count) = n;
        return 0;
}

static const field_codec COPIES = {.write = write_copies, .read = read_copies};

/* ---- fields of their own ------------------------------------------------ */

/* A field written for the derivation's readers and not read back: the
 * builder derives it again. */
static int read_derived(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        (void)r, (void)f, (void)j, (void)path, (void)obj;
        return 0;
}

/* partno: the partition's index, which the builder takes from the order. */
static cJSON *write_partno(json_builder *b, const spec_field *f, const void *obj) {
        (void)b, (void)f;
        return json_num(((const nri_partition *)obj)->partno);
}

static int read_partno(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        double d = 0;

        (void)f;
        ((nri_partition *)obj)->partno = (unsigned)r->index;
        return read_number(r, j, path, (double)r->index, (double)r->index, &d);
}

static const field_codec PARTNO = {.write = write_partno, .read = read_partno};

/* type: the canonical name, or the GUID (derived from typeUuid). */
static cJSON *write_type_name(json_builder *b, const spec_field *f, const void *obj) {
        char buf[NRI_UUID_STRING_MAX];

        (void)b, (void)f;
        return spec_json_str(nri_part_type_display(&((const nri_partition *)obj)->type, buf));
}

static const field_codec TYPE_NAME = {.write = write_type_name, .read = read_derived};

/* typeUuid: the type, resolved for the spec's architecture. */
static cJSON *write_type_uuid(json_builder *b, const spec_field *f, const void *obj) {
        (void)b, (void)f;
        return spec_json_uuid(&((const nri_partition *)obj)->type.uuid);
}

static int read_type_uuid(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        const char *s = NULL;
        int k = read_string(r, j, path, false, &s);

        (void)f;
        if (k < 0)
                return k;
        if (nri_part_type_resolve(s, r->spec->arch, &((nri_partition *)obj)->type) < 0)
                return bad(r, path, "expected a GUID");
        return 0;
}

static const field_codec TYPE_UUID = {.write = write_type_uuid, .read = read_type_uuid};

/* vfatVolumeId: for a file system that has a volume id, its 8 hex digits
 * (from fsUuid); absent otherwise. */
static cJSON *write_volume_id(json_builder *b, const spec_field *f, const void *obj) {
        const nri_partition *p = obj;
        const nri_fs_type *t = nri_fs_type_of(p->format);
        char buf[9];
        cJSON *v;

        (void)f;
        if (!t || !t->volume_id)
                return NULL;
        snprintf(buf, sizeof(buf), "%08" PRIx32, nri_uuid_vfat_volume_id(&p->fs_uuid));
        v = cJSON_CreateString(buf);
        if (!v)
                b->oom = true;
        return v;
}

static const field_codec VOLUME_ID = {.write = write_volume_id, .read = read_derived, .optional = true};

/* closure: the exportReferencesGraph key (derived from partno). */
static cJSON *write_closure(json_builder *b, const spec_field *f, const void *obj) {
        char key[32];

        (void)b, (void)f;
        return spec_json_str(nri_spec_closure_key(obj, key, sizeof(key)));
}

static const field_codec CLOSURE = {.write = write_closure, .read = read_derived};

static cJSON *write_spec_version(json_builder *b, const spec_field *f, const void *obj) {
        (void)b, (void)f, (void)obj;
        return json_num(NRI_SPEC_VERSION);
}

static int read_spec_version(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        double d = 0;
        int k = read_number(r, j, path, 0, 1e9, &d);

        (void)f, (void)obj;
        if (k < 0)
                return k;
        if (d != NRI_SPEC_VERSION)
                return bad(r, path,
                           nri_printf(r->a,
                                      "this builder reads version %d, the spec is version %.0f: use the "
                                      "builder of the same nix-repart-image as the plugin",
                                      NRI_SPEC_VERSION, d));
        return 0;
}

static const field_codec SPEC_VERSION = {.write = write_spec_version, .read = read_spec_version};

/* imageFile: what name and version make; where given, it must be that. */
static cJSON *write_image_file(json_builder *b, const spec_field *f, const void *obj) {
        nri_arena *a = nri_arena_new();
        cJSON *s = cJSON_CreateString(nri_spec_image_file_name(a, obj));

        (void)b, (void)f;
        nri_arena_free(a);
        return s;
}

static int read_image_file(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        (void)f;
        if (!j)
                return 0;
        if (!cJSON_IsString(j) || strcmp(j->valuestring, nri_spec_image_file_name(r->a, obj)) != 0)
                return bad(r, path, "expected the name and version's \"<name>[_<version>].raw\"");
        return 0;
}

static const field_codec IMAGE_FILE = {.write = write_image_file, .read = read_image_file};

/* seed: null when drawn at random at evaluation. */
static cJSON *write_seed(json_builder *b, const spec_field *f, const void *obj) {
        const nri_spec *s = obj;

        (void)b, (void)f;
        return s->seed_random ? cJSON_CreateNull() : spec_json_uuid(&s->seed);
}

static int read_seed(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        nri_spec *s = obj;

        s->seed_random = cJSON_IsNull(j);
        return s->seed_random ? 0 : read_uuid(r, f, j, path, obj);
}

static const field_codec SEED = {.write = write_seed, .read = read_seed};

/* sectorSize: 512, 1024, 2048 or 4096. */
static int read_sector_size(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        uint32_t *ss = AT(uint32_t, obj, f);
        int k = read_uint32(r, f, j, path, obj);

        if (k >= 0 && (*ss & (*ss - 1)))
                return bad(r, path, "expected 512, 1024, 2048 or 4096");
        return k;
}

static const field_codec SECTOR_SIZE = {.write = write_uint32, .read = read_sector_size};

/* compression: null, or { algorithm, level }. */
static cJSON *write_compression(json_builder *b, const spec_field *f, const void *obj) {
        const nri_spec *s = obj;
        cJSON *o;

        (void)f;
        if (s->compression == NRI_COMPRESSION_NONE)
                return cJSON_CreateNull();
        o = cJSON_CreateObject();
        spec_json_add(b, o, "algorithm", spec_json_str(nri_compression_to_string(s->compression)));
        spec_json_add(b, o, "level", cJSON_CreateNumber(s->compression_level));
        return o;
}

static int compression_from(const char *s) {
        return nri_compression_from_string(s);
}

static const char *compression_to(int v) {
        return nri_compression_to_string(v);
}

static int read_compression(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        static const string_table names = {.to_string = compression_to, .from_string = compression_from};
        const spec_field algorithm = {.name = "algorithm", .names = &names};
        nri_spec *s = obj;
        int alg = 0, k;
        double level = 0;

        (void)f;
        if (cJSON_IsNull(j)) {
                s->compression = NRI_COMPRESSION_NONE;
                return 0;
        }
        if (!cJSON_IsObject(j))
                return bad(r, path, "expected an object or null");
        k = read_enum(r, &algorithm, cJSON_GetObjectItemCaseSensitive(j, "algorithm"),
                      nri_printf(r->a, "%s.algorithm", path), &alg);
        if (k >= 0)
                k = read_number(r, cJSON_GetObjectItemCaseSensitive(j, "level"),
                                nri_printf(r->a, "%s.level", path), 0, 22, &level);
        if (k < 0)
                return k;
        s->compression = (nri_compression)alg;
        s->compression_level = (int)level;
        return 0;
}

static const field_codec COMPRESSION = {.write = write_compression, .read = read_compression};

/* partitions: a list of partition objects (fields_partition), empty for an
 * empty GPT. */
static cJSON *write_partitions(json_builder *b, const spec_field *f, const void *obj) {
        const nri_spec *s = obj;
        cJSON *arr = cJSON_CreateArray();

        (void)f;
        for (size_t i = 0; arr && i < s->n_partitions; i++)
                spec_json_add(b, arr, NULL, spec_partition_json(b, &s->partitions[i], false));
        return arr;
}

static int read_object(reader *r, const spec_field *fields, size_t n, const cJSON *o, const char *where,
                       void *obj);

static int read_partitions(reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj) {
        nri_spec *s = obj;
        const cJSON *e;

        (void)f;
        if (!cJSON_IsArray(j))
                return bad(r, path, "expected a list");
        s->n_partitions = (size_t)cJSON_GetArraySize(j);
        s->partitions = nri_alloc(r->a, sizeof(nri_partition) * s->n_partitions);
        r->index = 0;
        cJSON_ArrayForEach(e, j) {
                const char *w = nri_printf(r->a, "%s[%zu]", path, r->index);
                int k;

                if (!cJSON_IsObject(e))
                        return bad(r, w, "expected an object");
                k = read_object(r, spec_fields_partition, spec_n_fields_partition, e,
                                nri_printf(r->a, "%s.", w), &s->partitions[r->index]);
                if (k < 0)
                        return k;
                r->index++;
        }
        return 0;
}

static const field_codec PARTITIONS = {.write = write_partitions, .read = read_partitions};

/* ---- the tables --------------------------------------------------------- */

static int format_from(const char *s) {
        return nri_format_from_string(s);
}

static const char *format_to(int v) {
        return nri_format_to_string(v);
}

static int minimize_from(const char *s) {
        return nri_minimize_from_string(s);
}

static const char *minimize_to(int v) {
        return nri_minimize_to_string(v);
}

static int arch_from(const char *s) {
        return nri_arch_from_string(s);
}

static const char *arch_to(int v) {
        return nri_arch_to_string(v);
}

static int verity_from(const char *s) {
        return nri_verity_from_string(s);
}

static const char *verity_to(int v) {
        return nri_verity_to_string(v);
}

static const string_table verity_names = {.to_string = verity_to, .from_string = verity_from};
static const string_table format_names = {.to_string = format_to, .from_string = format_from};
static const string_table minimize_names = {.to_string = minimize_to, .from_string = minimize_from};
static const string_table arch_names = {.to_string = arch_to, .from_string = arch_from};

#define P(field) offsetof(nri_partition, field)
#define S(field) offsetof(nri_spec, field)

/* The keys of a partition, in the order they are written.  `summary`: also
 * what the result's `image.partitions.<id>` tells at evaluation. */
const spec_field spec_fields_partition[] = {
    {.name = "id", .codec = &STRING, .offset = P(id)},
    {.name = "partno", .codec = &PARTNO, .summary = true},
    {.name = "type", .codec = &TYPE_NAME, .summary = true},
    {.name = "typeUuid", .codec = &TYPE_UUID, .summary = true},
    {.name = "label", .codec = &STRING, .offset = P(label), .summary = true},
    {.name = "uuid", .codec = &UUID, .offset = P(uuid), .summary = true},
    {.name = "fsUuid", .codec = &UUID, .offset = P(fs_uuid), .summary = true},
    {.name = "vfatVolumeId", .codec = &VOLUME_ID, .summary = true},
    {.name = "priority", .codec = &INT32, .offset = P(priority), .min = INT32_MIN, .max = INT32_MAX},
    {.name = "weight", .codec = &UINT32, .offset = P(weight), .max = NRI_WEIGHT_MAX},
    {.name = "paddingWeight", .codec = &UINT32, .offset = P(padding_weight), .max = NRI_WEIGHT_MAX},
    {.name = "sizeMinBytes", .codec = &SIZE, .offset = P(size_min)},
    {.name = "sizeMaxBytes", .codec = &SIZE, .offset = P(size_max)},
    {.name = "paddingMinBytes", .codec = &SIZE, .offset = P(padding_min)},
    {.name = "paddingMaxBytes", .codec = &SIZE, .offset = P(padding_max)},
    {.name = "format", .codec = &ENUM, .offset = P(format), .names = &format_names, .nullable = true},
    {.name = "minimize", .codec = &ENUM, .offset = P(minimize), .names = &minimize_names},
    {.name = "readOnly", .codec = &BOOL, .offset = P(read_only)},
    {.name = "noAuto", .codec = &BOOL, .offset = P(no_auto)},
    {.name = "growFileSystem", .codec = &BOOL, .offset = P(grow_fs)},
    {.name = "flags", .codec = &FLAGS, .offset = P(flags), .summary = true},
    {.name = "splitName", .codec = &STRING, .offset = P(split_name), .nullable = true},
    {.name = "contents", .codec = &COPIES, .offset = P(contents), .count = P(n_contents)},
    {.name = "copyFiles", .codec = &COPIES, .offset = P(copy_files), .count = P(n_copy_files)},
    {.name = "makeDirectories",
     .codec = &PATHS,
     .offset = P(make_directories),
     .count = P(n_make_directories)},
    {.name = "storePaths", .codec = &PATHS, .offset = P(store_paths), .count = P(n_store_paths)},
    {.name = "closure", .codec = &CLOSURE},
    {.name = "nixStorePrefix", .codec = &STRING, .offset = P(nix_store_prefix)},
    {.name = "nixPathRegistration", .codec = &BOOL, .offset = P(nix_path_registration)},
    {.name = "deduplicateStore", .codec = &BOOL, .offset = P(deduplicate_store)},
    /* dm-verity (issue 14) */
    {.name = "verity", .codec = &ENUM, .offset = P(verity), .names = &verity_names},
    {.name = "verityMatchKey", .codec = &STRING, .offset = P(verity_match_key), .nullable = true},
    {.name = "verityDataBlockSize", .codec = &SIZE, .offset = P(verity_data_block_size)},
    {.name = "verityHashBlockSize", .codec = &SIZE, .offset = P(verity_hash_block_size)},
    {.name = "uuidFromRootHash", .codec = &BOOL, .offset = P(uuid_from_root_hash)},
    {.name = "copyBlocks", .codec = &STRING, .offset = P(copy_blocks), .nullable = true},
};
const size_t spec_n_fields_partition = ELEMENTSOF(spec_fields_partition);

/* The keys of repartSpec, in the order they are written; a field is read
 * after those above it (the partitions' types need the architecture,
 * imageFile the name and version). */
const spec_field spec_fields_top[] = {
    {.name = "specVersion", .codec = &SPEC_VERSION},
    {.name = "name", .codec = &STRING, .offset = S(name)},
    {.name = "version", .codec = &STRING, .offset = S(version), .nullable = true},
    {.name = "imageFile", .codec = &IMAGE_FILE},
    {.name = "seed", .codec = &SEED, .offset = S(seed)},
    {.name = "architecture",
     .codec = &ENUM,
     .offset = S(arch),
     .names = &arch_names,
     .unknown = "unknown architecture"},
    {.name = "sectorSize", .codec = &SECTOR_SIZE, .offset = S(sector_size), .min = 512, .max = 4096},
    {.name = "imageSize", .codec = &SIZE, .offset = S(image_size)},
    {.name = "split", .codec = &BOOL, .offset = S(split)},
    {.name = "compression", .codec = &COMPRESSION},
    {.name = "storeDir", .codec = &STRING, .offset = S(store_dir)},
    {.name = "diskUuid", .codec = &UUID, .offset = S(disk_uuid)},
    {.name = "partitions", .codec = &PARTITIONS},
};
const size_t spec_n_fields_top = ELEMENTSOF(spec_fields_top);

/* ---- both ways, by the tables ------------------------------------------- */

static void write_object(json_builder *b, cJSON *o, const spec_field *fields, size_t n, const void *obj,
                         bool summary) {
        for (size_t i = 0; o && i < n; i++) {
                cJSON *v;

                if (summary && !fields[i].summary)
                        continue;
                v = fields[i].codec->write(b, &fields[i], obj);
                if (v || !fields[i].codec->optional)
                        spec_json_add(b, o, fields[i].name, v);
        }
}

cJSON *spec_partition_json(json_builder *b, const nri_partition *p, bool summary) {
        cJSON *o = cJSON_CreateObject();

        write_object(b, o, spec_fields_partition, spec_n_fields_partition, p, summary);
        return o;
}

/* A key the table does not have is refused, not skipped: a spec from a
 * newer plugin (deduplicateStore, say) must not be built as if the
 * attribute were unset. */
static int check_known(reader *r, const spec_field *fields, size_t n, const cJSON *o, const char *where) {
        const cJSON *j;

        cJSON_ArrayForEach(j, o) {
                size_t i = 0;

                while (i < n && !(j->string && streq(j->string, fields[i].name)))
                        i++;
                if (i == n)
                        return bad(
                            r, nri_printf(r->a, "%s%s", where, j->string ? j->string : ""),
                            "unknown field: this builder does not know it (a spec from another version "
                            "of the plugin?)");
        }
        return 0;
}

static int read_object(reader *r, const spec_field *fields, size_t n, const cJSON *o, const char *where,
                       void *obj) {
        int k = check_known(r, fields, n, o, where);

        if (k < 0)
                return k;
        for (size_t i = 0; i < n; i++) {
                const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, fields[i].name);
                int k = fields[i].codec->read(r, &fields[i], j,
                                              nri_printf(r->a, "%s%s", where, fields[i].name), obj);

                if (k < 0)
                        return k;
        }
        return 0;
}

cJSON *nri_spec_to_json(const nri_spec *spec) {
        json_builder b = {0};
        cJSON *o = cJSON_CreateObject();

        write_object(&b, o, spec_fields_top, spec_n_fields_top, spec, false);
        return spec_json_finish(&b, o);
}

int nri_spec_from_json(nri_arena *a, const cJSON *json, nri_spec **ret, nri_error *err) {
        nri_spec *s = nri_alloc(a, sizeof(*s));
        reader r = {.a = a, .err = err, .spec = s};
        int k;

        if (!cJSON_IsObject(json))
                return bad(&r, "", "expected an object");
        k = read_object(&r, spec_fields_top, spec_n_fields_top, json, "", s);
        if (k < 0)
                return k;
        k = nri_spec_check(a, s, err);
        if (k < 0)
                return k;
        *ret = s;
        return 0;
}
