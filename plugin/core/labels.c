/* labels.c: a partition's label in the GPT and in a FAT file system.  One
 * rule for both halves: the evaluator refuses what the builder could not
 * write. */
#include "nix-repart-image/labels.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nix-repart-image/file-systems.h"
#include "nix-repart-image/macro.h"
#include "nix-repart-image/spec-rules.h"
#include "nix-repart-image/utf8.h"

const char *nri_gpt_label_problem(const char *label) {
        size_t units = 0;

        for (const char *p = label; *p;) {
                uint32_t c;
                int l = nri_utf8_next(p, &c);

                if (l < 0)
                        return "is not valid UTF-8";
                if (c > 0xffff)
                        return "has a character outside the Basic Multilingual Plane, which a GPT partition "
                               "name cannot hold here (libfdisk, as systemd-repart, would write an empty "
                               "name)";
                units++;
                p += l;
        }
        if (units > NRI_GPT_LABEL_MAX_UTF16)
                return "is longer than the 36 UTF-16 units a GPT partition name holds";
        return NULL;
}

int nri_vfat_mangle_label(const char *label, char **ret) {
        size_t n = 0;
        char *q;

        q = malloc(strlen(label) + sizeof("NO NAME"));
        if (!q)
                return -ENOMEM;
        for (const char *p = label; *p;) {
                uint32_t c;
                int l = nri_utf8_next(p, &c);

                if (l < 0) {
                        free(q);
                        return -EINVAL;
                }
                q[n++] = l == 1 ? *p : '_';
                p += l;
        }
        if (n > 11)
                n = 11;
        q[n] = '\0';
        for (char *p = q; *p; p++) {
                if (*p >= 'a' && *p <= 'z')
                        *p = (char)(*p - 'a' + 'A');
                if (strchr("*?.,;:/\\|+=<>[]\"", *p) || (unsigned char)*p < ' ' || *p == 127)
                        *p = '_';
        }
        if (n == 0)
                strcpy(q, "NO NAME");
        *ret = q;
        return 0;
}

const char *nri_vfat_label_problem(const char *mangled) {
        if (mangled[0] == ' ')
                return "starts with a space (mkfs.vfat refuses such a label)";
        return NULL;
}

const char *nri_fat_label_problem(nri_arena *a, const char *label) {
        _cleanup_free_ char *fat = NULL;
        const char *why;

        if (nri_vfat_mangle_label(label, &fat) < 0)
                return "cannot be a FAT label";
        why = nri_vfat_label_problem(fat);
        if (!why)
                return NULL;
        return nri_printf(a,
                          "is the FAT label %s (FAT keeps 11 upper-case ASCII characters, as systemd-repart "
                          "makes them), which %s",
                          nri_quote(a, fat), why);
}

/* systemd-repart cuts a swap label to 15 bytes of whole characters
 * (mangle_linux_fs_label()); an image built far from anyone who would notice
 * the cut refuses it instead, as it refuses FAT labels it cannot keep. */
const char *nri_swap_label_problem(nri_arena *a, const char *label) {
        size_t n = strlen(label);

        if (n <= NRI_SWAP_LABEL_MAX)
                return NULL;
        return nri_printf(a,
                          "has %zu bytes and a swap area's label holds at most %d (systemd-repart would cut "
                          "it); set a shorter Label",
                          n, NRI_SWAP_LABEL_MAX);
}
