/* fat-short.h: the short (8.3) names FAT keeps beside long names, made as
 * mtools 4.0 makes them.
 *
 * vfat.c used to create every directory and file with mmd and mcopy; it now
 * writes the directories itself (fat-fill.h), and its images are the bytes
 * mtools made, so its short names are mtools': the name converted as
 * dos_name() converts it (upper case through towupper() in C.UTF-8, to code
 * page 437 through iconv's transliteration, '?' made '_'), "~1" added to a
 * name that had to be shortened, "~2", "~3", … while the short name is
 * taken in the directory, or is a DOS device name, or holds a character a
 * short name cannot (autorename_short()).  The case flags of a name that
 * fits 8.3 in one case per part ("readme.txt") go into the entry instead of
 * a long name.
 *
 * mtools also decides from a hash bitmap of the directory's names whether
 * a short name may be taken (dirCache.c): it can say "taken" for a name
 * that is not, and then a number is skipped; fat-fill.c keeps the same
 * bitmap, with the hashes below, to skip the same numbers. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* The case flags of a directory entry (its byte 12): base and extension
 * are to be shown in lower case. */
#define NRI_FAT_CASE_BASE 0x08
#define NRI_FAT_CASE_EXT 0x10
/* In nri_fat_short.flags: the name needs a long name (mtools' "mangled"
 * bit 1); bit 2: it was shortened, so it gets a numeric tail. */
#define NRI_FAT_NEEDS_LONG 0x01
#define NRI_FAT_TRUNCATED 0x02

typedef struct nri_fat_short {
        uint8_t name[11]; /* base and extension, space-padded, code page 437 */
        int flags;        /* NRI_FAT_NEEDS_LONG, NRI_FAT_TRUNCATED, NRI_FAT_CASE_* */
} nri_fat_short;

typedef struct nri_fat_names nri_fat_names;

/* The C.UTF-8 locale and the code page 437 conversions.  0, -ENOMEM, or
 * -ENOTSUP when the system has neither (see README: the bundle brings
 * both). */
int nri_fat_names_new(nri_fat_names **ret);
void nri_fat_names_free(nri_fat_names *n);

/* dos_name(): the short name mtools starts from for `name` (one path
 * component, UTF-8, as vfat.c's checks let through). */
void nri_fat_short_name(nri_fat_names *n, const char *name, nri_fat_short *ret);

/* autorename_short(): characters a short name cannot hold made '_', then
 * "~1", or the number after '~' raised by one when `bump`. */
void nri_fat_autorename(uint8_t name[11], bool bump);

/* Whether mtools takes the short name for a DOS device name (CON, AUX, PRN,
 * NUL, COM1-4, LPT1-4, or only spaces) or finds a character in it that a
 * short name cannot hold: either makes it rename the short name. */
bool nri_fat_short_refused(const uint8_t name[11]);

/* The key two names compare equal by, as mtools compares them
 * (wcscasecmp(): towlower() of each character): of a long name (UTF-8), or
 * of a short name ("BASE.EXT" through code page 437).  malloc'ed UTF-8;
 * NULL when out of memory. */
char *nri_fat_key_long(nri_fat_names *n, const char *name);
char *nri_fat_key_short(nri_fat_names *n, const uint8_t name[11]);

/* What mtools' directory cache hashes a name to (calcHash()): of a long
 * name, of a short name as unix_name() spells it, of a volume label (all
 * eleven characters).  For the bitmap it decides with whether a short name
 * may be taken (fat-fill.c). */
uint32_t nri_fat_hash_long(nri_fat_names *n, const char *name);
uint32_t nri_fat_hash_short(nri_fat_names *n, const uint8_t name[11]);
uint32_t nri_fat_hash_label(nri_fat_names *n, const uint8_t name[11]);
