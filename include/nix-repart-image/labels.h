/* labels.h: what a partition's label becomes in the GPT and in its file
 * system, and which labels cannot be written.  The evaluator refuses those
 * (spec.h); the builder checks again before it writes. */
#pragma once

/* A GPT partition name holds 36 UTF-16 units. */
#define NRI_GPT_LABEL_MAX_UTF16 36

/* Why `label` cannot be a GPT partition name, as a phrase to follow the
 * quoted label ("is not valid UTF-8", …), or NULL when it can.  libfdisk
 * 2.38 cuts a name past 36 UTF-16 units and writes an empty name for one
 * with a character outside the Basic Multilingual Plane (as systemd-repart
 * 252 does): both are refused. */
const char *nri_gpt_label_problem(const char *label);

/* systemd-repart 252's mangle_fat_label(): each non-ASCII character becomes
 * '_', the result is cut to 11 bytes and upper-cased, and control characters
 * and *?.,;:/\|+=<>[]" become '_'.  "" becomes "NO NAME" (mkfs.vfat's name
 * for no label).  *ret is malloc'ed.  Returns 0, -EINVAL (not UTF-8) or
 * -ENOMEM. */
int nri_vfat_mangle_label(const char *label, char **ret);

/* Why the FAT label `mangled` (from nri_vfat_mangle_label()) cannot be
 * written, or NULL: mkfs.vfat refuses a label that starts with a space. */
const char *nri_vfat_label_problem(const char *mangled);
