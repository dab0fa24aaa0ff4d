/* test-verity.c: the dm-verity hash tree, checked with cryptsetup's
 * veritysetup.
 *
 * For data of one block, of exactly one hash block's worth, of one more, of
 * three levels (mostly holes), and with 512-byte blocks: the hash range
 * written into an image must be byte for byte what `veritysetup format`
 * writes with the same salt and UUID, with the same root hash;
 * `veritysetup verify` must accept it, and refuse it once a data byte is
 * flipped; `veritysetup dump` must show the parameters; the bytes around the
 * range must be untouched.  The salt and UUID derived from a seed are
 * checked against `openssl dgst -mac HMAC`.  Without veritysetup the test is
 * skipped (77). */
#include "check.h"
#include "testutil.h"

#include "verity.h"

#define SEED "0867da16-f251-457d-a9e8-c31f9a3c220b"

static char root[256];

static void hex(const uint8_t *p, size_t n, char *out) {
        for (size_t i = 0; i < n; i++)
                sprintf(out + 2 * i, "%02x", p[i]);
}

/* One case: `blocks` data blocks of `bs` bytes (data and hash blocks the
 * same), `dense` of them random, the rest a hole. */
static void check_case(uint64_t blocks, uint32_t bs, uint64_t dense) {
        char *img = fmt("%s/image", root), *data = fmt("%s/data", root), *hash = fmt("%s/hash", root),
             *ref = fmt("%s/ref", root), *c, *out;
        nri_verity_options o = {.data_block_size = bs, .hash_block_size = bs, .what = "test"};
        uint64_t data_off = 1 * MiB, data_size = blocks * bs, hash_size = 0, hash_off, img_size;
        uint8_t roothash[NRI_VERITY_ROOT_HASH_SIZE];
        char root_hex[65], salt_hex[65], uuid_s[NRI_UUID_STRING_MAX];
        nri_uuid seed;
        int fd;

        fprintf(stderr, "case: %" PRIu64 " blocks of %" PRIu32 ", %" PRIu64 " with data\n", blocks, bs,
                dense);
        CHECK(nri_uuid_parse(SEED, &seed) == 0);
        nri_verity_derive(&seed, &o);
        CHECK(nri_verity_hash_size(data_size, &o, &hash_size) == 0);
        hash_off = data_off + (data_size + MiB - 1) / MiB * MiB + MiB;
        img_size = hash_off + hash_size + 8192 + MiB;

        /* The image: 0xaa around the ranges, the data region random bytes
         * then a hole. */
        make_image(img, data_off, 0xaa);
        fd = open(img, O_RDWR | O_CLOEXEC);
        CHECK(fd >= 0 && ftruncate(fd, (off_t)img_size) == 0);
        {
                char *buf = malloc(bs);

                for (uint64_t i = 0; i < dense; i++) {
                        fill(buf, bs, (uint32_t)i + 1);
                        write_at(fd, data_off + i * bs, buf, bs);
                }
                memset(buf, 0xaa, bs);
                for (uint64_t p = hash_off - 4096; p < hash_off; p += bs)
                        write_at(fd, p, buf, bs);
                for (uint64_t p = hash_off + hash_size + 8192; p < hash_off + hash_size + 8192 + 4096;
                     p += bs)
                        write_at(fd, p, buf, bs);
                free(buf);
        }
        close(fd);

        /* Over 8192 more bytes than the tree needs: they must end up zeros. */
        CHECK(nri_verity_write(img, data_off, data_size, img, hash_off, hash_size + 8192, &o, roothash) ==
              0);
        hex(roothash, sizeof(roothash), root_hex);
        hex(o.salt, sizeof(o.salt), salt_hex);
        nri_uuid_format(&o.uuid, uuid_s);
        CHECK(bytes_are(img, 0, data_off, 0xaa));
        CHECK(bytes_are(img, hash_off - 4096, 4096, 0xaa));
        CHECK(bytes_are(img, hash_off + hash_size, 8192, 0));
        CHECK(bytes_are(img, hash_off + hash_size + 8192, 4096, 0xaa));

        c = fmt("dd if='%s' of='%s' bs=%u skip=%llu count=%llu status=none && "
                "dd if='%s' of='%s' bs=%u skip=%llu count=%llu status=none",
                img, data, bs, (unsigned long long)(data_off / bs), (unsigned long long)blocks, img, hash,
                bs, (unsigned long long)(hash_off / bs), (unsigned long long)(hash_size / bs));
        CHECK(run(c) == 0);
        free(c);

        /* What veritysetup writes with the same parameters. */
        c = fmt("rm -f '%s' && veritysetup format '%s' '%s' --salt=%s --uuid=%s --data-block-size=%u "
                "--hash-block-size=%u",
                ref, data, ref, salt_hex, uuid_s, bs, bs);
        out = capture(c);
        CHECK(contains(out, root_hex));
        free(c), free(out);
        c = fmt("cmp -n %llu '%s' '%s' && test $(stat -c %%s '%s') -le %llu", (unsigned long long)hash_size,
                ref, hash, ref, (unsigned long long)hash_size);
        CHECK(run(c) == 0);
        free(c);

        c = fmt("veritysetup verify '%s' '%s' %s", data, hash, root_hex);
        CHECK(run(c) == 0);
        free(c);
        c = fmt("veritysetup dump '%s'", hash);
        out = capture(c);
        CHECK(contains(out, "Hash type:       \t1"));
        CHECK(contains(out, "Hash algorithm:  \tsha256"));
        CHECK(contains(out, uuid_s));
        CHECK(contains(out, salt_hex));
        {
                char *want = fmt("Data blocks:     \t%" PRIu64 "\n", blocks);

                CHECK(contains(out, want));
                free(want);
        }
        free(c), free(out);

        /* A flipped byte in the data (one inside the hole, too): refused. */
        c = fmt("printf '\\001' | dd of='%s' bs=1 seek=%llu conv=notrunc status=none && "
                "! veritysetup verify '%s' '%s' %s 2>/dev/null",
                data, (unsigned long long)(data_size - 1), data, hash, root_hex);
        CHECK(run(c) == 0);
        free(c);
        if (dense) {
                c = fmt("dd if='%s' of='%s' bs=%u skip=%llu count=%llu status=none && "
                        "printf 'x' | dd of='%s' bs=1 seek=7 conv=notrunc status=none && "
                        "! veritysetup verify '%s' '%s' %s 2>/dev/null",
                        img, data, bs, (unsigned long long)(data_off / bs), (unsigned long long)blocks, data,
                        data, hash, root_hex);
                CHECK(run(c) == 0);
                free(c);
        }
        free(img), free(data), free(hash), free(ref);
}

