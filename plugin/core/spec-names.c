/* spec-names.c: the names a spec gives the files the builder writes: the
 * image's, and each split partition's (SplitName= expanded as
 * systemd-repart's split_name_printf() does it).  The evaluator checks the
 * names, the builder names its files with them: both make them here. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "nix-repart-image/macro.h"
#include "nix-repart-image/spec-rules.h"

#include "nix-repart-image/spec.h"
const char *nri_split_name_expand(nri_arena *a, const nri_partition *p, unsigned partno) {
        char buf[NRI_UUID_STRING_MAX];
        const char *out = "";

        if (!p->split_name)
                return NULL;
        for (const char *f = p->split_name; *f; f++) {
                const char *add;

                if (*f != '%' || !f[1]) {
                        out = nri_printf(a, "%s%c", out, *f);
                        continue;
                }
                switch (*++f) {
                case 't':
                        add = nri_part_type_display(&p->type, buf);
                        break;
                case 'T':
                case 'U': {
                        /* specifier_id128(): 32 hexadecimal digits, no dashes. */
                        const nri_uuid *u = *f == 'T' ? &p->type.uuid : &p->uuid;

                        for (int i = 0; i < 16; i++)
                                snprintf(buf + 2 * i, 3, "%02x", u->b[i]);
                        add = buf;
                        break;
                }
                case 'n':
                        snprintf(buf, sizeof(buf), "%u", partno);
                        add = buf;
                        break;
                default: /* "%%"; the evaluator refuses any other */
                        buf[0] = *f;
                        buf[1] = 0;
                        add = buf;
                        break;
                }
                out = nri_printf(a, "%s%s", out, add);
        }
        return out;
}

char *nri_spec_image_file_name(nri_arena *a, const nri_spec *spec) {
        if (spec->version)
                return nri_printf(a, "%s_%s.raw", spec->name, spec->version);
        return nri_printf(a, "%s.raw", spec->name);
}

int nri_split_names(nri_arena *a, const nri_spec *spec, const bool *dropped, const char **ret_names,
                    size_t *ret_partition, size_t *ret_other) {
        unsigned partno = 0;

        for (size_t i = 0; i < spec->n_partitions; i++) {
                const nri_partition *p = &spec->partitions[i];

                ret_names[i] = NULL;
                if (dropped && dropped[i])
                        continue;
                /* systemd-repart numbers the partitions of the table; %n is
                 * that number whether or not this one is split. */
                ret_names[i] = nri_split_name_expand(a, p, partno++);
                if (!ret_names[i])
                        continue;
                *ret_partition = i;
                if (strlen(ret_names[i]) > NRI_NAME_MAX)
                        return -ENAMETOOLONG;
                for (size_t j = 0; j < i; j++)
                        if (ret_names[j] && streq(ret_names[j], ret_names[i])) {
                                *ret_other = j;
                                return -EEXIST;
                        }
        }
        return 0;
}
