/* spec-fields.h: the field tables of the spec's JSON (spec-fields.c),
 * for spec-json.c, which writes the derivation and the summary with them.
 * Private to plugin/core/. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "nix-repart-image/spec-json.h"

/* A JSON object being built: cJSON returns NULL when out of memory, which
 * sets `oom` instead of being checked at every field. */
typedef struct json_builder {
        bool oom;
} json_builder;

/* Adds `item` to the object (under `key`) or array (`key` NULL); on
 * failure frees it and sets b->oom.  Returns item or NULL. */
cJSON *spec_json_add(json_builder *b, cJSON *obj, const char *key, cJSON *item);
cJSON *spec_json_str(const char *s); /* NULL: null */
cJSON *spec_json_uuid(const nri_uuid *u);
/* `o`, or NULL (and `o` freed) when anything ran out of memory. */
cJSON *spec_json_finish(json_builder *b, cJSON *o);

/* An enumeration's names (string-table.h), as ints. */
typedef struct string_table {
        const char *(*to_string)(int v);
        int (*from_string)(const char *s);
} string_table;

typedef struct spec_field spec_field;
struct reader;

/* How a field is written and read back: the two directions of one key,
 * side by side. */
typedef struct field_codec {
        /* The value of the field of `obj` (an nri_spec or nri_partition);
         * NULL for an `optional` field that is absent. */
        cJSON *(*write)(json_builder *b, const spec_field *f, const void *obj);
        /* Reads `j` (NULL when the key is absent) into `obj`; `path` names
         * the field in messages.  0 or -EINVAL. */
        int (*read)(struct reader *r, const spec_field *f, const cJSON *j, const char *path, void *obj);
        /* The key is left out when write() returns NULL. */
        bool optional;
} field_codec;

struct spec_field {
        const char *name;
        const field_codec *codec;
        size_t offset;             /* of the value in nri_spec or nri_partition */
        size_t count;              /* lists: the offset of their length */
        int64_t min, max;          /* numbers */
        const string_table *names; /* enumerations */
        const char *unknown;       /* enumerations: the message for a name not in `names` */
        bool nullable;             /* strings and enumerations: null is a value */
        bool summary;              /* partitions: in nri_spec_summary_json() too */
};

extern const spec_field spec_fields_top[], spec_fields_partition[];
extern const size_t spec_n_fields_top, spec_n_fields_partition;

/* A partition as the spec holds it, or (summary) only the fields the
 * evaluation result tells. */
cJSON *spec_partition_json(json_builder *b, const nri_partition *p, bool summary);
