/* gpt.c: the partition table, through libfdisk.
 *
 * The calls are the ones systemd-repart 252 makes for --empty=create
 * (context_load_partition_table, context_mangle_partitions,
 * context_write_partition_table): a new "gpt" label on the device, the disk
 * UUID set, every partition added with explicit start and size, then one
 * write.  Using the same library the same way gives the same header bytes,
 * including the first usable LBA libfdisk aligns to 1 MiB. */
#include "gpt.h"
#include "nix-repart-image/errbuf.h"
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

static void partition_release(struct fdisk_partition **p) {
        fdisk_unref_partition(*p);
}

static void parttype_release(struct fdisk_parttype **t) {
        fdisk_unref_parttype(*t);
}

static int add_partition(struct fdisk_context *c, size_t i, const nri_gpt_part *p, uint32_t ss, char *errbuf,
                         size_t errlen) {
        _cleanup_(partition_release) struct fdisk_partition *q = NULL;
        _cleanup_(parttype_release) struct fdisk_parttype *t = NULL;
        size_t partno = i + 1;
        int r;

        if (p->size == 0 || p->offset % ss != 0 || p->size % ss != 0) {
                nri_errbuf_set(errbuf, errlen,
                               "partition %zu: offset %" PRIu64 " and size %" PRIu64
                               " must be non-zero multiples of the sector size %" PRIu32,
                               partno, p->offset, p->size, ss);
                return -EINVAL;
        }
        if (p->label && nri_gpt_label_problem(p->label)) {
                nri_errbuf_set(errbuf, errlen, "partition %zu: label \"%s\" %s", partno, p->label,
                               nri_gpt_label_problem(p->label));
                return -EINVAL;
        }

        t = fdisk_new_parttype();
        if (!t) {
                nri_errbuf_set(errbuf, errlen, "partition %zu: out of memory", partno);
                return -ENOMEM;
        }
        r = fdisk_parttype_set_typestr(t, p->type_uuid);
        if (r < 0) {
                nri_errbuf_set(errbuf, errlen, "partition %zu: type GUID %s: %s", partno, p->type_uuid,
                               strerror(-r));
                return r;
        }

        q = fdisk_new_partition();
        if (!q) {
                nri_errbuf_set(errbuf, errlen, "partition %zu: out of memory", partno);
                return -ENOMEM;
        }
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
        if (r < 0) {
                nri_errbuf_set(errbuf, errlen, "partition %zu: describing it to libfdisk: %s", partno,
                               strerror(-r));
                return r;
        }

        r = fdisk_add_partition(c, q, NULL);
        if (r < 0) {
                nri_errbuf_set(errbuf, errlen,
                               "partition %zu: libfdisk refused sectors %" PRIu64 "-%" PRIu64
                               " (usable: %" PRIu64 "-%" PRIu64 "): %s",
                               partno, p->offset / ss, (p->offset + p->size) / ss - 1,
                               (uint64_t)fdisk_get_first_lba(c), (uint64_t)fdisk_get_last_lba(c),
                               strerror(-r));
                return r;
        }

        r = fdisk_gpt_set_partition_attrs(c, i, p->flags);
        if (r < 0) {
                nri_errbuf_set(errbuf, errlen, "partition %zu: setting attribute flags 0x%016" PRIx64 ": %s",
                               partno, p->flags, strerror(-r));
                return r;
        }
        return 0;
}

int nri_gpt_write(int fd, const char *name, const nri_gpt_table *t, char *errbuf, size_t errlen) {
        _cleanup_(context_release) struct fdisk_context *c = NULL;
        struct stat st;
        int r;

        if (t->sector_size < 512 || (t->sector_size & (t->sector_size - 1)) != 0) {
                nri_errbuf_set(errbuf, errlen,
                               "%s: sector size %" PRIu32 " is not a power of two of at least 512", name,
                               t->sector_size);
                return -EINVAL;
        }
        if (fstat(fd, &st) < 0) {
                r = -errno;
                nri_errbuf_set(errbuf, errlen, "%s: %s", name, strerror(errno));
                return r;
        }
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size % t->sector_size != 0) {
                nri_errbuf_set(errbuf, errlen,
                               "%s: size %" PRIu64 " is not a multiple of the sector size %" PRIu32, name,
                               (uint64_t)st.st_size, t->sector_size);
                return -EINVAL;
        }
        if (t->n_parts > NRI_GPT_ENTRIES) {
                nri_errbuf_set(errbuf, errlen, "%s: %zu partitions do not fit the %d entries of a GPT", name,
                               t->n_parts, NRI_GPT_ENTRIES);
                return -E2BIG;
        }

        c = fdisk_new_context();
        if (!c) {
                nri_errbuf_set(errbuf, errlen, "%s: out of memory", name);
                return -ENOMEM;
        }

        /* An image file has no sector size of its own: say it before
         * libfdisk looks at the device (a block device keeps its own). */
        if (S_ISREG(st.st_mode)) {
                r = fdisk_save_user_sector_size(c, t->sector_size, t->sector_size);
                if (r < 0) {
                        nri_errbuf_set(errbuf, errlen, "%s: sector size %" PRIu32 ": %s", name,
                                       t->sector_size, strerror(-r));
                        return r;
                }
        }

        r = fdisk_assign_device_by_fd(c, fd, name, /* readonly = */ 0);
        if (r < 0) {
                nri_errbuf_set(errbuf, errlen, "%s: libfdisk cannot open it: %s", name, strerror(-r));
                return r;
        }
        if (fdisk_get_sector_size(c) != t->sector_size) {
                nri_errbuf_set(errbuf, errlen, "%s: libfdisk uses %lu-byte sectors, the layout %" PRIu32,
                               name, fdisk_get_sector_size(c), t->sector_size);
                return -EINVAL;
        }

        r = fdisk_create_disklabel(c, "gpt");
        if (r < 0) {
                nri_errbuf_set(errbuf, errlen, "%s: creating the GPT: %s", name, strerror(-r));
                return r;
        }
        r = fdisk_set_disklabel_id_from_string(c, t->disk_uuid);
        if (r < 0) {
                nri_errbuf_set(errbuf, errlen, "%s: disk UUID %s: %s", name, t->disk_uuid, strerror(-r));
                return r;
        }

        if ((t->first_lba && (uint64_t)fdisk_get_first_lba(c) != t->first_lba) ||
            (t->last_lba && (uint64_t)fdisk_get_last_lba(c) != t->last_lba)) {
                nri_errbuf_set(errbuf, errlen,
                               "%s: libfdisk's usable sectors are %" PRIu64 "-%" PRIu64
                               ", the layout assumed %" PRIu64 "-%" PRIu64,
                               name, (uint64_t)fdisk_get_first_lba(c), (uint64_t)fdisk_get_last_lba(c),
                               t->first_lba, t->last_lba);
                return -ERANGE;
        }

        for (size_t i = 0; i < t->n_parts; i++) {
                r = add_partition(c, i, &t->parts[i], t->sector_size, errbuf, errlen);
                if (r < 0)
                        return r;
        }

        r = fdisk_write_disklabel(c);
        if (r < 0) {
                nri_errbuf_set(errbuf, errlen, "%s: writing the GPT: %s", name, strerror(-r));
                return r;
        }
        return 0;
}
