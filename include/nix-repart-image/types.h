/* types.h: GPT partition types of the Discoverable Partitions Specification,
 * resolved as systemd-repart 252 resolves `Type=`. */
#pragma once

#include <errno.h>
#include <stdbool.h>

#include "string-table.h"
#include "uuid.h"

typedef enum nri_arch {
        NRI_ARCH_X86_64,
        NRI_ARCH_ARM64,
        _NRI_ARCH_MAX,
        _NRI_ARCH_INVALID = -EINVAL,
} nri_arch;

/* "x86-64", "arm64" (systemd's architecture names). */
NRI_DECLARE_STRING_TABLE_LOOKUP(nri_arch, nri_arch);
/* From Nix's system string: "x86_64-linux" → x86-64, "aarch64-linux" →
 * arm64; _NRI_ARCH_INVALID for any other. */
nri_arch nri_arch_from_nix_system(const char *system);

typedef struct nri_part_type {
        nri_uuid uuid;
        /* The canonical name ("root-x86-64", "esp"), or NULL for a literal
         * GUID the table does not know. */
        const char *name;
        /* GPT attribute bits this type gives a meaning to (systemd's
         * gpt_partition_type_knows_read_only/growfs/no_auto). */
        bool knows_read_only, knows_growfs, knows_no_auto;
        /* GrowFileSystem= defaults to on for this type (when not read-only). */
        bool growfs_by_default;
} nri_part_type;

/* Resolves "root" (the architecture's root), "root-arm64", "esp",
 * "linux-generic", … or a literal GUID.  0 or -EINVAL. */
int nri_part_type_resolve(const char *s, nri_arch arch, nri_part_type *ret);

/* The name used for repart-output.json's `type`: the canonical name, else
 * the GUID as text (systemd's gpt_partition_type_uuid_to_string_harder).
 * The default label is t->name too, but "linux" for a type without a name
 * (systemd-repart 252's partition_acquire_label), not the GUID. */
const char *nri_part_type_display(const nri_part_type *t, char buf[NRI_UUID_STRING_MAX]);

/* For error messages: the symbolic names accepted for arch, comma-separated. */
const char *nri_part_type_names(nri_arch arch);

/* GPT attribute bits (UEFI 2.x and the Discoverable Partitions Spec). */
#define NRI_GPT_FLAG_REQUIRED_PARTITION (UINT64_C(1) << 0)
#define NRI_GPT_FLAG_NO_BLOCK_IO_PROTOCOL (UINT64_C(1) << 1)
#define NRI_GPT_FLAG_LEGACY_BIOS_BOOTABLE (UINT64_C(1) << 2)
#define NRI_GPT_FLAG_GROWFS (UINT64_C(1) << 59)
#define NRI_GPT_FLAG_READ_ONLY (UINT64_C(1) << 60)
#define NRI_GPT_FLAG_NO_AUTO (UINT64_C(1) << 63)
