/* test-uuid.c: the UUIDs an image gets from its seed are the ones
 * systemd-repart 252 gives it.
 *
 * The expected values were read from images that systemd-repart 252
 * (Debian 12) built with --seed=0867da16-f251-457d-a9e8-c31f9a3c220b:
 * `sfdisk --dump` for the disk and partition UUIDs, `blkid -p` for the
 * ext4 UUID and the vfat volume id. */
#include <errno.h>

#include "check.h"
#include "nix-repart-image/uuid.h"

#define SEED "0867da16-f251-457d-a9e8-c31f9a3c220b"
#define ROOT_X86_64 "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
#define ESP "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
#define LINUX_GENERIC "0fc63daf-8483-4772-8e79-3d69d8477de4"

static nri_uuid uuid(const char *s) {
        nri_uuid u = {{0}};

        CHECK(nri_uuid_parse(s, &u) == 0);
        return u;
}

static const char *fmt(const nri_uuid *u) {
        static char buf[4][NRI_UUID_STRING_MAX];
        static int next;
        char *b = buf[next++ % 4];

        nri_uuid_format(u, b);
        return b;
}

static const char *partition(const char *type, uint64_t k) {
        nri_uuid seed = uuid(SEED), t = uuid(type), u;

        nri_uuid_partition(&seed, &t, k, &u);
        return fmt(&u);
}

static const char *file_system(const char *partition_uuid) {
        nri_uuid p = uuid(partition_uuid), u;

        nri_uuid_file_system(&p, &u);
        return fmt(&u);
}

static void test_text_forms(void) {
        nri_uuid u, before;

        CHECK(nri_uuid_parse("0867DA16-F251-457D-A9E8-C31F9A3C220B", &u) == 0);
        CHECK_STR(fmt(&u), SEED);
        CHECK(nri_uuid_parse("0867da16f251457da9e8c31f9a3c220b", &u) == 0);
        CHECK_STR(fmt(&u), SEED);

        /* What sd_id128_from_string() refuses, we refuse, and *ret stays. */
        before = u;
        CHECK(nri_uuid_parse("", &u) == -EINVAL);
        CHECK(nri_uuid_parse("0867da16-f251457d-a9e8-c31f9a3c220b", &u) == -EINVAL);
        CHECK(nri_uuid_parse("0867da16f-251-457d-a9e8-c31f9a3c220b", &u) == -EINVAL);
        CHECK(nri_uuid_parse("0867da16-f251-457d-a9e8-c31f9a3c220", &u) == -EINVAL);
        CHECK(nri_uuid_parse("0867da16-f251-457d-a9e8-c31f9a3c220bb", &u) == -EINVAL);
        CHECK(nri_uuid_parse("0867da16-f251-457d-a9e8-c31f9a3c220g", &u) == -EINVAL);
        CHECK(nri_uuid_parse("{0867da16-f251-457d-a9e8-c31f9a3c220b}", &u) == -EINVAL);
        CHECK(nri_uuid_equal(&u, &before));

        u = (nri_uuid){{0}};
        CHECK(nri_uuid_is_null(&u));
        CHECK(!nri_uuid_is_null(&before));
}

static void test_make_v4(void) {
        uint8_t ones[16], zeros[16] = {0};
        nri_uuid u;

        for (size_t i = 0; i < 16; i++)
                ones[i] = 0xff;
        u = nri_uuid_make_v4(ones);
        CHECK_STR(fmt(&u), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        u = nri_uuid_make_v4(zeros);
        CHECK_STR(fmt(&u), "00000000-0000-4000-8000-000000000000");
}

static void test_design_vectors(void) {
        nri_uuid seed = uuid(SEED), disk, esp_fs;

        nri_uuid_disk(&seed, &disk);
        CHECK_STR(fmt(&disk), "b581fef7-24ed-4f31-990b-099ec86bba03");

        CHECK_STR(partition(ROOT_X86_64, 0), "57bd1ad1-c688-450a-ba37-d1792ec72fbb");
        CHECK_STR(file_system("57bd1ad1-c688-450a-ba37-d1792ec72fbb"),
                  "7981aaf4-2a9a-4f86-9f1f-5b42c8f28bbf");

        CHECK_STR(partition(ESP, 0), "dac4058a-2fc0-4808-a7ef-b8b4501c00ce");
        esp_fs = uuid(file_system("dac4058a-2fc0-4808-a7ef-b8b4501c00ce"));
        CHECK_U64(nri_uuid_vfat_volume_id(&esp_fs), 0x793a442b);
}

/* Further partitions of one type: the HMAC message gains le64(k). */
static void test_repeated_types(void) {
        CHECK_STR(partition(LINUX_GENERIC, 0), "be6595b1-70b2-4c1e-a455-2693510a426f");
        CHECK_STR(partition(LINUX_GENERIC, 1), "8e96213d-8e49-4402-819d-bf44af665035");

        CHECK_STR(partition(ROOT_X86_64, 1), "b61515ed-6e9f-4302-973e-25303565d610");
        CHECK_STR(file_system("b61515ed-6e9f-4302-973e-25303565d610"),
                  "a5a7c34b-c0af-49b8-a494-367aae68c5ca");
        CHECK_STR(partition(ROOT_X86_64, 2), "173ffb50-62c5-47a5-b658-90b0bd38402b");

        CHECK_STR(partition(ESP, 1), "23cc28ae-c8e0-41bd-afbd-485ef735e695");
        CHECK_STR(partition(ESP, 2), "e53a2464-a4c6-48f0-ae2a-8f7ea6ba3295");
}

static void test_derive(void) {
        nri_uuid seed = uuid(SEED), a, b;

        /* The disk UUID is the HMAC of the bare token: derive() is the
         * building block of every other UUID. */
        nri_uuid_derive(&seed, "disk-uuid", 9, &a);
        nri_uuid_disk(&seed, &b);
        CHECK(nri_uuid_equal(&a, &b));
        nri_uuid_derive(&seed, "disk-uuid", 8, &a);
        CHECK(!nri_uuid_equal(&a, &b));
}

static void test_random(void) {
        nri_uuid a, b;

        CHECK(nri_uuid_random(&a) == 0);
        CHECK(nri_uuid_random(&b) == 0);
        CHECK(!nri_uuid_equal(&a, &b));
        CHECK((a.b[6] & 0xf0) == 0x40);
        CHECK((a.b[8] & 0xc0) == 0x80);
}

int main(void) {
        test_text_forms();
        test_make_v4();
        test_design_vectors();
        test_repeated_types();
        test_derive();
        test_random();
        return check_result();
}
