/* test-utf8.c: UTF-8 is read as systemd reads it, in one place (utf8.h). */
#include <errno.h>
#include <stdlib.h>

#include "check.h"
#include "nix-repart-image/utf8.h"

static void test_utf16_length(void) {
        CHECK(nri_utf16_length("") == 0);
        CHECK(nri_utf16_length("nixos") == 5);
        CHECK(nri_utf16_length("\xc3\xa4") == 1);         /* ä */
        CHECK(nri_utf16_length("\xe2\x82\xac") == 1);     /* € */
        CHECK(nri_utf16_length("\xf0\x9f\x90\xa7") == 2); /* 🐧: a surrogate pair */
        CHECK(nri_utf16_length("r\xc3\xa4\xf0\x9f\x90\xa7t") == 5);
        CHECK(nri_utf16_length("\xf4\x8f\xbf\xbd") == 2); /* U+10FFFD */
        CHECK(nri_utf16_length("123456789012345678901234567890123456") == 36);

        CHECK(nri_utf16_length("\xff") == -EINVAL);
        CHECK(nri_utf16_length("\x80") == -EINVAL);  /* lone continuation */
        CHECK(nri_utf16_length("a\xc3") == -EINVAL); /* truncated */
        CHECK(nri_utf16_length("\xe2\x82") == -EINVAL);
        CHECK(nri_utf16_length("\xc0\xaf") == -EINVAL);             /* overlong '/' */
        CHECK(nri_utf16_length("\xe0\x80\xaf") == -EINVAL);         /* overlong '/' */
        CHECK(nri_utf16_length("\xed\xa0\x80") == -EINVAL);         /* surrogate U+D800 */
        CHECK(nri_utf16_length("\xf4\x90\x80\x80") == -EINVAL);     /* U+110000 */
        CHECK(nri_utf16_length("\xef\xbf\xbe") == -EINVAL);         /* U+FFFE */
        CHECK(nri_utf16_length("\xef\xb7\x90") == -EINVAL);         /* U+FDD0 */
        CHECK(nri_utf16_length("\xf8\x88\x80\x80\x80") == -EINVAL); /* 5-byte form */
}

static void test_next(void) {
        uint32_t c = 0;

        CHECK(nri_utf8_next("a", &c) == 1 && c == 'a');
        CHECK(nri_utf8_next("\xc3\xa4", &c) == 2 && c == 0xe4);
        CHECK(nri_utf8_next("\xe2\x82\xac", &c) == 3 && c == 0x20ac);
        CHECK(nri_utf8_next("\xf0\x9f\x90\xa7", &c) == 4 && c == 0x1f427);
        c = 7;
        CHECK(nri_utf8_next("\xe0\xc3\x80", &c) == -EINVAL); /* a lead byte where a continuation goes */
        CHECK(c == 7);                                       /* untouched on failure */
}

static void test_put(void) {
        static const uint32_t cps[] = {0x24, 0xe4, 0x7ff, 0x800, 0x20ac, 0xfffd, 0x10000, 0x1f427, 0x10fffd};
        char buf[5];

        for (size_t i = 0; i < sizeof(cps) / sizeof(cps[0]); i++) {
                uint32_t back = 0;
                size_t n = nri_utf8_put(buf, cps[i]);

                buf[n] = 0;
                CHECK(nri_utf8_next(buf, &back) == (int)n && back == cps[i]);
        }
}

static void test_char_len(void) {
        CHECK(nri_utf8_char_len("ab") == 1);
        CHECK(nri_utf8_char_len("\xc3\xa4x") == 2);
        CHECK(nri_utf8_char_len("\xf0\x9f\x90\xa7") == 4);
        CHECK(nri_utf8_char_len("\xc3x") == 1); /* half a sequence: one byte */
        CHECK(nri_utf8_char_len("\xff") == 1);
}

/* systemd-repart 252's mangle_linux_fs_label(): whole characters within
 * the bytes an ext4 label holds. */
static void test_prefix(void) {
        size_t len = 99;

        CHECK(nri_utf8_prefix("nixos", 16, &len) == 0 && len == 5);
        CHECK(nri_utf8_prefix("0123456789abcdefgh", 16, &len) == 0 && len == 16);
        /* 15 ASCII bytes and a 2-byte ä: the ä does not fit */
        CHECK(nri_utf8_prefix("0123456789abcde\xc3\xa4", 16, &len) == 0 && len == 15);
        CHECK(nri_utf8_prefix("0123456789abcd\xc3\xa4", 16, &len) == 0 && len == 16);
        CHECK(nri_utf8_prefix("ab\xff", 16, &len) == -EINVAL);
}

int main(void) {
        test_utf16_length();
        test_next();
        test_put();
        test_char_len();
        test_prefix();
        return check_result();
}
