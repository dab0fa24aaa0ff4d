/* repart-config.h: a partition's repartConfig, read as systemd-repart 252
 * reads a [Partition] section (repart-config.c). */
#pragma once

#include "spec-args-internal.h"

/* Reads every key of s->cfg into s->p. */
int spec_parse_repart_config(ctx *c, part_state *s);
/* Once all of the partition is read: sizes against each other, the
 * implied Format= and Minimize=, then the flags. */
int spec_check_ranges(ctx *c, part_state *s);
int spec_check_format(ctx *c, part_state *s);
/* Verity=, VerityMatchKey= and the block sizes, on one partition (the pairs
 * are checked across partitions by spec-args.c). */
int spec_check_verity(ctx *c, part_state *s);
int spec_merge_flags(ctx *c, part_state *s);
