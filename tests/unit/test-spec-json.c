/* test-spec-json.c: the contract between the halves — the spec as JSON
 * for the derivation (spec-fields.c: one field table both ways), read back
 * by the builder exactly as written, checked again there with the
 * evaluator's rules, and the split files' names. */
#include "spec-fields.h"
#include "spec-test.h"

static void test_design_example_json(void) {
        nri_node *args = image(ATTRS("esp", part(ATTRS("Type", S("esp"), "Format", S("vfat"), NULL)), "root",
                                     ATTRS("storePaths", LIST(1, DRV(TOPLEVEL)), "repartConfig",
                                           ATTRS("Type", S("root"), "Format", S("ext4"), NULL), NULL),
                                     NULL));
        nri_spec *spec = normalise(args);
        cJSON *drv, *sum, *rs, *p0, *p1, *graph;

        CHECK(spec != NULL);
        if (!spec)
                return;
        drv = nri_spec_derivation_json(spec, &(nri_builder_ref){.bundle = "/nix/store/" H2 "-bundle"},
                                       "x86_64-linux");
        sum = nri_spec_summary_json(spec);
        CHECK(drv && sum);
        if (!drv || !sum)
                return;
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(drv, "name")), "image");
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(drv, "builder")),
                  "/nix/store/" H2 "-bundle/lib/ld.so");
        CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(drv, "args"), 2)),
                  "/nix/store/" H2 "-bundle/bin/nix-repart-image-builder");
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(drv, "repartBundle")),
                  "/nix/store/" H2 "-bundle");
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(drv, "__structuredAttrs")));
        graph = cJSON_GetObjectItem(drv, "exportReferencesGraph");
        CHECK(cJSON_GetArraySize(graph) == 1);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(graph, "closure-1"), 0)),
                  TOPLEVEL);
        rs = cJSON_GetObjectItem(drv, "repartSpec");
        CHECK(cJSON_GetObjectItem(rs, "specVersion")->valueint == NRI_SPEC_VERSION);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(rs, "seed")), SEED);
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(rs, "imageSize")));
        p0 = cJSON_GetArrayItem(cJSON_GetObjectItem(rs, "partitions"), 0);
        p1 = cJSON_GetArrayItem(cJSON_GetObjectItem(rs, "partitions"), 1);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(p0, "vfatVolumeId")), "793a442b");
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(p0, "closure")));
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(p1, "closure")), "closure-1");
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(p1, "flags")), "0x800000000000000");
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(p1, "type")), "root-x86-64");
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(p1, "sizeMinBytes")));
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(sum, "diskUuid")),
                  "b581fef7-24ed-4f31-990b-099ec86bba03");
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(sum, "imageFile")), "image.raw");
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(
                      cJSON_GetObjectItem(cJSON_GetObjectItem(sum, "partitions"), "root"), "uuid")),
                  "57bd1ad1-c688-450a-ba37-d1792ec72fbb");
        CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(sum, "partitions"), "root"),
                                  "vfatVolumeId") == NULL);
        CHECK(cJSON_GetObjectItem(p1, "vfatVolumeId") == NULL);
        cJSON_Delete(drv);
        cJSON_Delete(sum);
}

/* The builder reads back exactly what the evaluator wrote. */
static void check_round_trip(const nri_node *args) {
        nri_spec *spec = normalise(args), *back = NULL;
        nri_error error = {0};
        cJSON *j1, *j2;
        char *t1, *t2;

        CHECK(spec != NULL);
        if (!spec)
                return;
        j1 = nri_spec_to_json(spec);
        CHECK(nri_spec_from_json(A, j1, &back, &error) == 0);
        if (!back) {
                fprintf(stderr, "nri_spec_from_json: %s\n", error.message);
                cJSON_Delete(j1);
                return;
        }
        j2 = nri_spec_to_json(back);
        t1 = cJSON_Print(j1);
        t2 = cJSON_Print(j2);
        CHECK_STR(t2, t1);
        free(t1);
        free(t2);
        cJSON_Delete(j1);
        cJSON_Delete(j2);
}

