/* spec-names.c: the names a spec gives the files the builder writes: the
 * image's, and each split partition's (SplitName= expanded as
 * systemd-repart's split_name_printf() does it).  The evaluator checks the
 * names, the builder names its files with them: both make them here. */
#include <stdio.h>

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
