/* file-systems.c: the facts of the file-system table (file-systems.h) and
 * the names made from it. */
#include "nix-repart-image/file-systems.h"

#include "nix-repart-image/fat-names.h"
#include "nix-repart-image/labels.h"
#include "nix-repart-image/macro.h"

/* mke2fs makes /lost+found (16 KiB, mode 0700) before anything is copied. */
const char *const nri_ext4_existing[] = {"/lost+found", NULL};

#define NRI_FS_FACTS_(id, stem, ...) [NRI_FORMAT_##id] = {.name = #stem, __VA_ARGS__},
static const nri_fs_type fs_types[_NRI_FORMAT_MAX] = {NRI_FILE_SYSTEMS(NRI_FS_FACTS_)};

const nri_fs_type *nri_fs_type_of(nri_format f) {
        if ((int)f <= NRI_FORMAT_NONE || f >= _NRI_FORMAT_MAX)
                return NULL;
        return &fs_types[f];
}

/* The same names, as a string table (string-table.h). */
#define NRI_FS_NAME_(id, stem, ...) [NRI_FORMAT_##id] = #stem,
static const char *const nri_format_table[_NRI_FORMAT_MAX] = {NRI_FILE_SYSTEMS(NRI_FS_NAME_)};
NRI_DEFINE_STRING_TABLE_LOOKUP(nri_format, nri_format);

static const char *format_names(nri_arena *a, const char *quote, const char *last) {
        const char *s = "";

        for (int f = NRI_FORMAT_NONE + 1; f < _NRI_FORMAT_MAX; f++)
                s = nri_printf(a, "%s%s%s%s%s", s,
                               f == NRI_FORMAT_NONE + 1   ? ""
                               : f + 1 == _NRI_FORMAT_MAX ? last
                                                          : ", ",
                               quote, fs_types[f].name, quote);
        return s;
}

const char *nri_format_names(nri_arena *a, const char *last) {
        return format_names(a, "", last);
}

const char *nri_format_names_code(nri_arena *a) {
        return format_names(a, "`", ", ");
}

uint64_t nri_format_min_size(nri_format f) {
        const nri_fs_type *t = nri_fs_type_of(f);

        return t ? t->min_size : 0;
}
