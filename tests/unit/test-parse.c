/* test-parse.c: repartConfig values parse as systemd 252 parses them. */
#include <errno.h>

#include "check.h"
#include "nix-repart-image/parse.h"

#define KIB UINT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

static int size(const char *s, uint64_t *ret) {
        return nri_parse_size(s, 1024, ret);
}

static void test_sizes(void) {
        uint64_t v = 0;

        CHECK(size("96M", &v) == 0);
        CHECK_U64(v, 100663296);
        CHECK(size("1.5G", &v) == 0);
        CHECK_U64(v, GIB + GIB / 2);
        CHECK(size("4096", &v) == 0);
        CHECK_U64(v, 4096);
        CHECK(size("1K", &v) == 0);
        CHECK_U64(v, KIB);
        CHECK(size("512B", &v) == 0);
        CHECK_U64(v, 512);
        CHECK(size("0", &v) == 0);
        CHECK_U64(v, 0);
        CHECK(size("2T", &v) == 0);
        CHECK_U64(v, 2 * GIB * 1024);
        CHECK(size("1E", &v) == 0);
        CHECK_U64(v, UINT64_C(1) << 60);

        /* White space before the number and before the suffix is fine. */
        CHECK(size(" 1 K", &v) == 0);
        CHECK_U64(v, KIB);
        CHECK(size("\t10M", &v) == 0);
        CHECK_U64(v, 10 * MIB);
        /* A trailing blank is ignored after a bare number, not after a
         * suffix: it would start another, empty component. */
        CHECK(size("1 ", &v) == 0);
        CHECK_U64(v, 1);
        CHECK(size("1K ", &v) == -EINVAL);

        /* Fractions: the digits after the point, "10.M" is 10M. */
        CHECK(size("0.5K", &v) == 0);
        CHECK_U64(v, 512);
        CHECK(size("10.M", &v) == 0);
        CHECK_U64(v, 10 * MIB);
        CHECK(size("1.25 M", &v) == 0);
        CHECK_U64(v, MIB + MIB / 4);

        /* Components add up, largest suffix first. */
        CHECK(size("1G 512M", &v) == 0);
        CHECK_U64(v, GIB + 512 * MIB);
        CHECK(size("1M 1G", &v) == -EINVAL);
        CHECK(size("1M 1M", &v) == -EINVAL);

        /* A '+' is strtoull()'s business and accepted, as by systemd. */
        CHECK(size("+4K", &v) == 0);
        CHECK_U64(v, 4 * KIB);

        /* Base 1000 has the same suffixes with SI factors. */
        CHECK(nri_parse_size("96M", 1000, &v) == 0);
        CHECK_U64(v, 96000000);
}

static void test_sizes_refused(void) {
        uint64_t v = 42;

        CHECK(size("-1", &v) == -ERANGE);
        CHECK(size(" -1K", &v) == -ERANGE);
        CHECK(size("-0", &v) == -ERANGE);
        CHECK(size("1Q", &v) == -EINVAL);
        CHECK(size("1KB", &v) == -EINVAL);
        CHECK(size("1k", &v) == -EINVAL);
        CHECK(size("1Mi", &v) == -EINVAL);
        CHECK(size("", &v) == -EINVAL);
        CHECK(size(" ", &v) == -EINVAL);
        CHECK(size("M", &v) == -EINVAL);
        CHECK(size(".5M", &v) == -EINVAL);
        CHECK(size("1.-5M", &v) == -ERANGE); /* "1." then "-5M" */
        CHECK(size("0x10", &v) == -EINVAL);
        CHECK(size("99999999999E", &v) == -ERANGE);
        CHECK(size("16E", &v) == -ERANGE);
        CHECK(size("18446744073709551616", &v) == -ERANGE);
        CHECK(size("17179869184G", &v) == -ERANGE);
        CHECK(nri_parse_size("1K", 512, &v) == -EINVAL);
        /* Nothing is written on failure. */
        CHECK_U64(v, 42);

        CHECK(size("18446744073709551615", &v) == 0);
        CHECK_U64(v, UINT64_MAX);
        CHECK(size("15E", &v) == 0);
        CHECK_U64(v, UINT64_C(15) << 60);
}

static void test_booleans(void) {
        static const char *const yes[] = {"1", "yes", "y", "true", "t", "on", "YES", "True", "ON"};
        static const char *const no[] = {"0", "no", "n", "false", "f", "off", "No", "FALSE", "Off"};
        static const char *const bad[] = {"", "2", "yess", "enabled", " yes", "yes ", "nope", "-1"};

        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
                CHECK(nri_parse_boolean(yes[i]) == 1);
        for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
                CHECK(nri_parse_boolean(no[i]) == 0);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                CHECK(nri_parse_boolean(bad[i]) == -EINVAL);
}

