/* test-file-systems.c: the file-system table (file-systems.h) and what is
 * made from it: the names Format= takes, the names in messages, the facts
 * the evaluator reads. */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "nix-repart-image/file-systems.h"

static void test_names(void) {
        CHECK(nri_format_from_string("ext4") == NRI_FORMAT_EXT4);
        CHECK(nri_format_from_string("vfat") == NRI_FORMAT_VFAT);
        CHECK(nri_format_from_string("fat") == -EINVAL);
        CHECK(nri_format_from_string(NULL) == -EINVAL);
        CHECK(nri_format_to_string(NRI_FORMAT_NONE) == NULL);
        CHECK(nri_format_to_string(_NRI_FORMAT_MAX) == NULL);
        /* Every row: its name, its facts under that name. */
        for (int f = NRI_FORMAT_NONE + 1; f < _NRI_FORMAT_MAX; f++) {
                const nri_fs_type *t = nri_fs_type_of(f);

                CHECK(t != NULL);
                CHECK_STR(t->name, nri_format_to_string(f));
                CHECK(nri_format_from_string(t->name) == f);
                CHECK(!t->names || (t->names->problem && t->names->family));
        }
        CHECK(nri_fs_type_of(NRI_FORMAT_NONE) == NULL);
}

static void test_messages(void) {
        nri_arena *a = nri_arena_new();

        CHECK_STR(nri_format_names(a, ", "), "ext4, vfat, erofs, squashfs, swap");
        CHECK_STR(nri_format_names(a, " or "), "ext4, vfat, erofs, squashfs or swap");
        CHECK_STR(nri_format_names_code(a), "`ext4`, `vfat`, `erofs`, `squashfs`, `swap`");
        nri_arena_free(a);
}

/* What the evaluator decides with. */
static void test_facts(void) {
        const nri_fs_type *ext4 = nri_fs_type_of(NRI_FORMAT_EXT4), *vfat = nri_fs_type_of(NRI_FORMAT_VFAT);
        nri_arena *a = nri_arena_new();
        char buf[128];

        CHECK_U64(nri_format_min_size(NRI_FORMAT_EXT4), 1024 * 1024); /* EXT4_MINIMAL_SIZE */
        CHECK_U64(nri_format_min_size(NRI_FORMAT_VFAT), 0);
        CHECK_U64(nri_format_min_size(NRI_FORMAT_NONE), 0);
        CHECK(!ext4->read_only && !vfat->read_only);
        CHECK(ext4->holds_files && vfat->holds_files);
        CHECK(ext4->existing && streq(ext4->existing[0], "/lost+found") && !ext4->existing[1]);
        CHECK(!vfat->existing);
        CHECK(!ext4->names && !ext4->label_problem && !ext4->volume_id);
        CHECK(vfat->volume_id);
        CHECK_STR(vfat->names->problem("a:b", buf, sizeof(buf)), "FAT names cannot contain ':'");
        CHECK(vfat->names->problem("EFI", buf, sizeof(buf)) == NULL);
        {
                char *f = vfat->names->fold("/efi/Boot");

                CHECK_STR(f, "/EFI/BOOT");
                free(f);
        }
        CHECK(vfat->label_problem(a, "esp") == NULL);
        /* Issue 14's rows: the read-only formats hold files and Minimize=best
         * sizes them; swap holds none, needs mkswap's ten pages and a label of
         * at most 15 bytes. */
        {
                const nri_fs_type *erofs = nri_fs_type_of(NRI_FORMAT_EROFS),
                                  *squashfs = nri_fs_type_of(NRI_FORMAT_SQUASHFS),
                                  *swap = nri_fs_type_of(NRI_FORMAT_SWAP);

                CHECK(erofs->read_only && erofs->holds_files && !erofs->existing);
                CHECK(squashfs->read_only && squashfs->holds_files && !squashfs->existing);
                CHECK(!swap->read_only && !swap->holds_files);
                CHECK_U64(nri_format_min_size(NRI_FORMAT_SWAP), 40 * 1024);
                CHECK(swap->label_problem(a, "linux-generic-4") == NULL);
                CHECK(strstr(swap->label_problem(a, "linux-generic-42"), "16 bytes") != NULL);
        }
        CHECK(strstr(vfat->label_problem(a, " esp"), "is the FAT label \" ESP\"") != NULL);
        nri_arena_free(a);
}

int main(void) {
        test_names();
        test_messages();
        test_facts();
        return check_result();
}
