/* utf8.h: UTF-8, decoded in one place for both halves.
 *
 * Valid UTF-8 is what systemd calls valid (utf8_encoded_valid_unichar()):
 * no overlong forms, no surrogates, nothing beyond U+10FFFF, none of the
 * noncharacters U+FDD0..U+FDEF and U+xxFFFE/U+xxFFFF.  Labels, paths,
 * file names in FAT and ext4 labels are all read through nri_utf8_next(). */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* One code point at `s`: its length in bytes, with the code point in *ret,
 * or -EINVAL (and *ret untouched).  Stops at the NUL of a truncated
 * sequence. */
int nri_utf8_next(const char *s, uint32_t *ret);

/* The code point `c` (below U+110000) as UTF-8 into `out`, which has room
 * for 4 bytes; returns the bytes written. */
size_t nri_utf8_put(char *out, uint32_t c);

/* The number of UTF-16 code units of `s` (a GPT partition name holds 36),
 * or -EINVAL when it is not valid UTF-8. */
long nri_utf16_length(const char *s);

/* The length of the character at `p` for quoting it in a message: the
 * whole sequence when `p` starts a well-formed one, else 1 (half a UTF-8
 * sequence is not valid text in a message). */
size_t nri_utf8_char_len(const char *p);

/* The longest prefix of `s` made of whole characters that fits `max`
 * bytes, into *ret_len.  0, or -EINVAL when the prefix read so far is not
 * valid UTF-8. */
int nri_utf8_prefix(const char *s, size_t max, size_t *ret_len);
