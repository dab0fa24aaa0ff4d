/* test-gpt.c: layout, partition table and repart-output.json together give
 * what systemd-repart 252 gives.
 *
 * The references were made on Debian 12 (systemd 252.39, util-linux 2.38.1)
 * with --empty=create --seed=0867da16-f251-457d-a9e8-c31f9a3c220b
 * --dry-run=no --json=pretty, on the definitions quoted with each case (no
 * Format=, so the image holds nothing but the GPT); for 4096-byte sectors
 * with --empty=force on `losetup -b 4096` over a file of the auto size.
 * The hashes are SHA-256 of the image's first MiB (protective MBR, primary
 * GPT, the gap to the first partition) and of its last 20 KiB (the backup
 * GPT): our image must be byte-identical there.  `sfdisk --json` reads the
 * 512-byte-sector images back; it cannot be told another sector size, so the
 * 4096 one is read back through libfdisk. */
#include <errno.h>
#include <fcntl.h>
#include <libfdisk/libfdisk.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "gpt.h"
#include "nix-repart-image/layout.h"
#include "output-json.h"

#define MiB (UINT64_C(1024) * 1024)
#define DISK_UUID "b581fef7-24ed-4f31-990b-099ec86bba03"
#define ESP "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
#define ROOT_X86_64 "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
#define SWAP "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"
#define FLAG_GROWFS (UINT64_C(1) << 59)
#define FLAG_READ_ONLY (UINT64_C(1) << 60)
#define FLAG_NO_AUTO (UINT64_C(1) << 63)

typedef struct test_part {
        nri_layout_part layout;
        nri_gpt_part gpt;
        nri_output_part out;
} test_part;

static nri_layout_part sizes(uint64_t size_min, uint64_t size_max, uint64_t padding_min, uint32_t weight) {
        return (nri_layout_part){
            .size_min = size_min,
            .size_max = size_max,
            .padding_min = padding_min,
            .padding_max = NRI_LAYOUT_UNSET,
            .weight = weight,
        };
}

static char tmpdir[4096];

static void make_tmpdir(void) {
        const char *t = getenv("TMPDIR");

        snprintf(tmpdir, sizeof(tmpdir), "%s/test-gpt-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpdir)) {
                perror("mkdtemp");
                exit(1);
        }
}

/* Lays out, creates the image at its size, writes the table; 0 or < 0. */
static int build(const char *path, test_part *p, size_t n, uint32_t sector_size, uint64_t image_size,
                 nri_layout_disk *ret_disk) {
        nri_layout_part layout[8];
        nri_gpt_part gpt[8];
        size_t failed;
        nri_arena *a = nri_arena_new();
        nri_error err = {0};
        int fd, r;

        for (size_t i = 0; i < n; i++)
                layout[i] = p[i].layout;
        r = nri_layout_compute(layout, n, sector_size, image_size, ret_disk, &failed, a, &err);
        if (r < 0)
                fprintf(stderr, "layout: %s\n", err.message);
        nri_arena_free(a);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                p[i].layout = layout[i];
                gpt[i] = p[i].gpt;
                gpt[i].offset = p[i].out.offset = layout[i].offset;
                gpt[i].size = p[i].out.size = layout[i].size;
                p[i].out.padding = layout[i].padding;
        }

        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || ftruncate(fd, (off_t)ret_disk->image_size) < 0) {
                perror(path);
                return -errno;
        }
        r = nri_gpt_write(fd, path,
                          &(nri_gpt_table){
                              .sector_size = sector_size,
                              .disk_uuid = DISK_UUID,
                              .parts = gpt,
                              .n_parts = n,
                              .first_lba = ret_disk->first_lba,
                              .last_lba = ret_disk->last_lba,
                          });
        close(fd);
        return r;
}

static void sha256_hex(int fd, off_t offset, size_t len, char out[65]) {
        unsigned char *buf = malloc(len), md[32];
        unsigned md_len = 0;

        CHECK(buf && pread(fd, buf, len, offset) == (ssize_t)len);
        EVP_Digest(buf, len, md, &md_len, EVP_sha256(), NULL);
        for (unsigned i = 0; i < 32; i++)
                sprintf(out + 2 * i, "%02x", md[i]);
        free(buf);
}

/* The GPT regions are the bytes systemd-repart 252 wrote. */
static void check_bytes(const char *path, uint64_t image_size, const char *head, const char *tail) {
        char got[65];
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        CHECK(fd >= 0);
        sha256_hex(fd, 0, 1 * MiB, got);
        CHECK_STR(got, head);
        sha256_hex(fd, (off_t)(image_size - 20480), 20480, got);
        CHECK_STR(got, tail);
        close(fd);
}

