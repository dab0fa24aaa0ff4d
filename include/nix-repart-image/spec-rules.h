/* spec-rules.h: what a spec may hold.
 *
 * The evaluator applies these rules to an expression (plugin/eval/) and
 * the builder applies them again to the spec it reads (spec-check.c), so
 * a hand-made .attrs.json meets the same rules with the same words: names,
 * labels, split names, paths in a file system and in the store.
 *
 * Each nri_why_not_*() returns NULL when the value is fine, else why not,
 * as a phrase to follow "<attribute path>: " in a message, allocated from
 * `a`. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"

/* Pathname limits systemd's path_is_valid() checks. */
#define NRI_PATH_MAX 4096
#define NRI_NAME_MAX 255
/* The grain systemd-repart rounds the sizes of repart.d files to. */
#define NRI_SIZE_GRAIN 4096

/* `s` quoted, with '"', '\' and control characters escaped, for a
 * message. */
const char *nri_quote(nri_arena *a, const char *s);

/* The image's name or version (they make its file name and the
 * derivation's name). */
const char *nri_why_not_file_name_part(nri_arena *a, const char *s);
/* A partition's name (it names the definition file "<name>.conf"). */
const char *nri_why_not_partition_name(nri_arena *a, const char *s);
/* A partition label, its specifiers expanded: what systemd's
 * gpt_partition_label_valid() and libfdisk accept (labels.h). */
const char *nri_why_not_label(nri_arena *a, const char *label);
/* A SplitName= other than "-" (none): the specifiers of
 * nri_split_name_expand() only. */
const char *nri_why_not_split_name(nri_arena *a, const char *t);

/* The absolute path `in` normalised as systemd's path_simplify() does
 * ("//", "/./" and a trailing '/' folded) into *ret; NULL, or why it is
 * not acceptable (not UTF-8, relative, "..", a component or the whole too
 * long) as a phrase to follow the quoted path. */
const char *nri_normalise_path(nri_arena *a, const char *in, const char **ret);
/* Whether `path` is absolute and already in that normal form. */
bool nri_path_is_normal(const char *path);

/* The length of the store path `path` is or is inside of
 * (<store_dir>/<32 hash characters>-<name>), 0 when it is not in the
 * store. */
size_t nri_store_path_length(const char *store_dir, const char *path);
