/* partition-contents.h: what fills a partition's file system besides
 * repartConfig (partition-contents.c). */
#pragma once

#include "spec-args-internal.h"

/* The attributes `contents`, `storePaths`, and `nixStorePrefix` with
 * `stripNixStorePrefix`, of the partition `pn`. */
int spec_parse_contents(ctx *c, part_state *s, const nri_node *pn);
int spec_parse_store_paths(ctx *c, part_state *s, const nri_node *pn);
int spec_parse_store_prefix(ctx *c, part_state *s, const nri_node *pn);
/* Once the format is known: a vfat partition's targets must be names FAT
 * holds (fat-names.h), and differ in more than case. */
int spec_check_fat_names(ctx *c, part_state *s);