static cJSON *sfdisk_json(const char *path) {
        char cmd[8192], *text = NULL;
        size_t len = 0;
        FILE *p, *m;
        cJSON *json;

        snprintf(cmd, sizeof(cmd), "sfdisk --json '%s'", path);
        p = popen(cmd, "r");
        m = open_memstream(&text, &len);
        if (!p || !m)
                return NULL;
        for (int c; (c = fgetc(p)) != EOF;)
                fputc(c, m);
        fclose(m);
        CHECK(pclose(p) == 0);
        json = cJSON_Parse(text);
        free(text);
        return json;
}

static uint64_t num(const cJSON *o, const char *key) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        return cJSON_IsNumber(v) ? (uint64_t)v->valuedouble : UINT64_MAX;
}

static const char *str(const cJSON *o, const char *key) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* sfdisk prints GUIDs in upper case. */
static const char *upper(const char *s) {
        static char buf[4][64];
        static int next;
        char *b = buf[next++ % 4];

        snprintf(b, 64, "%s", s);
        for (char *q = b; *q; q++)
                if (*q >= 'a' && *q <= 'z')
                        *q -= 'a' - 'A';
        return b;
}

/* Everything the table says, as sfdisk reads it. */
static void check_sfdisk(const char *path, const test_part *p, size_t n, const nri_layout_disk *disk,
                         const char *const attrs[]) {
        cJSON *json = sfdisk_json(path), *pt, *parts;

        CHECK(json != NULL);
        if (!json)
                return;
        pt = cJSON_GetObjectItemCaseSensitive(json, "partitiontable");
        CHECK_STR(str(pt, "label"), "gpt");
        CHECK_STR(str(pt, "id"), upper(DISK_UUID));
        CHECK_U64(num(pt, "sectorsize"), 512);
        CHECK_U64(num(pt, "firstlba"), disk->first_lba);
        CHECK_U64(num(pt, "lastlba"), disk->last_lba);
        parts = cJSON_GetObjectItemCaseSensitive(pt, "partitions");
        CHECK_U64((uint64_t)cJSON_GetArraySize(parts), n);
        for (size_t i = 0; i < n && i < (size_t)cJSON_GetArraySize(parts); i++) {
                const cJSON *e = cJSON_GetArrayItem(parts, (int)i);

                CHECK_U64(num(e, "start"), p[i].layout.offset / 512);
                CHECK_U64(num(e, "size"), p[i].layout.size / 512);
                CHECK_STR(str(e, "type"), upper(p[i].gpt.type_uuid));
                CHECK_STR(str(e, "uuid"), upper(p[i].gpt.uuid));
                CHECK_STR(str(e, "name"), p[i].gpt.label);
                if (attrs[i])
                        CHECK_STR(str(e, "attrs"), attrs[i]);
                else
                        CHECK(str(e, "attrs") == NULL);
        }
        cJSON_Delete(json);
}

/* The repart-output.json text, byte for byte. */
static void check_output(const char *image, const test_part *p, size_t n, const char *want) {
        nri_output_part out[8];
        cJSON *json;
        char *text;

        for (size_t i = 0; i < n; i++)
                out[i] = p[i].out;
        json = nri_output_json_build(image, out, n);
        CHECK(json != NULL);
        text = nri_output_json_print(json);
        CHECK_STR(text, want);
        free(text);
        cJSON_Delete(json);
}

/* 10-esp.conf: Type=esp SizeMinBytes=96M; 20-root.conf: Type=root
 * Label=nixos; --size=auto. */
static void c1_parts(test_part p[2]) {
        p[0] = (test_part){
            .layout = sizes(96 * MiB, NRI_LAYOUT_UNSET, NRI_LAYOUT_UNSET, 1000),
            .gpt = {.type_uuid = ESP, .uuid = "dac4058a-2fc0-4808-a7ef-b8b4501c00ce", .label = "esp"},
            .out = {.type = "esp",
                    .label = "esp",
                    .uuid = "dac4058a-2fc0-4808-a7ef-b8b4501c00ce",
                    .file = "10-esp.conf"},
        };
        p[1] = (test_part){
            .layout = sizes(NRI_LAYOUT_UNSET, NRI_LAYOUT_UNSET, NRI_LAYOUT_UNSET, 1000),
            .gpt = {.type_uuid = ROOT_X86_64,
                    .uuid = "57bd1ad1-c688-450a-ba37-d1792ec72fbb",
                    .label = "nixos",
                    .flags = FLAG_GROWFS},
            .out = {.type = "root-x86-64",
                    .label = "nixos",
                    .uuid = "57bd1ad1-c688-450a-ba37-d1792ec72fbb",
                    .file = "20-root.conf"},
        };
}