static void test_spec_read(void) {
        nri_spec *spec = normalise(image(ATTRS("root", root_part(), NULL)));
        cJSON *j = spec ? nri_spec_to_json(spec) : NULL;
        nri_error error = {0};
        nri_spec *back = NULL;

        check_round_trip(image(ATTRS(
            "esp",
            ATTRS("contents",
                  ATTRS("/EFI/BOOT/BOOTX64.EFI", ATTRS("source", PATH("/src/bootx64.efi"), NULL), NULL),
                  "repartConfig", ATTRS("Type", S("esp"), "Format", S("vfat"), NULL), NULL),
            "root",
            ATTRS("repartConfig",
                  ATTRS("Type", S("root"), "CopyFiles", LIST(1, SC(SYSTEMD "/lib:/usr/lib")),
                        "MakeDirectories", LIST(1, S("/var /srv")), NULL),
                  NULL),
            NULL)));
        check_round_trip(image(
            ATTRS("store",
                  ATTRS("stripNixStorePrefix", B(true), "storePaths", LIST(1, DRV(TOPLEVEL)), "repartConfig",
                        ATTRS("Type", S("linux-generic"), "Flags", S("0x8000000000000004"), "SizeMaxBytes",
                              S("1G"), "SplitName", S("-"), NULL),
                        NULL),
                  NULL)));

        /* A spec from another version of the plugin is refused, naming the field. */
        CHECK(j != NULL);
        if (!j)
                return;
        cJSON_ReplaceItemInObject(j, "specVersion", cJSON_CreateNumber(99));
        CHECK(nri_spec_from_json(A, j, &back, &error) == -EINVAL);
        CHECK(back == NULL);
        CHECK(error.message && strstr(error.message, "specVersion") != NULL);
        cJSON_ReplaceItemInObject(j, "specVersion", cJSON_CreateNumber(NRI_SPEC_VERSION));
        cJSON_ReplaceItemInObject(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "partitions"), 0), "uuid",
                                  cJSON_CreateString("not-a-uuid"));
        CHECK(nri_spec_from_json(A, j, &back, &error) == -EINVAL);
        CHECK(error.message && strstr(error.message, "partitions[0].uuid") != NULL);
        cJSON_Delete(j);
}

static cJSON *spec_json(void) {
        nri_spec *spec = normalise(image(ATTRS(
            "esp",
            ATTRS("contents",
                  ATTRS("/EFI/BOOT/BOOTX64.EFI", ATTRS("source", PATH("/src/bootx64.efi"), NULL), NULL),
                  "repartConfig",
                  ATTRS("Type", S("esp"), "Format", S("vfat"), "SizeMaxBytes", S("100M"), NULL), NULL),
            "root",
            ATTRS("storePaths", LIST(1, DRV(TOPLEVEL)), "repartConfig",
                  ATTRS("Type", S("root"), "SplitName", S("%T-%U-%n"), NULL), NULL),
            NULL)));

        return spec ? nri_spec_to_json(spec) : NULL;
}

static cJSON *partition_json(cJSON *j, int i) {
        return cJSON_GetArrayItem(cJSON_GetObjectItem(j, "partitions"), i);
}

static void check_refused(cJSON *j, const char *field) {
        nri_error error = {0};
        nri_spec *back = NULL;

        CHECK(nri_spec_from_json(A, j, &back, &error) == -EINVAL);
        CHECK(error.message && strstr(error.message, field));
        if (!error.message || !strstr(error.message, field))
                fprintf(stderr, "want %s, got %s\n", field, error.message ? error.message : "(none)");
        cJSON_Delete(j);
}

static void test_spec_check(void) {
        nri_error error = {0};
        nri_spec *back = NULL;
        cJSON *j = spec_json();

        CHECK(j && nri_spec_from_json(A, j, &back, &error) == 0);
        /* SplitName= as systemd's specifier_id128() spells a UUID. */
        CHECK_STR(nri_split_name_expand(A, &back->partitions[1], 1),
                  "4f68bce3e8cd4db196e7fbcaf984b709-57bd1ad1c688450aba37d1792ec72fbb-1");
        cJSON_Delete(j);

        j = spec_json();
        cJSON_ReplaceItemInObject(j, "name", cJSON_CreateString("../../escaped"));
        cJSON_ReplaceItemInObject(j, "imageFile", cJSON_CreateString("../../escaped.raw"));
        check_refused(j, "repartSpec.name: \"../../escaped\" must not start with '.'");
        j = spec_json();
        cJSON_ReplaceItemInObject(partition_json(j, 0), "format", cJSON_CreateNull());
        check_refused(j, "repartSpec.partitions[0].format: null, but the partition has content");
        j = spec_json();
        cJSON_ReplaceItemInObject(partition_json(j, 0), "sizeMinBytes",
                                  cJSON_CreateNumber(200 * 1024 * 1024));
        check_refused(j, "repartSpec.partitions[0].sizeMinBytes: 209715200 is larger than sizeMaxBytes");
        j = spec_json();
        cJSON_ReplaceItemInObject(
            cJSON_GetArrayItem(cJSON_GetObjectItem(partition_json(j, 0), "contents"), 0), "source",
            cJSON_CreateString("/etc/passwd"));
        check_refused(
            j, "repartSpec.partitions[0].contents[0].source: \"/etc/passwd\" is not in the Nix store");
        j = spec_json();
        cJSON_ReplaceItemInObject(partition_json(j, 1), "splitName", cJSON_CreateString("a/b"));
        check_refused(j, "repartSpec.partitions[1].splitName: \"a/b\" names a file");
        j = spec_json();
        cJSON_ReplaceItemInObject(partition_json(j, 1), "storePaths",
                                  cJSON_CreateStringArray((const char *[]){TOPLEVEL "/bin"}, 1));
        check_refused(j, "repartSpec.partitions[1].storePaths[0]");
        j = spec_json();
        cJSON_ReplaceItemInObject(partition_json(j, 1), "label", cJSON_CreateString("esp"));
        check_refused(j, "repartSpec.partitions[1].label: \"esp\" is also the label of partitions[0]");
        j = spec_json();
        cJSON_ReplaceItemInObject(j, "diskUuid", cJSON_CreateString("11111111-2222-4333-8444-555555555555"));
        check_refused(j, "repartSpec.diskUuid");
        /* A field this builder does not know (from a newer plugin) is
         * refused, never built as if it were unset. */
        j = spec_json();
        cJSON_AddBoolToObject(partition_json(j, 1), "deduplicateStorage", true);
        check_refused(j, "repartSpec.partitions[1].deduplicateStorage: unknown field");
        j = spec_json();
        cJSON_AddNumberToObject(j, "someNewSetting", 1);
        check_refused(j, "repartSpec.someNewSetting: unknown field");
        /* deduplicateStore is ext4's alone. */
        j = spec_json();
        cJSON_ReplaceItemInObject(partition_json(j, 0), "deduplicateStore", cJSON_CreateTrue());
        check_refused(j,
                      "repartSpec.partitions[0].deduplicateStore: true, but the partition's format is vfat");
}

