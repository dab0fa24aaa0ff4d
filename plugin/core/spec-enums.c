/* spec-enums.c: the spec's enumerations as the text that names them in an
 * expression and in the JSON (string-table.h), written once for the
 * evaluator, the JSON writer and reader, and the builder. */
#include "nix-repart-image/spec.h"
#include "nix-repart-image/string-table.h"

static const char *const nri_minimize_table[_NRI_MINIMIZE_MAX] = {
    [NRI_MINIMIZE_OFF] = "off",
    [NRI_MINIMIZE_BEST] = "best",
    [NRI_MINIMIZE_GUESS] = "guess",
};
NRI_DEFINE_STRING_TABLE_LOOKUP(nri_minimize, nri_minimize);

static const char *const nri_verity_table[_NRI_VERITY_MAX] = {
    [NRI_VERITY_OFF] = "off",
    [NRI_VERITY_DATA] = "data",
    [NRI_VERITY_HASH] = "hash",
};
NRI_DEFINE_STRING_TABLE_LOOKUP(nri_verity, nri_verity);

static const char *const nri_compression_table[_NRI_COMPRESSION_MAX] = {
    [NRI_COMPRESSION_ZSTD] = "zstd",
    [NRI_COMPRESSION_XZ] = "xz",
};
NRI_DEFINE_STRING_TABLE_LOOKUP(nri_compression, nri_compression);

/* Levels as the zstd and xz programs take them (zstd's 20-22 need
 * --ultra); the defaults are NixOS's. */
static const struct {
        int min, max, def;
} compression_levels[_NRI_COMPRESSION_MAX] = {
    [NRI_COMPRESSION_ZSTD] = {1, 19, 3},
    [NRI_COMPRESSION_XZ] = {0, 9, 3},
};

int nri_compression_levels(nri_compression alg, int *ret_min, int *ret_max, int *ret_default) {
        if ((int)alg <= NRI_COMPRESSION_NONE || alg >= _NRI_COMPRESSION_MAX)
                return -EINVAL;
        if (ret_min)
                *ret_min = compression_levels[alg].min;
        if (ret_max)
                *ret_max = compression_levels[alg].max;
        if (ret_default)
                *ret_default = compression_levels[alg].def;
        return 0;
}