static const char c1_json[] = "[\n"
                              "\t{\n"
                              "\t\t\"type\" : \"esp\",\n"
                              "\t\t\"label\" : \"esp\",\n"
                              "\t\t\"uuid\" : \"dac4058a-2fc0-4808-a7ef-b8b4501c00ce\",\n"
                              "\t\t\"file\" : \"10-esp.conf\",\n"
                              "\t\t\"node\" : \"c1x.raw1\",\n"
                              "\t\t\"offset\" : 1048576,\n"
                              "\t\t\"old_size\" : 0,\n"
                              "\t\t\"raw_size\" : 100663296,\n"
                              "\t\t\"old_padding\" : 0,\n"
                              "\t\t\"raw_padding\" : 0,\n"
                              "\t\t\"activity\" : \"create\"\n"
                              "\t},\n"
                              "\t{\n"
                              "\t\t\"type\" : \"root-x86-64\",\n"
                              "\t\t\"label\" : \"nixos\",\n"
                              "\t\t\"uuid\" : \"57bd1ad1-c688-450a-ba37-d1792ec72fbb\",\n"
                              "\t\t\"file\" : \"20-root.conf\",\n"
                              "\t\t\"node\" : \"c1x.raw2\",\n"
                              "\t\t\"offset\" : 101711872,\n"
                              "\t\t\"old_size\" : 0,\n"
                              "\t\t\"raw_size\" : 10485760,\n"
                              "\t\t\"old_padding\" : 0,\n"
                              "\t\t\"raw_padding\" : 0,\n"
                              "\t\t\"activity\" : \"create\"\n"
                              "\t}\n"
                              "]\n";

static void test_esp_and_root(void) {
        char path[4200];
        test_part p[2];
        nri_layout_disk disk;

        c1_parts(p);
        snprintf(path, sizeof(path), "%s/c1.raw", tmpdir);
        CHECK(build(path, p, 2, 512, NRI_LAYOUT_UNSET, &disk) == 0);
        CHECK_U64(disk.image_size, 112218112);
        check_bytes(path, disk.image_size,
                    "51e7383033517067b3463dccd842afc7f9b9bdd9e17b1a46d365684e93c9fb1a",
                    "a0ae9765e3737c2c5d987b4d19bbfdabd1c1c849b8b052822369f0673d2e5f3a");
        check_sfdisk(path, p, 2, &disk, (const char *const[]){NULL, "GUID:59"});
        check_output("c1x.raw", p, 2, c1_json);
        unlink(path);
}

/* The same definitions on 4096-byte sectors (repart on a loop device of
 * 112218112 bytes). */
static void test_esp_and_root_4k(void) {
        struct fdisk_context *c;
        struct fdisk_table *tb = NULL;
        char path[4200], *id = NULL;
        test_part p[2];
        nri_layout_disk disk;

        c1_parts(p);
        snprintf(path, sizeof(path), "%s/c1-4k.raw", tmpdir);
        CHECK(build(path, p, 2, 4096, NRI_LAYOUT_UNSET, &disk) == 0);
        CHECK_U64(disk.image_size, 112218112);
        CHECK_U64(disk.first_lba, 256);
        CHECK_U64(disk.last_lba, 27391);
        check_bytes(path, disk.image_size,
                    "3b3f469752b46ca2a2c60dce13c1f5256e7b905bb009d0381dea41dfffb08b3c",
                    "553b13ebf39cd2e0970fe471f34c5d2dfca04b4b75f1162a7d03e9fe68300186");

        c = fdisk_new_context();
        CHECK(fdisk_save_user_sector_size(c, 4096, 4096) == 0);
        CHECK(fdisk_assign_device(c, path, 1) == 0);
        CHECK(fdisk_is_labeltype(c, FDISK_DISKLABEL_GPT));
        CHECK(fdisk_get_disklabel_id(c, &id) == 0);
        CHECK_STR(id, upper(DISK_UUID));
        CHECK(fdisk_get_partitions(c, &tb) == 0);
        CHECK_U64(fdisk_table_get_nents(tb), 2);
        for (size_t i = 0; i < 2; i++) {
                struct fdisk_partition *q = fdisk_table_get_partition(tb, i);

                CHECK_U64(fdisk_partition_get_start(q), p[i].layout.offset / 4096);
                CHECK_U64(fdisk_partition_get_size(q), p[i].layout.size / 4096);
                CHECK_STR(fdisk_partition_get_name(q), p[i].gpt.label);
        }
        free(id);
        fdisk_unref_table(tb);
        fdisk_unref_context(c);
        unlink(path);
}

