/* fat-names.h: which file names FAT, as mtools writes it, can hold.  The
 * evaluator refuses a vfat partition's targets that break these rules
 * (contents, CopyFiles= and MakeDirectories= targets, where storePaths
 * land); the builder applies them to every name it copies. */
#pragma once

#include <locale.h>
#include <stddef.h>

/* The C.UTF-8 locale, for the case of characters as mtools decides it, or
 * (locale_t)0 where the system lacks it (then only ASCII letters have a
 * case).  Made once; never freed. */
locale_t nri_fat_locale(void);

/* Why FAT cannot hold the file name `name` (one path component) as it is,
 * as a phrase ("FAT names cannot contain ':'"), or NULL when it can.  The
 * phrase may be written into `buf` (at least 128 bytes).  The rules:
 * not empty, UTF-8, no control character and none of " * / : < > ? \ |,
 * nothing beyond the Basic Multilingual Plane (mtools keeps 16 bits of a
 * character), at most 255 UTF-16 units, no trailing dot or space (FAT drops
 * them), not a DOS device name (CON, AUX, PRN, NUL, COM1-4, LPT1-4), and
 * not a name outside ASCII that mtools would store as an 8.3 short name
 * alone (through code page 437, which does not keep it). */
const char *nri_fat_name_problem(const char *name, locale_t utf8, char *buf, size_t size);

/* `path` case-folded as mtools compares names (towupper() of each
 * character; ASCII only without a locale), malloc'ed; NULL with errno
 * EINVAL when it is not UTF-8, ENOMEM without memory. */
char *nri_fat_fold(const char *path, locale_t utf8);
