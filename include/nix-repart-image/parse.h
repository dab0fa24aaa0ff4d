/* parse.h: systemd's parsers for the values of repartConfig keys.
 *
 * Each returns 0 and writes *ret, or a negative errno and leaves *ret alone:
 * -EINVAL for malformed text, -ERANGE for a value out of range. */
#pragma once

#include <stdint.h>

/* systemd's parse_size(): a decimal number with an optional fraction and an
 * optional suffix B, K, M, G, T, P, E (powers of `base`: 1000 or 1024, 1024
 * for repart); white space before the number and between number and suffix
 * allowed; a '-' sign is -ERANGE.  Components with decreasing suffixes add
 * up ("1G 512M").  "96M", "1.5G", "4096". */
int nri_parse_size(const char *s, uint64_t base, uint64_t *ret);

/* systemd's parse_boolean(): 1/yes/y/true/t/on or 0/no/n/false/f/off, any
 * case.  Returns 1, 0 or -EINVAL. */
int nri_parse_boolean(const char *s);

/* systemd's safe_atou64(): decimal, 0x hexadecimal, 0o or C leading-zero
 * octal, 0b binary; a '+' is allowed, a negative number is -ERANGE ("-0" is
 * 0).  Leading white space is refused (systemd's config parser strips it
 * before the value gets here). */
int nri_parse_u64(const char *s, uint64_t *ret);

/* systemd's safe_atoi32(): an optional sign, then digits with the prefixes
 * of nri_parse_u64(); leading white space refused as there. */
int nri_parse_i32(const char *s, int32_t *ret);

/* Rounding used for SizeMinBytes= (down) and SizeMaxBytes= (up). */
uint64_t nri_round_down(uint64_t v, uint64_t to);
/* Returns UINT64_MAX when rounding up would overflow. */
uint64_t nri_round_up(uint64_t v, uint64_t to);
