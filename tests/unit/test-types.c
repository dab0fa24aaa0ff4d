/* test-types.c: Type= means what it means to systemd-repart 252.
 *
 * The GUIDs and flag sets below were read back with `sfdisk --dump` from an
 * image systemd-repart 252 built with one partition of every type, once with
 * defaults and once with ReadOnly=, NoAuto= and GrowFileSystem= all on (a
 * bit the type does not know is left clear). */
#include <errno.h>

#include "check.h"
#include "nix-repart-image/types.h"

typedef struct expected {
        const char *name;
        const char *guid;
        bool ro, growfs, no_auto;
} expected;

static const expected all[] = {
    {"root-x86-64", "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", true, true, true},
    {"root-x86-64-verity", "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5", true, false, true},
    {"root-x86-64-verity-sig", "41092b05-9fc8-4523-994f-2def0408b176", false, false, false},
    {"usr-x86-64", "8484680c-9521-48c6-9c11-b0720656f69e", true, true, true},
    {"usr-x86-64-verity", "77ff5f63-e7b6-4633-acf4-1565b864c0e6", true, false, true},
    {"usr-x86-64-verity-sig", "e7bb33fb-06cf-4e81-8273-e543b413e2e2", false, false, false},
    {"root-arm64", "b921b045-1df0-41c3-af44-4c6f280d3fae", true, true, true},
    {"root-arm64-verity", "df3300ce-d69f-4c92-978c-9bfb0f38d820", true, false, true},
    {"root-arm64-verity-sig", "6db69de6-29f4-4758-a7a5-962190f00ce3", false, false, false},
    {"usr-arm64", "b0e01050-ee5f-4390-949a-9101b17104e9", true, true, true},
    {"usr-arm64-verity", "6e11a4e7-fbca-4ded-b9e9-e1a512bb664e", true, false, true},
    {"usr-arm64-verity-sig", "c23ce4ff-44bd-4b00-b2d4-b41b3419e02a", false, false, false},
    {"esp", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", false, false, false},
    {"xbootldr", "bc13c2ff-59e6-4262-a352-b275fd6f7172", true, true, true},
    {"swap", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", false, false, true},
    {"home", "933ac7e1-2eb4-4f13-b844-0e14e2aef915", true, true, true},
    {"srv", "3b8f8425-20e0-4f3b-907f-1a25a76f98e8", true, true, true},
    {"var", "4d21b016-b534-45c2-a9fb-5c16e091fd2d", true, true, true},
    {"tmp", "7ec6f557-3bc5-4aca-b293-16ef5df639d1", true, true, true},
    {"user-home", "773f91ef-66d4-49b5-bd83-d683bf40ad16", false, false, false},
    {"linux-generic", "0fc63daf-8483-4772-8e79-3d69d8477de4", false, false, false},
};

#define N_ALL (sizeof(all) / sizeof(all[0]))

static const char *fmt(const nri_uuid *u) {
        static char buf[NRI_UUID_STRING_MAX];

        nri_uuid_format(u, buf);
        return buf;
}

static void check_entry(const nri_part_type *t, const expected *e) {
        CHECK_STR(t->name, e->name);
        CHECK_STR(fmt(&t->uuid), e->guid);
        CHECK(t->knows_read_only == e->ro);
        CHECK(t->knows_growfs == e->growfs);
        CHECK(t->knows_no_auto == e->no_auto);
        /* systemd-repart 252 defaults GrowFileSystem= on wherever the bit
         * has a meaning. */
        CHECK(t->growfs_by_default == e->growfs);
}

static void test_every_name_and_guid(void) {
        for (size_t i = 0; i < N_ALL; i++) {
                for (int arch = 0; arch < _NRI_ARCH_MAX; arch++) {
                        nri_part_type t;

                        /* Canonical names mean the same on any architecture. */
                        CHECK(nri_part_type_resolve(all[i].name, (nri_arch)arch, &t) == 0);
                        check_entry(&t, &all[i]);

                        /* A known GUID becomes its entry, with its name. */
                        CHECK(nri_part_type_resolve(all[i].guid, (nri_arch)arch, &t) == 0);
                        check_entry(&t, &all[i]);
                }
        }
}

static void test_short_names(void) {
        static const struct {
                const char *in;
                const char *x86_64, *arm64;
        } cases[] = {
            {"root", "root-x86-64", "root-arm64"},
            {"root-verity", "root-x86-64-verity", "root-arm64-verity"},
            {"root-verity-sig", "root-x86-64-verity-sig", "root-arm64-verity-sig"},
            {"usr", "usr-x86-64", "usr-arm64"},
            {"usr-verity", "usr-x86-64-verity", "usr-arm64-verity"},
            {"usr-verity-sig", "usr-x86-64-verity-sig", "usr-arm64-verity-sig"},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                nri_part_type t, canonical;

                CHECK(nri_part_type_resolve(cases[i].in, NRI_ARCH_X86_64, &t) == 0);
                CHECK_STR(t.name, cases[i].x86_64);
                CHECK(nri_part_type_resolve(cases[i].x86_64, NRI_ARCH_X86_64, &canonical) == 0);
                CHECK(nri_uuid_equal(&t.uuid, &canonical.uuid));

                CHECK(nri_part_type_resolve(cases[i].in, NRI_ARCH_ARM64, &t) == 0);
                CHECK_STR(t.name, cases[i].arm64);
                CHECK(nri_part_type_resolve(cases[i].arm64, NRI_ARCH_ARM64, &canonical) == 0);
                CHECK(nri_uuid_equal(&t.uuid, &canonical.uuid));
        }
}

static void test_literal_guids(void) {
        char buf[NRI_UUID_STRING_MAX];
        nri_part_type t;

        /* Either case, with or without dashes, as systemd-repart took them. */
        CHECK(nri_part_type_resolve("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", NRI_ARCH_X86_64, &t) == 0);
        CHECK_STR(t.name, "esp");
        CHECK(nri_part_type_resolve("c12a7328f81f11d2ba4b00a0c93ec93b", NRI_ARCH_X86_64, &t) == 0);
        CHECK_STR(t.name, "esp");
        CHECK_STR(nri_part_type_display(&t, buf), "esp");

        /* An unknown GUID is used as given: no name, no flags; systemd-repart
         * shows it as the GUID. */
        CHECK(nri_part_type_resolve("12345678-1234-1234-1234-123456789ABC", NRI_ARCH_X86_64, &t) == 0);
        CHECK(t.name == NULL);
        CHECK(!t.knows_read_only && !t.knows_growfs && !t.knows_no_auto && !t.growfs_by_default);
        CHECK_STR(nri_part_type_display(&t, buf), "12345678-1234-1234-1234-123456789abc");
}

static void test_refused(void) {
        nri_part_type t = {.name = "untouched"};

        /* systemd-repart 252 compares names exactly: "ESP" is refused. */
        CHECK(nri_part_type_resolve("ESP", NRI_ARCH_X86_64, &t) == -EINVAL);
        CHECK(nri_part_type_resolve("Root", NRI_ARCH_X86_64, &t) == -EINVAL);
        CHECK(nri_part_type_resolve("root-x86_64", NRI_ARCH_X86_64, &t) == -EINVAL);
        CHECK(nri_part_type_resolve(" esp", NRI_ARCH_X86_64, &t) == -EINVAL);
        CHECK(nri_part_type_resolve("", NRI_ARCH_X86_64, &t) == -EINVAL);
        CHECK(nri_part_type_resolve("c12a7328-f81f-11d2-ba4b-00a0c93ec93", NRI_ARCH_X86_64, &t) == -EINVAL);
        CHECK(nri_part_type_resolve("esp", _NRI_ARCH_INVALID, &t) == -EINVAL);
        CHECK_STR(t.name, "untouched");
}

static void test_arch(void) {
        CHECK_STR(nri_arch_to_string(NRI_ARCH_X86_64), "x86-64");
        CHECK_STR(nri_arch_to_string(NRI_ARCH_ARM64), "arm64");
        CHECK(nri_arch_to_string(_NRI_ARCH_INVALID) == NULL);
        CHECK(nri_arch_from_string("x86-64") == NRI_ARCH_X86_64);
        CHECK(nri_arch_from_string("arm64") == NRI_ARCH_ARM64);
        CHECK(nri_arch_from_string("x86_64") == _NRI_ARCH_INVALID);
        CHECK(nri_arch_from_string("aarch64") == _NRI_ARCH_INVALID);
        CHECK(nri_arch_from_nix_system("x86_64-linux") == NRI_ARCH_X86_64);
        CHECK(nri_arch_from_nix_system("aarch64-linux") == NRI_ARCH_ARM64);
        CHECK(nri_arch_from_nix_system("i686-linux") == _NRI_ARCH_INVALID);
        CHECK(nri_arch_from_nix_system("x86_64-darwin") == _NRI_ARCH_INVALID);
}

/* The list in error messages names every name that resolves. */
static void test_names_list(void) {
        for (int arch = 0; arch < _NRI_ARCH_MAX; arch++) {
                const char *list = nri_part_type_names((nri_arch)arch);

                for (size_t i = 0; i < N_ALL; i++) {
                        char needle[64];

                        snprintf(needle, sizeof(needle), "%s,", all[i].name);
                        CHECK(strstr(list, needle) ||
                              strcmp(list + strlen(list) - strlen(all[i].name), all[i].name) == 0);
                }
                CHECK(strncmp(list, "root, ", 6) == 0);
        }
}

int main(void) {
        test_every_name_and_guid();
        test_short_names();
        test_literal_guids();
        test_refused();
        test_arch();
        test_names_list();
        return check_result();
}
