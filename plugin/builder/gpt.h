/* gpt.h: writing the partition table.
 *
 * A new GPT with 128 entries, its backup at the end of the disk and a
 * protective MBR, written through libfdisk the way systemd-repart 252 writes
 * one for a fresh image (so first and last usable LBA are libfdisk's), with
 * nothing random in it: disk and partition UUIDs come from the caller. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct nri_gpt_part {
        const char *type_uuid; /* the type GUID, 8-4-4-4-12, either case */
        const char *uuid;      /* the partition UUID */
        const char *label;     /* UTF-8, at most 36 UTF-16 units; NULL or "" for none */
        uint64_t flags;        /* the attribute bits, as they go into the entry */
        uint64_t offset, size; /* bytes, multiples of the sector size; size > 0 */
} nri_gpt_part;

typedef struct nri_gpt_table {
        uint32_t sector_size; /* the logical sector size the GPT is written for */
        const char *disk_uuid;
        const nri_gpt_part *parts; /* entry i is partition number i + 1 */
        size_t n_parts;
        /* The first and last usable LBA the layout assumed
         * (nri_layout_disk); a libfdisk that puts them elsewhere is an error
         * rather than a silent difference.  0 = do not check. */
        uint64_t first_lba, last_lba;
} nri_gpt_table;

/* Writes the table onto the image open read-write at `fd`, which already
 * has its final size (a multiple of the sector size); `name` is the image's
 * path, for messages.  Touches only the first and last sectors the two GPTs
 * and the protective MBR occupy.  Leaves `fd` open (libfdisk fsyncs it as
 * it writes).
 *
 * 0, or a negative errno after a message naming the step, and the
 * partition ("partition 2 …") where one is at fault. */
int nri_gpt_write(int fd, const char *name, const nri_gpt_table *t);
