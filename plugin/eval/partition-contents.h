/* partition-contents.h: what fills a partition's file system besides
 * repartConfig (partition-contents.c). */
#pragma once

#include "spec-args-internal.h"

/* The attributes `contents`, `storePaths`, and `nixStorePrefix` with
 * `stripNixStorePrefix`, of the partition `pn`. */
int spec_parse_contents(ctx *c, part_state *s, const nri_node *pn);
int spec_parse_store_paths(ctx *c, part_state *s, const nri_node *pn);
int spec_parse_store_prefix(ctx *c, part_state *s, const nri_node *pn);
/* `nixPathRegistration`, once storePaths is known. */
int spec_parse_registration(ctx *c, part_state *s, const nri_node *pn);
/* `deduplicateStore`, once the format is known (ext4 only). */
int spec_parse_dedup(ctx *c, part_state *s, const nri_node *pn);
/* Once the format is known: the targets the partition names must be names
 * its file system holds (the name rules of its row, file-systems.h: FAT's
 * for vfat), and differ in more than what it folds (case, for FAT). */
int spec_check_names(ctx *c, part_state *s);
