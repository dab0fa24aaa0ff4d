/* test-vfat-geometry.c: a FAT's layout (vfat-geometry.h) as mkfs.vfat 4.2
 * makes it for the sizes systemd-repart 252 formats, and the FAT label
 * systemd-repart makes of a partition's; pure arithmetic, no tools (the
 * layout is compared with mkfs.vfat's own in test-vfat.c, and fuzzed by
 * tests/fuzz/fuzz-vfat.c). */
#include <errno.h>
#include <stdlib.h>

#include "check.h"
#include "nix-repart-image/labels.h"
#include "vfat-geometry.h"

#define MiB (UINT64_C(1024) * 1024)

static void test_label(void) {
        char *l = NULL;

        CHECK(nri_vfat_mangle_label("esp", &l) == 0);
        CHECK_STR(l, "ESP");
        free(l);
        CHECK(nri_vfat_mangle_label("root-x86-64", &l) == 0);
        CHECK_STR(l, "ROOT-X86-64");
        free(l);
        /* Non-ASCII characters are one '_' each; cut at 11; *?.,;:/\|+=<>[]" too. */
        CHECK(nri_vfat_mangle_label("Grüße.efi and more", &l) == 0);
        CHECK_STR(l, "GR__E_EFI A");
        free(l);
        CHECK(nri_vfat_mangle_label("a+b=c[d]", &l) == 0);
        CHECK_STR(l, "A_B_C_D_");
        free(l);
        CHECK(nri_vfat_mangle_label("", &l) == 0);
        CHECK_STR(l, "NO NAME");
        free(l);
        CHECK(nri_vfat_mangle_label("bad\xff", &l) == -EINVAL);
}

typedef struct expect_geometry {
        uint64_t size;
        uint32_t sector_size, fat_bits, total, heads, spt, cluster, reserved, fat, root_entries, clusters;
} expect_geometry;

/* Values mkfs.vfat 4.2 wrote for these sizes (-F 32 where FAT32, as
 * systemd-repart 252 calls it; without -F for the FAT32 mtools cannot make;
 * -s 2 for the FAT16 with 4087 to 4095 clusters). */
static const expect_geometry geometries[] = {
    {64 * MiB, 512, 32, 131072, 8, 32, 1, 32, 1009, 0, 129022},
    {96 * MiB, 512, 32, 196608, 8, 32, 1, 32, 1513, 0, 193550},
    {300 * MiB, 512, 32, 614376, 16, 63, 8, 32, 600, 0, 76643},
    {2048 * MiB, 512, 32, 4194288, 128, 63, 8, 32, 4088, 0, 523260},
    {34 * MiB, 512, 32, 69632, 8, 32, 1, 32, 536, 0, 68528},
    {32 * MiB, 512, 16, 65536, 4, 32, 4, 4, 64, 512, 16343},
    {10 * MiB, 512, 16, 20480, 2, 32, 4, 4, 20, 512, 5101},
    {8421376, 512, 16, 16448, 2, 32, 2, 2, 32, 512, 8175},
    {4 * MiB, 512, 12, 8192, 2, 32, 4, 1, 6, 512, 2036},
    {1440 * 1024, 512, 12, 2880, 2, 18, 1, 1, 9, 224, 2847},
    {1024 * MiB, 4096, 32, 262144, 8, 32, 1, 32, 256, 0, 261600},
    {100 * MiB, 4096, 16, 25600, 2, 32, 4, 4, 4, 512, 6396},
};

static void test_geometry(void) {
        nri_vfat_geometry g;

        for (size_t i = 0; i < sizeof(geometries) / sizeof(geometries[0]); i++) {
                const expect_geometry *e = &geometries[i];

                CHECK(nri_vfat_geometry_for(e->size, e->sector_size, &g) == 0);
                CHECK_U64(g.sector_size, e->sector_size);
                CHECK_U64(g.fat_bits, e->fat_bits);
                CHECK_U64(g.total_sectors, e->total);
                CHECK_U64(g.heads, e->heads);
                CHECK_U64(g.sectors_per_track, e->spt);
                CHECK_U64(g.sectors_per_cluster, e->cluster);
                CHECK_U64(g.reserved_sectors, e->reserved);
                CHECK_U64(g.fat_sectors, e->fat);
                CHECK_U64(g.root_dir_sectors * g.sector_size / 32, e->root_entries);
                CHECK_U64(g.clusters, e->clusters);
                CHECK_U64(g.fats, 2);
                CHECK_U64(g.hidden_sectors, 0);
        }
        CHECK(nri_vfat_geometry_for(10 * MiB, 0, &g) == 0 && g.sector_size == 512);
        CHECK(nri_vfat_geometry_for(10 * MiB, 1000, &g) == -EINVAL);
        CHECK(nri_vfat_geometry_for(4096, 512, &g) == -ERANGE);
}

int main(void) {
        test_label();
        test_geometry();
        return check_result();
}