static void test_u64(void) {
        uint64_t v = 7;

        CHECK(nri_parse_u64("0", &v) == 0);
        CHECK_U64(v, 0);
        CHECK(nri_parse_u64("1152921504606846976", &v) == 0);
        CHECK_U64(v, UINT64_C(1) << 60);
        CHECK(nri_parse_u64("0x1000000000000000", &v) == 0);
        CHECK_U64(v, UINT64_C(1) << 60);
        CHECK(nri_parse_u64("0X8000000000000005", &v) == 0);
        CHECK_U64(v, (UINT64_C(1) << 63) | 5);
        CHECK(nri_parse_u64("0xffffffffffffffff", &v) == 0);
        CHECK_U64(v, UINT64_MAX);
        /* systemd's prefixes: 0o and C's leading zero are octal, 0b binary. */
        CHECK(nri_parse_u64("0o17", &v) == 0);
        CHECK_U64(v, 15);
        CHECK(nri_parse_u64("010", &v) == 0);
        CHECK_U64(v, 8);
        CHECK(nri_parse_u64("0b101", &v) == 0);
        CHECK_U64(v, 5);
        CHECK(nri_parse_u64("+5", &v) == 0);
        CHECK_U64(v, 5);
        CHECK(nri_parse_u64("-0", &v) == 0);
        CHECK_U64(v, 0);

        v = 7;
        CHECK(nri_parse_u64("-1", &v) == -ERANGE);
        CHECK(nri_parse_u64("0x10000000000000000", &v) == -ERANGE);
        CHECK(nri_parse_u64("18446744073709551616", &v) == -ERANGE);
        CHECK(nri_parse_u64("", &v) == -EINVAL);
        CHECK(nri_parse_u64(" 5", &v) == -EINVAL);
        CHECK(nri_parse_u64("\t5", &v) == -EINVAL);
        CHECK(nri_parse_u64("5 ", &v) == -EINVAL);
        CHECK(nri_parse_u64("0x", &v) == -EINVAL);
        CHECK(nri_parse_u64("0xg", &v) == -EINVAL);
        CHECK(nri_parse_u64("09", &v) == -EINVAL);
        CHECK(nri_parse_u64("0b2", &v) == -EINVAL);
        CHECK(nri_parse_u64("1K", &v) == -EINVAL);
        CHECK_U64(v, 7);
}

static void test_i32(void) {
        int32_t v = 7;

        CHECK(nri_parse_i32("0", &v) == 0);
        CHECK(v == 0);
        CHECK(nri_parse_i32("-100", &v) == 0);
        CHECK(v == -100);
        CHECK(nri_parse_i32("+100", &v) == 0);
        CHECK(v == 100);
        CHECK(nri_parse_i32("2147483647", &v) == 0);
        CHECK(v == INT32_MAX);
        CHECK(nri_parse_i32("-2147483648", &v) == 0);
        CHECK(v == INT32_MIN);
        CHECK(nri_parse_i32("0x10", &v) == 0);
        CHECK(v == 16);

        v = 7;
        CHECK(nri_parse_i32("2147483648", &v) == -ERANGE);
        CHECK(nri_parse_i32("-2147483649", &v) == -ERANGE);
        CHECK(nri_parse_i32("", &v) == -EINVAL);
        CHECK(nri_parse_i32(" 1", &v) == -EINVAL);
        CHECK(nri_parse_i32("1.0", &v) == -EINVAL);
        CHECK(nri_parse_i32("one", &v) == -EINVAL);
        CHECK(v == 7);
}

static void test_rounding(void) {
        CHECK_U64(nri_round_down(100663296, 4096), 100663296);
        CHECK_U64(nri_round_down(4097, 4096), 4096);
        CHECK_U64(nri_round_down(4095, 4096), 0);
        CHECK_U64(nri_round_up(4097, 4096), 8192);
        CHECK_U64(nri_round_up(4096, 4096), 4096);
        CHECK_U64(nri_round_up(0, 4096), 0);
        CHECK_U64(nri_round_up(UINT64_MAX - 4095, 4096), UINT64_MAX - 4095);
        CHECK_U64(nri_round_up(UINT64_MAX - 4094, 4096), UINT64_MAX);
        CHECK_U64(nri_round_up(UINT64_MAX, 4096), UINT64_MAX);
}

int main(void) {
        test_sizes();
        test_sizes_refused();
        test_booleans();
        test_u64();
        test_i32();
        test_rounding();
        return check_result();
}
