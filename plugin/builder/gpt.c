/* gpt.c: the partition table, through libfdisk.
 *
 * The calls are the ones systemd-repart 252 makes for --empty=create
 * (context_load_partition_table, context_mangle_partitions,
 * context_write_partition_table): a new "gpt" label on the device, the disk
 * UUID set, every partition added with explicit start and size, then one
 * write.  Using the same library the same way gives the same header bytes,
 * including the first usable LBA libfdisk aligns to 1 MiB. */
#include "gpt.h"
#include "log.h"
#include "nix-repart-image/labels.h"
#include "nix-repart-image/layout.h"
#include "nix-repart-image/macro.h"

#include <errno.h>
#include <inttypes.h>
#include <libfdisk/libfdisk.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void context_release(struct fdisk_context **c) {
        /* Without fdisk_deassign_device(), which would fsync(): the fd is the
         * caller's, and libfdisk leaves an fd it was given open. */
        fdisk_unref_context(*c);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct fdisk_partition *, fdisk_unref_partition);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct fdisk_parttype *, fdisk_unref_parttype);

static int add_partition(struct fdisk_context *c, size_t i, const nri_gpt_part *p, uint32_t ss) {
        _cleanup_(fdisk_unref_partitionp) struct fdisk_partition *q = NULL;
        _cleanup_(fdisk_unref_parttypep) struct fdisk_parttype *t = NULL;
        size_t partno = i + 1;
        int r;

        if (p->size == 0 || p->offset % ss != 0 || p->size % ss != 0)
                return log_error_errno(-EINVAL,
                                       "writing the partition table: partition %zu: offset %" PRIu64
                                       " and size %" PRIu64
                                       " must be non-zero multiples of the sector size %" PRIu32,
                                       partno, p->offset, p->size, ss);
        if (p->label && nri_gpt_label_problem(p->label))
                return log_error_errno(-EINVAL,
                                       "writing the partition table: partition %zu: label \"%s\" %s", partno,
                                       p->label, nri_gpt_label_problem(p->label));

        t = fdisk_new_parttype();
        if (!t)
                return log_error_errno(-ENOMEM, "writing the partition table: partition %zu: out of memory",
                                       partno);
        r = fdisk_parttype_set_typestr(t, p->type_uuid);
        if (r < 0)
                return log_error_errno(r, "writing the partition table: partition %zu: type GUID %s: %s",
                                       partno, p->type_uuid, strerror(-r));

        q = fdisk_new_partition();
        if (!q)
                return log_error_errno(-ENOMEM, "writing the partition table: partition %zu: out of memory",
                                       partno);
        r = fdisk_partition_set_type(q, t);
        if (r >= 0)
                r = fdisk_partition_size_explicit(q, 1);
        if (r >= 0)
                r = fdisk_partition_set_start(q, p->offset / ss);
        if (r >= 0)
                r = fdisk_partition_set_size(q, p->size / ss);
        if (r >= 0)
                r = fdisk_partition_set_partno(q, i);
        if (r >= 0)
                r = fdisk_partition_set_uuid(q, p->uuid);
        if (r >= 0)
                r = fdisk_partition_set_name(q, p->label ? p->label : "");
        if (r < 0)
                return log_error_errno(
                    r, "writing the partition table: partition %zu: describing it to libfdisk: %s", partno,
                    strerror(-r));

        r = fdisk_add_partition(c, q, NULL);
        if (r < 0)
                return log_error_errno(
                    r,
                    "writing the partition table: partition %zu: libfdisk refused sectors %" PRIu64
                    "-%" PRIu64 " (usable: %" PRIu64 "-%" PRIu64 "): %s",
                    partno, p->offset / ss, (p->offset + p->size) / ss - 1, (uint64_t)fdisk_get_first_lba(c),
                    (uint64_t)fdisk_get_last_lba(c), strerror(-r));

        r = fdisk_gpt_set_partition_attrs(c, i, p->flags);
        if (r < 0)
                return log_error_errno(
                    r,
                    "writing the partition table: partition %zu: setting attribute flags 0x%016" PRIx64
                    ": %m",
                    partno, p->flags);
        return 0;
}

int nri_gpt_write(int fd, const char *name, const nri_gpt_table *t) {
        _cleanup_(context_release) struct fdisk_context *c = NULL;
        struct stat st;
        int r;

        if (t->sector_size < 512 || (t->sector_size & (t->sector_size - 1)) != 0)
                return log_error_errno(-EINVAL,
                                       "writing the partition table: %s: sector size %" PRIu32
                                       " is not a power of two of at least 512",
                                       name, t->sector_size);
        if (fstat(fd, &st) < 0)
                return log_error_errno(-errno, "writing the partition table: %s: %m", name);
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size % t->sector_size != 0)
                return log_error_errno(-EINVAL,
                                       "writing the partition table: %s: size %" PRIu64
                                       " is not a multiple of the sector size %" PRIu32,
                                       name, (uint64_t)st.st_size, t->sector_size);
        if (t->n_parts > NRI_GPT_ENTRIES)
                return log_error_errno(
                    -E2BIG,
                    "writing the partition table: %s: %zu partitions do not fit the %d entries of a GPT",
                    name, t->n_parts, NRI_GPT_ENTRIES);

        c = fdisk_new_context();
        if (!c)
                return log_error_errno(-ENOMEM, "writing the partition table: %s: out of memory", name);

        /* An image file has no sector size of its own: say it before
         * libfdisk looks at the device (a block device keeps its own). */
        if (S_ISREG(st.st_mode)) {
                r = fdisk_save_user_sector_size(c, t->sector_size, t->sector_size);
                if (r < 0)
                        return log_error_errno(
                            r, "writing the partition table: %s: sector size %" PRIu32 ": %m", name,
                            t->sector_size);
        }

        r = fdisk_assign_device_by_fd(c, fd, name, /* readonly = */ 0);
        if (r < 0)
                return log_error_errno(r, "writing the partition table: %s: libfdisk cannot open it: %m",
                                       name);
        if (fdisk_get_sector_size(c) != t->sector_size)
                return log_error_errno(
                    -EINVAL,
                    "writing the partition table: %s: libfdisk uses %lu-byte sectors, the layout %" PRIu32,
                    name, fdisk_get_sector_size(c), t->sector_size);

        r = fdisk_create_disklabel(c, "gpt");
        if (r < 0)
                return log_error_errno(r, "writing the partition table: %s: creating the GPT: %m", name);
        r = fdisk_set_disklabel_id_from_string(c, t->disk_uuid);
        if (r < 0)
                return log_error_errno(r, "writing the partition table: %s: disk UUID %s: %m", name,
                                       t->disk_uuid);

        if ((t->first_lba && (uint64_t)fdisk_get_first_lba(c) != t->first_lba) ||
            (t->last_lba && (uint64_t)fdisk_get_last_lba(c) != t->last_lba))
                return log_error_errno(
                    -ERANGE,
                    "writing the partition table: %s: libfdisk's usable sectors are %" PRIu64 "-%" PRIu64
                    ", the layout assumed %" PRIu64 "-%" PRIu64,
                    name, (uint64_t)fdisk_get_first_lba(c), (uint64_t)fdisk_get_last_lba(c), t->first_lba,
                    t->last_lba);

        for (size_t i = 0; i < t->n_parts; i++) {
                r = add_partition(c, i, &t->parts[i], t->sector_size);
                if (r < 0)
                        return r;
        }

        r = fdisk_write_disklabel(c);
        if (r < 0)
                return log_error_errno(r, "writing the partition table: %s: writing the GPT: %m", name);
        return 0;
}