/* SplitName= with systemd-repart's meaning (nri_split_names()): %n is the
 * number in the partition table, which the partitions Priority= drops are
 * not in; only the names of those in the table must differ. */
static nri_node *split_part(const char *type, const char *split, const char *size, const char *priority) {
        return part(ATTRS("Type", S(type), "SplitName", S(split), "SizeMinBytes", S(size), "Priority",
                          S(priority), NULL));
}

static void test_split_names(void) {
        /* 40M hold b, c and d, not a too: the image drops a (Priority=10). */
        nri_spec *spec =
            normalise(ATTRS("name", S("image"), "split", B(true), "imageSize", S("40M"), "partitions",
                            ATTRS("a", split_part("linux-generic", "%t", "30M", "10"), "b",
                                  split_part("linux-generic", "%t", "10M", "0"), "c",
                                  split_part("linux-generic", "c-%n", "10M", "0"), "d",
                                  split_part("swap", "%t%n", "10M", "0"), NULL),
                            NULL));
        const char *names[4];
        bool dropped[4] = {true, false, false, false};
        size_t i = 99, j = 99;

        CHECK(spec != NULL);
        if (!spec)
                return;
        CHECK(nri_split_names(A, spec, dropped, names, &i, &j) == 0);
        CHECK(names[0] == NULL);
        CHECK_STR(names[1], "linux-generic");
        CHECK_STR(names[2], "c-1");
        CHECK_STR(names[3], "swap2");
        /* Without the drop (another layout), "%t" twice: the first clash. */
        CHECK(nri_split_names(A, spec, NULL, names, &i, &j) == -EEXIST);
        CHECK(i == 1 && j == 0);
        /* SplitName=- is no name, and still a number in the table. */
        spec->partitions[1].split_name = NULL;
        CHECK(nri_split_names(A, spec, dropped, names, &i, &j) == 0);
        CHECK(names[1] == NULL);
        CHECK_STR(names[2], "c-1");
        spec->partitions[2].split_name = nri_printf(A, "%0255d%%n", 0);
        CHECK(nri_split_names(A, spec, dropped, names, &i, &j) == -ENAMETOOLONG);
        CHECK(i == 2);
}

/* The contract is written once (spec-fields.c): every key of its field
 * tables is written, read back, and described in spec-json.h, whose
 * comment is the contract's prose. */
static void test_fields_are_the_contract(void) {
        FILE *f = fopen(SOURCE_DIR "/include/nix-repart-image/spec-json.h", "r");
        static char doc[65536];
        size_t n = f ? fread(doc, 1, sizeof(doc) - 1, f) : 0;
        cJSON *j = spec_json(), *p = j ? partition_json(j, 0) : NULL;

        CHECK(f != NULL);
        if (f)
                fclose(f);
        doc[n] = 0;
        for (size_t i = 0; i < spec_n_fields_top; i++) {
                const char *key = nri_printf(A, "\"%s\"", spec_fields_top[i].name);

                CHECK(cJSON_GetObjectItemCaseSensitive(j, spec_fields_top[i].name) != NULL);
                if (!strstr(doc, key))
                        fprintf(stderr, "spec-json.h does not describe %s\n", key);
                CHECK(strstr(doc, key) != NULL);
        }
        for (size_t i = 0; i < spec_n_fields_partition; i++) {
                const char *key = nri_printf(A, "\"%s\"", spec_fields_partition[i].name);

                /* vfatVolumeId only for a vfat (partition 0 is the esp) */
                CHECK(cJSON_GetObjectItemCaseSensitive(p, spec_fields_partition[i].name) != NULL);
                if (!strstr(doc, key))
                        fprintf(stderr, "spec-json.h does not describe %s\n", key);
                CHECK(strstr(doc, key) != NULL);
        }
        cJSON_Delete(j);
}

int main(void) {
        A = nri_arena_new();
        test_design_example_json();
        test_spec_read();
        test_spec_check();
        test_fields_are_the_contract();
        test_split_names();
        nri_arena_free(A);
        return check_result();
}