/* 10-esp.conf: Type=esp SizeMinBytes=64M; 20-root.conf: Type=root
 * Label=root "A" é\\x Weight=2000 ReadOnly=yes; 30-swap.conf: Type=swap
 * SizeMaxBytes=100M NoAuto=yes PaddingMinBytes=1M; --size=1G. */
static void test_three_partitions(void) {
        static const char label[] = "root \"A\" \xc3\xa9\\\\x";
        char path[4200];
        nri_layout_disk disk;
        test_part p[3] = {
            {.layout = sizes(64 * MiB, NRI_LAYOUT_UNSET, NRI_LAYOUT_UNSET, 1000),
             .gpt = {.type_uuid = ESP, .uuid = "dac4058a-2fc0-4808-a7ef-b8b4501c00ce", .label = "esp"},
             .out = {.type = "esp",
                     .label = "esp",
                     .uuid = "dac4058a-2fc0-4808-a7ef-b8b4501c00ce",
                     .file = "10-esp.conf"}},
            {.layout = sizes(NRI_LAYOUT_UNSET, NRI_LAYOUT_UNSET, NRI_LAYOUT_UNSET, 2000),
             .gpt = {.type_uuid = ROOT_X86_64,
                     .uuid = "57bd1ad1-c688-450a-ba37-d1792ec72fbb",
                     .label = label,
                     .flags = FLAG_READ_ONLY},
             .out = {.type = "root-x86-64",
                     .label = label,
                     .uuid = "57bd1ad1-c688-450a-ba37-d1792ec72fbb",
                     .file = "20-root.conf"}},
            {.layout = sizes(NRI_LAYOUT_UNSET, 100 * MiB, 1 * MiB, 1000),
             .gpt = {.type_uuid = SWAP,
                     .uuid = "9f77b6a6-6333-4b04-ba32-24ec36c178ed",
                     .label = "swap",
                     .flags = FLAG_NO_AUTO},
             .out = {.type = "swap",
                     .label = "swap",
                     .uuid = "9f77b6a6-6333-4b04-ba32-24ec36c178ed",
                     .file = "30-swap.conf"}},
        };
        static const char want_json[] = "[\n"
                                        "\t{\n"
                                        "\t\t\"type\" : \"esp\",\n"
                                        "\t\t\"label\" : \"esp\",\n"
                                        "\t\t\"uuid\" : \"dac4058a-2fc0-4808-a7ef-b8b4501c00ce\",\n"
                                        "\t\t\"file\" : \"10-esp.conf\",\n"
                                        "\t\t\"node\" : \"g3.raw1\",\n"
                                        "\t\t\"offset\" : 1048576,\n"
                                        "\t\t\"old_size\" : 0,\n"
                                        "\t\t\"raw_size\" : 322252800,\n"
                                        "\t\t\"old_padding\" : 0,\n"
                                        "\t\t\"raw_padding\" : 0,\n"
                                        "\t\t\"activity\" : \"create\"\n"
                                        "\t},\n"
                                        "\t{\n"
                                        "\t\t\"type\" : \"root-x86-64\",\n"
                                        "\t\t\"label\" : \"root \\\"A\\\" \xc3\xa9\\\\\\\\x\",\n"
                                        "\t\t\"uuid\" : \"57bd1ad1-c688-450a-ba37-d1792ec72fbb\",\n"
                                        "\t\t\"file\" : \"20-root.conf\",\n"
                                        "\t\t\"node\" : \"g3.raw2\",\n"
                                        "\t\t\"offset\" : 323301376,\n"
                                        "\t\t\"old_size\" : 0,\n"
                                        "\t\t\"raw_size\" : 644513792,\n"
                                        "\t\t\"old_padding\" : 0,\n"
                                        "\t\t\"raw_padding\" : 0,\n"
                                        "\t\t\"activity\" : \"create\"\n"
                                        "\t},\n"
                                        "\t{\n"
                                        "\t\t\"type\" : \"swap\",\n"
                                        "\t\t\"label\" : \"swap\",\n"
                                        "\t\t\"uuid\" : \"9f77b6a6-6333-4b04-ba32-24ec36c178ed\",\n"
                                        "\t\t\"file\" : \"30-swap.conf\",\n"
                                        "\t\t\"node\" : \"g3.raw3\",\n"
                                        "\t\t\"offset\" : 967815168,\n"
                                        "\t\t\"old_size\" : 0,\n"
                                        "\t\t\"raw_size\" : 104857600,\n"
                                        "\t\t\"old_padding\" : 0,\n"
                                        "\t\t\"raw_padding\" : 1048576,\n"
                                        "\t\t\"activity\" : \"create\"\n"
                                        "\t}\n"
                                        "]\n";

        snprintf(path, sizeof(path), "%s/g3.raw", tmpdir);
        CHECK(build(path, p, 3, 512, 1024 * MiB, &disk) == 0);
        check_bytes(path, disk.image_size,
                    "b2b15b3af893be1c75c6d101b5326bfe27b73574cfd6f32141b38f48c74eb216",
                    "60d90475df9bfb0a30669cc6664a99036a662c849d977abf4415d0df2981357a");
        check_sfdisk(path, p, 3, &disk, (const char *const[]){NULL, "GUID:60", "GUID:63"});
        check_output("g3.raw", p, 3, want_json);
        unlink(path);
}

