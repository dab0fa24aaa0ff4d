/* split-name.c: SplitName= expanded, as systemd-repart's split_name_printf()
 * does it: the evaluator checks the names are unique, the builder names the
 * split files with them, and both expand them here. */
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
