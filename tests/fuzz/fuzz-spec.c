/* Fuzz target: the builder's reader of the repartSpec object (the
 * .attrs.json the derivation gets), nri_spec_from_json, and what the builder
 * does next with a spec it accepts: the layout arithmetic and the JSON form
 * again.  Input: any bytes, taken as JSON; a top-level object with a
 * repartSpec member (a whole .attrs.json) is read from that member.
 *
 * Built with libFuzzer (tests/fuzz/run) or with driver.c, which replays a
 * corpus (the meson test fuzz-corpus). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "nix-repart-image/arena.h"
#include "nix-repart-image/layout.h"
#include "nix-repart-image/spec-json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        cJSON *j = cJSON_ParseWithLength((const char *)data, size);
        if (!j)
                return 0;
        const cJSON *spec_json = cJSON_GetObjectItemCaseSensitive(j, "repartSpec");
        if (!spec_json)
                spec_json = j;

        nri_arena *a = nri_arena_new();
        nri_spec *spec = NULL;
        nri_error error = {0};
        if (nri_spec_from_json(a, spec_json, &spec, &error) == 0) {
                /* The builder's next step: lay the partitions out. */
                size_t n = spec->n_partitions;
                nri_layout_part *parts = calloc(n ? n : 1, sizeof(*parts));
                for (size_t i = 0; i < n; i++) {
                        parts[i] = nri_spec_layout_part(&spec->partitions[i]);
                        /* The split file's name: never one with a '/'. */
                        const char *split = nri_split_name_expand(a, &spec->partitions[i], (unsigned)i);
                        if (split && strchr(split, '/'))
                                abort();
                }
                nri_layout_disk disk;
                size_t failed;
                (void)nri_layout_compute(parts, n, spec->sector_size, spec->image_size, &disk, &failed, a,
                                         NULL);
                free(parts);

                /* And the spec written back must be readable again. */
                cJSON *again = nri_spec_to_json(spec);
                if (again) {
                        nri_spec *spec2 = NULL;
                        if (nri_spec_from_json(a, again, &spec2, &error) != 0)
                                abort(); /* what we write, we must read */
                        cJSON_Delete(again);
                }
        } else if (!error.message) {
                abort(); /* a refusal always says why */
        }
        nri_arena_free(a);
        cJSON_Delete(j);
        return 0;
}
