/* bench-writers.c: times the read-only writers on one source tree.
 *
 *   bench-writers SRC WORKDIR [WORKERS]
 *
 * The plan copies SRC to "/" (as `contents."/".source` would).  For each
 * writer: the size Minimize= would give and the time to find it, the time
 * to write the partition into WORKDIR/<format>.img; then the dm-verity
 * tree of the EROFS partition.  One line per step, "step seconds bytes".
 * tests/bench/writers runs it next to mkfs.erofs, mksquashfs and
 * veritysetup on the same tree. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "erofs.h"
#include "ext4.h"
#include "plan.h"
#include "squashfs.h"
#include "verity.h"

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int make_file(const char *path, uint64_t size) {
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
                perror(path);
                return -1;
        }
        close(fd);
        return 0;
}

static void report(const char *step, double t, uint64_t bytes) {
        printf("%s %.3f %" PRIu64 "\n", step, t, bytes);
        fflush(stdout);
}

int main(int argc, char **argv) {
        char path[4096];
        nri_plan_copy copy;
        nri_plan plan = {.copies = &copy, .n_copies = 1, .mtime = 1};
        nri_uuid uuid;
        uint64_t size;
        double t;
        int r;

        if (argc < 3) {
                fprintf(stderr, "usage: bench-writers SRC WORKDIR [WORKERS]\n");
                return 2;
        }
        copy = (nri_plan_copy){.source = argv[1], .target = "/"};
        nri_uuid_parse("7981aaf4-2a9a-4f86-9f1f-5b42c8f28bbf", &uuid);

        /* ext4, for reference: Minimize=guess, then the write. */
        {
                nri_ext4_options o = {.uuid = uuid, .hash_seed = uuid, .timestamp = 1};
                nri_plan_stats st;

                t = now();
                r = nri_plan_measure(&plan, &st);
                if (r >= 0)
                        r = nri_ext4_min_size(&st, &size);
                report("ext4-size", now() - t, size);
                snprintf(path, sizeof(path), "%s/ext4.img", argv[2]);
                t = now();
                if (r >= 0 && (r = make_file(path, size)) >= 0)
                        r = nri_ext4_write(path, 0, size, &o, &plan);
                report("ext4-write", now() - t, size);
                if (r < 0)
                        return 1;
        }

        /* EROFS: Minimize=best, then the write, then its verity tree. */
        {
                nri_erofs_options o = {.uuid = uuid, .timestamp = 1};
                nri_verity_options v = {0};
                uint8_t root[NRI_VERITY_ROOT_HASH_SIZE];
                uint64_t hash_size;

                t = now();
                r = nri_erofs_size(&plan, &o, &size);
                report("erofs-size", now() - t, size);
                snprintf(path, sizeof(path), "%s/erofs.img", argv[2]);
                t = now();
                if (r >= 0 && (r = make_file(path, size)) >= 0)
                        r = nri_erofs_write(path, 0, size, &o, &plan);
                report("erofs-write", now() - t, size);
                if (r < 0)
                        return 1;

                nri_verity_derive(&uuid, &v);
                r = nri_verity_hash_size(size, &v, &hash_size);
                snprintf(path, sizeof(path), "%s/verity.img", argv[2]);
                {
                        char data[4096];

                        snprintf(data, sizeof(data), "%s/erofs.img", argv[2]);
                        t = now();
                        if (r >= 0 && (r = make_file(path, hash_size)) >= 0)
                                r = nri_verity_write(data, 0, size, path, 0, hash_size, &v, root);
                        report("verity-write", now() - t, size);
                }
                if (r < 0)
                        return 1;
        }

        /* SquashFS: built into a temporary file (Minimize=), then placed. */
        {
                nri_squashfs_options o = {.timestamp = 1, .workers = argc > 3 ? (unsigned)atoi(argv[3]) : 1};
                nri_squashfs_image *img = NULL;

                t = now();
                r = nri_squashfs_build(&plan, &o, argv[2], &img);
                size = r >= 0 ? nri_squashfs_image_size(img) : 0;
                report("squashfs-build", now() - t, size);
                snprintf(path, sizeof(path), "%s/squashfs.img", argv[2]);
                t = now();
                if (r >= 0 && (r = make_file(path, size)) >= 0)
                        r = nri_squashfs_image_place(img, path, 0, size);
                report("squashfs-place", now() - t, size);
                nri_squashfs_image_free(img);
                if (r < 0)
                        return 1;
        }
        return 0;
}
