/* output-json.h: repart-output.json.
 *
 * What `systemd-repart --json=pretty` 252 prints after building a fresh
 * image, byte for byte: an array with one object per partition in the table
 * (dropped ones are left out), keys in this order —
 *
 *   type, label, uuid, file, node, offset, old_size, raw_size,
 *   old_padding, raw_padding, activity
 *
 * — strings for the first five and for activity (always "create" for a new
 * image), numbers (bytes) for the rest, old_size and old_padding 0; tabs for
 * indentation, " : " between key and value, a newline at the end.  252 has
 * no "partno" and no "split_path" (later versions add the latter). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

typedef struct nri_output_part {
        const char *type;  /* the canonical type name ("root-x86-64", "esp"), or the GUID when it has none */
        const char *label; /* NULL or "" print as "-", as 252 prints a missing label */
        const char *uuid;  /* the partition UUID, lower case */
        const char *file;  /* the definition's file name, e.g. "root.conf" */
        uint64_t offset, size, padding;
        /* A Verity=hash partition's root hash, lower-case hex; NULL for the
         * others.  When any partition has one, every entry gets "roothash"
         * after "activity", null where there is none (252's table). */
        const char *roothash;
        /* A later systemd's "split_path", added after "activity" when not
         * NULL.  Leave NULL for 252's output. */
        const char *split_path;
} nri_output_part;

/* The array as a cJSON tree.  `image` is the image path as it was given to
 * systemd-repart ("image.raw"): each partition's "node" is libfdisk's name
 * for its partition number ("image.raw1", "disk0p1").  NULL when out of
 * memory. */
cJSON *nri_output_json_build(const char *image, const nri_output_part *parts, size_t n);

/* The tree printed as systemd's JSON_FORMAT_PRETTY|JSON_FORMAT_NEWLINE does
 * (objects, arrays, strings and non-negative integers, which is all the tree
 * above holds).  A malloc'd string, or NULL when out of memory or for a node
 * of another kind. */
char *nri_output_json_print(const cJSON *json);

/* Both steps, into the file `path` (created or truncated, mode 0644).  0, or
 * a negative errno. */
int nri_output_json_write(const char *path, const char *image, const nri_output_part *parts, size_t n);