/* What libfdisk would silently get wrong or refuse is an error naming the
 * partition. */
typedef struct gpt_call {
        int fd;
        const char *path;
        const nri_gpt_table *t;
} gpt_call;

static int call_gpt_write(void *arg) {
        const gpt_call *g = arg;

        return nri_gpt_write(g->fd, g->path, g->t);
}

/* nri_gpt_write(), its result, and whether its message holds `want` (and
 * `want2`, unless NULL). */
static int refused(const gpt_call *g, const char *want, const char *want2) {
        int r;
        char *msg = check_capture_stderr(call_gpt_write, (void *)g, &r);

        if (!strstr(msg, want) || (want2 && !strstr(msg, want2))) {
                fprintf(stderr, "message without \"%s\": %s", want, msg);
                r = 0;
        }
        free(msg);
        return r;
}

static void test_refusals(void) {
        char path[4200];
        nri_gpt_part part = {.type_uuid = ESP,
                             .uuid = "dac4058a-2fc0-4808-a7ef-b8b4501c00ce",
                             .label = "esp",
                             .offset = 1 * MiB,
                             .size = 1 * MiB};
        nri_gpt_table t = {.sector_size = 512, .disk_uuid = DISK_UUID, .parts = &part, .n_parts = 1};
        gpt_call g = {.path = path, .t = &t};

        snprintf(path, sizeof(path), "%s/refuse.raw", tmpdir);
        g.fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        CHECK(g.fd >= 0 && ftruncate(g.fd, 4 * MiB) == 0);

        part.label = "a label of thirty-seven UTF-16 units!";
        CHECK(refused(&g, "partition 1", "36 UTF-16 units") == -EINVAL);

        part.label = "smile \xf0\x9f\x98\x80";
        CHECK(refused(&g, "Basic Multilingual Plane", NULL) == -EINVAL);

        part.label = "esp";
        part.offset = 1 * MiB + 100;
        CHECK(refused(&g, "partition 1", "multiples of the sector size") == -EINVAL);

        part.offset = 1 * MiB;
        part.size = 4 * MiB; /* past the backup GPT */
        CHECK(refused(&g, "partition 1", NULL) < 0);

        part.size = 1 * MiB;
        t.first_lba = 2048; /* a 4 MiB image is not aligned to 1 MiB by libfdisk */
        CHECK(refused(&g, "usable sectors", NULL) == -ERANGE);

        close(g.fd);
        unlink(path);
}

/* Dropped partitions are not in the output; an empty table prints "[]". */
static void test_output_empty(void) {
        cJSON *json = nri_output_json_build("x.raw", NULL, 0);
        char *text = nri_output_json_print(json);

        CHECK_STR(text, "[]\n");
        free(text);
        cJSON_Delete(json);
}

int main(void) {
        if (system("sfdisk --version >/dev/null 2>&1") != 0) {
                fprintf(stderr, "sfdisk is not installed; skipping\n");
                return 77;
        }
        make_tmpdir();
        test_esp_and_root();
        test_esp_and_root_4k();
        test_three_partitions();
        test_refusals();
        test_output_empty();
        rmdir(tmpdir);
        return check_result();
}