static void test_derivation(void) {
        nri_verity_options o = {0};
        nri_uuid seed, d, h, want;
        uint8_t rh[NRI_VERITY_ROOT_HASH_SIZE];
        char salt_hex[65], *out;

        CHECK(nri_uuid_parse(SEED, &seed) == 0);
        nri_verity_derive(&seed, &o);
        hex(o.salt, sizeof(o.salt), salt_hex);
        out = capture("printf verity-salt | openssl dgst -sha256 -mac HMAC -macopt "
                      "hexkey:0867da16f251457da9e8c31f9a3c220b");
        CHECK(contains(out, salt_hex));
        free(out);
        /* The UUID: the first half of HMAC(seed, "verity-uuid"), made v4. */
        out = capture("printf verity-uuid | openssl dgst -sha256 -mac HMAC -macopt "
                      "hexkey:0867da16f251457da9e8c31f9a3c220b | sed 's/.*= //'");
        {
                uint8_t b[16];

                for (size_t i = 0; i < 16; i++)
                        CHECK(sscanf(out + 2 * i, "%2hhx", &b[i]) == 1);
                want = nri_uuid_make_v4(b);
                CHECK(nri_uuid_equal(&want, &o.uuid));
        }
        free(out);

        for (size_t i = 0; i < sizeof(rh); i++)
                rh[i] = (uint8_t)i;
        nri_verity_partition_uuids(rh, &d, &h);
        CHECK(d.b[0] == 0 && d.b[15] == 15 && h.b[0] == 16 && h.b[15] == 31);
}

static void test_sizes_and_refusals(void) {
        nri_verity_options o = {0};
        uint64_t s = 0;
        uint8_t rh[NRI_VERITY_ROOT_HASH_SIZE];
        char *img = fmt("%s/refused", root);

        /* systemd-repart's calculate_verity_hash_size(): 2 blocks for up to
         * 128 data blocks, then a block per 128 hashes per level. */
        CHECK(nri_verity_hash_size(4096, &o, &s) == 0 && s == 4096);
        CHECK(nri_verity_hash_size(128 * 4096, &o, &s) == 0 && s == 2 * 4096);
        CHECK(nri_verity_hash_size(129 * 4096, &o, &s) == 0 && s == 4 * 4096);
        CHECK(nri_verity_hash_size(UINT64_C(1) << 30, &o, &s) == 0 && s == (1 + 2048 + 16 + 1) * 4096);
        CHECK(nri_verity_hash_size(4095, &o, &s) == -EINVAL);
        CHECK(nri_verity_hash_size(0, &o, &s) == -EINVAL);
        o.data_block_size = 8192;
        CHECK(nri_verity_hash_size(8192, &o, &s) == -EINVAL);
        o.data_block_size = 3000;
        CHECK(nri_verity_hash_size(6000, &o, &s) == -EINVAL);
        o.data_block_size = 0;

        make_image(img, 4 * MiB, 0xaa);
        CHECK(nri_verity_write(img, 0, 1 * MiB, img, 2 * MiB, 4096, &o, rh) == -ENOSPC);
        /* 1 MiB of data needs 4 blocks: overlapping ranges, a hash range
         * and a data range beyond the file. */
        CHECK(nri_verity_write(img, 0, 1 * MiB, img, MiB - 4096, 4 * 4096, &o, rh) == -EINVAL);
        CHECK(nri_verity_write(img, 0, 1 * MiB, img, 4 * MiB - 4096, 4 * 4096, &o, rh) == -EINVAL);
        CHECK(nri_verity_write(img, 3 * MiB, 2 * MiB, img, 0, 6 * 4096, &o, rh) == -EINVAL);
        CHECK(bytes_are(img, 0, 4 * MiB, 0xaa));
        free(img);
}

int main(void) {
        char *c;

        if (!have_tool("veritysetup") || !have_tool("openssl")) {
                fprintf(stderr, "test-verity: veritysetup or openssl missing: skipped\n");
                return 77;
        }
        snprintf(root, sizeof(root), "/tmp/nri-test-verity-XXXXXX");
        if (!mkdtemp(root))
                abort();

        test_derivation();
        test_sizes_and_refusals();
        check_case(1, 4096, 1);
        check_case(128, 4096, 128);
        check_case(129, 4096, 100);
        check_case(128 * 128 + 1, 4096, 40); /* three levels, mostly a hole */
        check_case(300, 512, 250);           /* 16 hashes a block: three levels */
        check_case(2 * 1024, 4096, 2 * 1024);

        c = fmt("rm -rf '%s'", root);
        run(c);
        free(c);
        return check_result();
}
