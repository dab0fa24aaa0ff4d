/* vfat.c: a FAT file system through mtools (vfat.h).
 *
 * The plan is walked once before any program runs: every name is checked
 * against what FAT holds and every target recorded, because mtools, left to
 * itself, skips a clashing name, strips a trailing dot or mangles a
 * character without saying which file it was.  Then mformat runs with each
 * layout value given explicitly (mtools' own choices would differ from
 * mkfs.vfat's), one mmd makes all directories (parents first), and one mcopy
 * per directory copies the files whose store name is also their name there;
 * a file that is renamed on the way gets an mcopy of its own. */
#include "nix-repart-image/vfat.h"
#include "nix-repart-image/fat-names.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <locale.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <wctype.h>

static inline void freep(void *p) {
        free(*(void **)p);
}
#define _cleanup_free_ __attribute__((cleanup(freep)))
#define TAKE_PTR(p)                                                                                         \
        ({                                                                                                  \
                __typeof__(p) p_ = (p);                                                                     \
                (p) = NULL;                                                                                 \
                p_;                                                                                         \
        })

/* ---- UTF-8 ------------------------------------------------------------ */

/* One code point as systemd's utf8_encoded_valid_unichar() accepts it: the
 * shortest form, at most U+10FFFF, no surrogate, no non-character.  Returns
 * its length in bytes or -EINVAL. */
static int utf8_next(const char *s, uint32_t *ret) {
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        const unsigned char *p = (const unsigned char *)s;
        uint32_t c;
        int len;

        if (p[0] < 0x80) {
                *ret = p[0];
                return 1;
        }
        if ((p[0] & 0xe0) == 0xc0) {
                len = 2;
                c = p[0] & 0x1f;
        } else if ((p[0] & 0xf0) == 0xe0) {
                len = 3;
                c = p[0] & 0x0f;
        } else if ((p[0] & 0xf8) == 0xf0) {
                len = 4;
                c = p[0] & 0x07;
        } else
                return -EINVAL;
        for (int i = 1; i < len; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return -EINVAL;
                c = c << 6 | (p[i] & 0x3f);
        }
        if (c < min[len] || c > 0x10ffff || (c & 0xfffff800) == 0xd800 || (c >= 0xfdd0 && c <= 0xfdef) ||
            (c & 0xfffe) == 0xfffe)
                return -EINVAL;
        *ret = c;
        return len;
}

static size_t utf8_put(char *out, uint32_t c) {
        if (c < 0x80) {
                out[0] = (char)c;
                return 1;
        }
        if (c < 0x800) {
                out[0] = (char)(0xc0 | c >> 6);
                out[1] = (char)(0x80 | (c & 0x3f));
                return 2;
        }
        if (c < 0x10000) {
                out[0] = (char)(0xe0 | c >> 12);
                out[1] = (char)(0x80 | (c >> 6 & 0x3f));
                out[2] = (char)(0x80 | (c & 0x3f));
                return 3;
        }
        out[0] = (char)(0xf0 | c >> 18);
        out[1] = (char)(0x80 | (c >> 12 & 0x3f));
        out[2] = (char)(0x80 | (c >> 6 & 0x3f));
        out[3] = (char)(0x80 | (c & 0x3f));
        return 4;
}

/* ---- the layout (mkfs.fat 4.2: establish_params(), setup_tables()) ----- */

#define MAX_CLUST_12 4084u
#define MIN_CLUST_16 4087u
#define MAX_CLUST_16 65524u
#define MIN_CLUST_32 65525u
#define MAX_CLUST_32 268435446u
/* mformat refuses a FAT32 with fewer clusters than this (and a FAT16 with
 * fewer than 4096): mtools' FAT16 and FAT32 minimums. */
#define MTOOLS_MIN_CLUST_32 0xfff5u
#define MTOOLS_MIN_CLUST_16 4096u

static uint32_t cdiv(int64_t a, int64_t b) {
        return (uint32_t)((a + b - 1) / b);
}

static uint32_t align_object(bool align, uint32_t sectors, uint32_t cluster_size) {
        return align ? (sectors + cluster_size - 1) & ~(cluster_size - 1) : sectors;
}

/* `fat_bits` 32 is `mkfs.vfat -F 32`, 0 is `mkfs.vfat` without -F;
 * `sectors_per_cluster` non-zero is `-s`. */
static int mkfs_fat_layout(uint64_t size, uint32_t ss, uint32_t fat_bits, uint8_t sectors_per_cluster,
                           nri_vfat_geometry *ret) {
        const uint32_t nr_fats = 2;
        uint64_t total = size / ss;
        uint32_t heads, spt, num_sectors, reserved, root_entries, root_dir_sectors, maxclustsize = 128;
        uint32_t clust12 = 0, clust16 = 0, clust32 = 0, fatlength12 = 0, fatlength16 = 0, fatlength32 = 0;
        uint32_t size_fat = fat_bits, clusters, fat_length;
        bool by_user = fat_bits == 32, align = true;
        uint8_t cluster_size = 4; /* the starting point for FAT12 and FAT16 */

        /* No geometry from the device: the SD card recommendation below
         * 256 MiB (512-byte sectors), LBA-assist translation above. */
        if (total <= 524288) {
                heads = total <= 32768 ? 2 : total <= 65536 ? 4 : total <= 262144 ? 8 : 16;
                spt = total <= 4096 ? 16 : 32;
        } else {
                heads = total <= 16 * 63 * 1024    ? 16
                        : total <= 32 * 63 * 1024  ? 32
                        : total <= 64 * 63 * 1024  ? 64
                        : total <= 128 * 63 * 1024 ? 128
                                                   : 255;
                spt = 63;
        }

        /* A loop device with an offset is not a "fixed" disk to mkfs.fat, so
         * it gets the floppy formats when the size is one of theirs. */
        static const struct {
                uint32_t kib, spt, heads, media, cluster_size, root_entries;
        } floppies[] = {
            {360, 9, 2, 0xfd, 2, 112},   {720, 9, 2, 0xf9, 2, 112},   {1200, 15, 2, 0xf9, 1, 224},
            {1440, 18, 2, 0xf0, 1, 224}, {2880, 36, 2, 0xf0, 2, 224},
        };
        uint32_t media = 0xf8, def_root_entries = 512;

        for (size_t i = 0; i < sizeof(floppies) / sizeof(floppies[0]); i++)
                if (size / 1024 == floppies[i].kib) {
                        spt = floppies[i].spt;
                        heads = floppies[i].heads;
                        media = floppies[i].media;
                        cluster_size = (uint8_t)floppies[i].cluster_size;
                        def_root_entries = floppies[i].root_entries;
                }

        if (!size_fat && size >= UINT64_C(512) * 1024 * 1024)
                size_fat = 32;
        if (size_fat == 32) {
                uint64_t sectors = size / ss;

                cluster_size = sectors > UINT64_C(32) * 1024 * 1024 * 2   ? 64
                               : sectors > UINT64_C(16) * 1024 * 1024 * 2 ? 32
                               : sectors > UINT64_C(8) * 1024 * 1024 * 2  ? 16
                               : sectors > 260 * 1024 * 2                 ? 8
                                                                          : 1;
        }

        reserved = size_fat == 32 ? 32 : 1;
        root_entries = size_fat == 32 ? 0 : def_root_entries;
        root_dir_sectors = cdiv((int64_t)root_entries * 32, ss);

        num_sectors = total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
        num_sectors = num_sectors / spt * spt; /* whole tracks, "needed by DOS and mtools" */
        if (num_sectors <= 8192)
                align = false;
        if (sectors_per_cluster) {
                cluster_size = sectors_per_cluster;
                maxclustsize = sectors_per_cluster;
        }
        /* Below this the unsigned arithmetic that follows would wrap. */
        if (num_sectors <=
            align_object(align, reserved, 128) + align_object(align, root_dir_sectors, 128) + 8)
                return -ERANGE;

        do {
                uint32_t fatdata32 = num_sectors - align_object(align, reserved, cluster_size);
                uint32_t fatdata1216 = fatdata32 - align_object(align, root_dir_sectors, cluster_size);
                uint32_t maxclust12, maxclust16, maxclust32;

                clust12 = (uint32_t)(2 * ((int64_t)fatdata1216 * ss + nr_fats * 3) /
                                     (2 * (int64_t)cluster_size * ss + nr_fats * 3));
                fatlength12 = cdiv(((int64_t)(clust12 + 2) * 3 + 1) >> 1, ss);
                fatlength12 = align_object(align, fatlength12, cluster_size);
                clust12 = (fatdata1216 - nr_fats * fatlength12) / cluster_size;
                maxclust12 = (uint32_t)((uint64_t)fatlength12 * 2 * ss / 3);
                if (maxclust12 > MAX_CLUST_12)
                        maxclust12 = MAX_CLUST_12;
                if (clust12 > maxclust12)
                        clust12 = 0;

                clust16 = (uint32_t)(((int64_t)fatdata1216 * ss + nr_fats * 4) /
                                     ((int64_t)cluster_size * ss + nr_fats * 2));
                fatlength16 = cdiv((int64_t)(clust16 + 2) * 2, ss);
                fatlength16 = align_object(align, fatlength16, cluster_size);
                clust16 = (fatdata1216 - nr_fats * fatlength16) / cluster_size;
                maxclust16 = (uint32_t)((uint64_t)fatlength16 * ss / 2);
                if (maxclust16 > MAX_CLUST_16)
                        maxclust16 = MAX_CLUST_16;
                if (clust16 > maxclust16)
                        clust16 = 0;
                if (clust16 && clust16 < MIN_CLUST_16)
                        clust16 = 0;

                clust32 = (uint32_t)(((int64_t)fatdata32 * ss + nr_fats * 8) /
                                     ((int64_t)cluster_size * ss + nr_fats * 4));
                fatlength32 = cdiv((int64_t)(clust32 + 2) * 4, ss);
                fatlength32 = align_object(align, fatlength32, cluster_size);
                clust32 = (fatdata32 - nr_fats * fatlength32) / cluster_size;
                maxclust32 = (uint32_t)((uint64_t)fatlength32 * ss / 4);
                if (maxclust32 > MAX_CLUST_32)
                        maxclust32 = MAX_CLUST_32;
                if (clust32 > maxclust32)
                        clust32 = 0;
                if (clust32 && clust32 < MIN_CLUST_32 && !(by_user && size_fat == 32))
                        clust32 = 0;

                if ((clust12 && (size_fat == 0 || size_fat == 12)) ||
                    (clust16 && (size_fat == 0 || size_fat == 16)) || (clust32 && size_fat == 32))
                        break;
                cluster_size = (uint8_t)(cluster_size << 1);
        } while (cluster_size && cluster_size <= maxclustsize);

        if (!size_fat)
                size_fat = clust16 > clust12 ? 16 : 12;
        switch (size_fat) {
        case 12:
                clusters = clust12;
                fat_length = fatlength12;
                break;
        case 16:
                clusters = clust16;
                fat_length = fatlength16;
                break;
        default:
                clusters = clust32;
                fat_length = fatlength32;
                break;
        }
        if (!clusters || !cluster_size)
                return -ERANGE;

        reserved = align_object(align, reserved, cluster_size);
        if (size_fat != 32 && align)
                root_entries = align_object(align, root_dir_sectors, cluster_size) * (ss >> 5);
        root_dir_sectors = cdiv((int64_t)root_entries * 32, ss);

        /* mkfs.fat's "Too few blocks for viable filesystem". */
        uint64_t start_data = (uint64_t)(reserved + nr_fats * fat_length + root_dir_sectors) * (ss / 512);
        if (size / 1024 < (start_data + 1) / 2 + 32)
                return -ERANGE;

        *ret = (nri_vfat_geometry){
            .sector_size = ss,
            .total_sectors = num_sectors,
            .sectors_per_track = spt,
            .heads = heads,
            .hidden_sectors = 0,
            .fat_bits = size_fat,
            .sectors_per_cluster = cluster_size,
            .reserved_sectors = reserved,
            .fats = nr_fats,
            .fat_sectors = fat_length,
            .root_dir_sectors = size_fat == 32 ? 0 : root_dir_sectors,
            .clusters = clusters,
            .media = (uint8_t)media,
        };
        return 0;
}

int nri_vfat_geometry_for(uint64_t size, uint32_t sector_size, nri_vfat_geometry *ret) {
        nri_vfat_geometry g;
        int r;

        if (sector_size == 0)
                sector_size = 512;
        if (sector_size < 512 || sector_size > 4096 || (sector_size & (sector_size - 1)))
                return -EINVAL;

        r = mkfs_fat_layout(size, sector_size, 32, 0, &g);
        if (r < 0 || g.clusters < MTOOLS_MIN_CLUST_32)
                r = mkfs_fat_layout(size, sector_size, 0, 0, &g);
        /* A FAT16 with 4087 to 4095 clusters is one mformat cannot make:
         * the same with clusters half as large (`mkfs.vfat -s`) has twice
         * as many. */
        if (r >= 0 && g.fat_bits == 16 && g.clusters < MTOOLS_MIN_CLUST_16 && g.sectors_per_cluster > 1)
                r = mkfs_fat_layout(size, sector_size, 0, (uint8_t)(g.sectors_per_cluster / 2), &g);
        if (r < 0)
                return r;
        if (g.fat_bits == 16 && g.clusters < MTOOLS_MIN_CLUST_16)
                return -ERANGE;
        *ret = g;
        return 0;
}

/* ---- Minimize=guess ---------------------------------------------------- */

/* Whether a FAT of `g` holds content of these stats, as far as the stats
 * tell: an upper bound of the clusters it takes against the data clusters. */
static bool content_fits(const nri_plan_stats *st, const nri_vfat_geometry *g) {
        uint64_t cluster = (uint64_t)g->sector_size * g->sectors_per_cluster;
        uint64_t names = st->files + st->directories, data, dirs;

        if (cluster <= 4096)
                data = st->blocks_4k * 4096 / cluster; /* a cluster divides 4096 */
        else
                data = (st->bytes + st->files * (cluster - 1)) / cluster;
        /* Per name an entry, long-name entries for its length (13 UTF-16 units
         * each, at most one per byte) plus one; "." and ".." and a cluster's
         * slack per directory; the root's entries are counted in too. */
        dirs =
            (32 * (2 * names + st->name_bytes / 13 + names + 2 * st->directories) + cluster - 1) / cluster +
            st->directories + 1;
        if (data + dirs > g->clusters)
                return false;
        /* FAT12/16: the root directory is a fixed table, not clusters.  Per
         * name its entry and at most one long-name entry per byte / 13, plus
         * one; and the volume label's entry. */
        if (g->root_dir_sectors > 0 &&
            3 * st->root_names + st->root_name_bytes / 13 + 1 >
                (uint64_t)g->root_dir_sectors * g->sector_size / 32)
                return false;
        return true;
}

int nri_vfat_min_size(const nri_plan_stats *st, uint32_t sector_size, uint64_t *ret) {
        uint64_t names = st->files + st->directories;
        uint64_t occupied =
            st->blocks_4k * 4096 + 32 * (3 * names + st->name_bytes / 13) + 4096 * st->directories;
        uint64_t size = (occupied + occupied / 2 + 4095) / 4096 * 4096;
        nri_vfat_geometry g;

        for (;;) {
                if (size > (UINT64_C(1) << 44)) /* 16 TiB: FAT32's 2^28 clusters of 64 KiB */
                        return -ERANGE;
                if (nri_vfat_geometry_for(size, sector_size ? sector_size : 512, &g) == 0 &&
                    content_fits(st, &g))
                        break;
                size += size / 64 >= 4096 ? size / 64 / 4096 * 4096 : 4096; /* grow by ~1.5% */
        }
        *ret = size;
        return 0;
}

/* ---- running mtools ---------------------------------------------------- */

enum { PROG_MFORMAT, PROG_MMD, PROG_MCOPY, _PROG_MAX };
static const char *const prog_names[_PROG_MAX] = {"mformat", "mmd", "mcopy"};

static int find_program(const char *name, const char *what, char **ret) {
        const char *dir = getenv("NRI_MTOOLS_DIR");
        const char *path;

        if (dir && *dir) {
                char *p;

                if (asprintf(&p, "%s/%s", dir, name) < 0)
                        return -ENOMEM;
                if (access(p, X_OK) < 0) {
                        int r = -errno;

                        fprintf(stderr, "%s: %s (from NRI_MTOOLS_DIR) is not executable: %s\n", what, p,
                                strerror(-r));
                        free(p);
                        return r;
                }
                *ret = p;
                return 0;
        }

        path = getenv("PATH");
        if (!path || !*path)
                path = "/usr/local/bin:/usr/bin:/bin";
        for (const char *s = path; *s;) {
                size_t n = strcspn(s, ":");
                char *p;

                if (asprintf(&p, "%.*s/%s", (int)n, n ? s : ".", name) < 0)
                        return -ENOMEM;
                if (access(p, X_OK) == 0) {
                        *ret = p;
                        return 0;
                }
                free(p);
                s += n;
                if (*s == ':')
                        s++;
        }
        fprintf(stderr, "%s: %s not found on PATH (install mtools or set NRI_MTOOLS_DIR)\n", what, name);
        return -ENOENT;
}

/* The environment every mtools program runs in.  mtools reads its global
 * settings from /etc/mtools.conf, ~/.mtoolsrc and $MTOOLSRC and then from
 * the environment, which wins: so setting all of them here makes the host's
 * files irrelevant.  SOURCE_DATE_EPOCH is mtools' "now" (every timestamp it
 * writes); TZ=UTC0 because FAT stores local time; the UTF-8 locale is how
 * mtools reads names from argv (it calls setlocale(LC_ALL, "")). */
static char **make_env(int64_t mtime) {
        static const char *const fixed[] = {
            "HOME=/nonexistent",
            "MTOOLSRC=/dev/null",
            "MTOOLS_SKIP_CHECK=1",
            "MTOOLS_NO_VFAT=0",
            "MTOOLS_NAME_NUMERIC_TAIL=1",
            "MTOOLS_LOWER_CASE=0",
            "MTOOLS_DOTTED_DIR=0",
            "MTOOLS_TWENTY_FOUR_HOUR_CLOCK=1",
            "DEFAULT_CODEPAGE=437", /* the Linux kernel's default for short names */
            "TZ=UTC0",
            "LC_ALL=C.UTF-8",
        };
        size_t n = sizeof(fixed) / sizeof(fixed[0]);
        const char *path = getenv("PATH");
        char **env = calloc(n + 5, sizeof(char *));

        if (!env)
                return NULL;
        for (size_t i = 0; i < n; i++)
                env[i] = (char *)fixed[i];
        if (asprintf(&env[n], "SOURCE_DATE_EPOCH=%" PRId64, mtime) < 0)
                env[n] = NULL;
        if (!env[n] || asprintf(&env[n + 1], "PATH=%s", path ? path : "/usr/bin:/bin") < 0) {
                free(env[n]);
                free(env);
                return NULL;
        }
        /* Where a bundled mtools finds the locale and code page 437 (main.c). */
        for (size_t i = 0, k = n + 2; i < 2; i++) {
                const char *var = i ? "GCONV_PATH" : "LOCPATH", *val = getenv(var);

                if (val && *val && asprintf(&env[k], "%s=%s", var, val) >= 0)
                        k++;
        }
        return env;
}

static void free_env(char **env) {
        if (!env)
                return;
        for (size_t i = 0; env[i]; i++)
                if (!strncmp(env[i], "SOURCE_DATE_EPOCH=", 18) || !strncmp(env[i], "PATH=", 5) ||
                    !strncmp(env[i], "LOCPATH=", 8) || !strncmp(env[i], "GCONV_PATH=", 11))
                        free(env[i]);
        free(env);
}

/* Runs argv[0] (an absolute path) with `env`, stdin from /dev/null, in a
 * session of its own: without a controlling terminal mtools can never stop
 * to ask a question.  Its stdout and stderr are passed on to our stderr, and
 * anything it prints counts as a failure: mtools is silent when all is well,
 * and some of its errors ("No free cluster" while a directory grows) leave
 * the exit status 0. */
static int run(char *const *argv, char *const *env, const char *what, const char *doing) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, all;
        size_t printed = 0;
        int r, status, out[2];
        char buf[4096];
        ssize_t n;
        pid_t pid;

        if (pipe2(out, O_CLOEXEC) < 0) {
                r = -errno;
                fprintf(stderr, "%s: pipe: %s\n", what, strerror(errno));
                return r;
        }
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        posix_spawn_file_actions_adddup2(&fa, out[1], 2);
        posix_spawnattr_init(&attr);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        /* With NRI_MTOOLS_LOADER (a bundle's, main.c), as
         * `LOADER --library-path NRI_MTOOLS_LIBRARY_PATH argv…`: the bundle's
         * programs are not patched to find its loader and libraries. */
        const char *loader = getenv("NRI_MTOOLS_LOADER");
        char **largv = NULL;
        if (loader && *loader) {
                size_t argc = 0;
                const char *libs = getenv("NRI_MTOOLS_LIBRARY_PATH");

                while (argv[argc])
                        argc++;
                largv = calloc(argc + 4, sizeof(char *));
                if (!largv) {
                        posix_spawn_file_actions_destroy(&fa);
                        posix_spawnattr_destroy(&attr);
                        close(out[0]);
                        close(out[1]);
                        return -ENOMEM;
                }
                largv[0] = (char *)loader;
                largv[1] = (char *)"--library-path";
                largv[2] = (char *)(libs ? libs : "");
                memcpy(largv + 3, argv, argc * sizeof(char *));
        }
        r = posix_spawn(&pid, largv ? largv[0] : argv[0], &fa, &attr, largv ? largv : argv, env);
        free(largv);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        close(out[1]);
        if (r != 0) {
                close(out[0]);
                fprintf(stderr, "%s: cannot run %s: %s\n", what, argv[0], strerror(r));
                return -r;
        }
        while ((n = read(out[0], buf, sizeof(buf))) != 0) {
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                fwrite(buf, 1, (size_t)n, stderr);
                printed += (size_t)n;
        }
        close(out[0]);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        r = -errno;
                        fprintf(stderr, "%s: waiting for %s: %s\n", what, argv[0], strerror(errno));
                        return r;
                }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && printed == 0)
                return 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                fprintf(stderr, "%s: %s reported the errors above %s\n", what, argv[0], doing);
        else if (WIFEXITED(status))
                fprintf(stderr, "%s: %s failed (exit status %d) %s\n", what, argv[0], WEXITSTATUS(status),
                        doing);
        else
                fprintf(stderr, "%s: %s killed by signal %d %s\n", what, argv[0],
                        WIFSIGNALED(status) ? WTERMSIG(status) : 0, doing);
        return -EIO;
}

/* ---- targets: names, case folding, the table of everything written ------- */

typedef struct vfat_file {
        char *target, *source;
        size_t dir; /* index into writer.dirs */
        size_t seq;
        bool same_name; /* basename(source) == basename(target): can share an mcopy */
        uint64_t size;
} vfat_file;

typedef struct slot {
        char *key; /* the folded target; NULL: empty */
        char *target;
        bool is_dir;
        size_t index; /* into dirs or files */
} slot;

typedef struct writer {
        const char *what;
        locale_t utf8; /* for towupper(), as mtools compares names; (locale_t)0 if missing */
        slot *slots;
        size_t n_slots, used;
        char **dirs; /* dirs[0] is "/" */
        size_t n_dirs, cap_dirs;
        vfat_file *files;
        size_t n_files, cap_files;
        bool non_ascii;
} writer;

static uint64_t hash(const char *s) {
        uint64_t h = UINT64_C(14695981039346656037);

        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
        return h;
}

static slot *lookup(writer *w, const char *key) {
        size_t i = hash(key) & (w->n_slots - 1);

        while (w->slots[i].key && strcmp(w->slots[i].key, key) != 0)
                i = (i + 1) & (w->n_slots - 1);
        return &w->slots[i];
}

static int grow_table(writer *w) {
        slot *old = w->slots;
        size_t n_old = w->n_slots;

        if (w->n_slots && (w->used + 1) * 10 < w->n_slots * 7)
                return 0;
        w->n_slots = n_old ? n_old * 2 : 1024;
        w->slots = calloc(w->n_slots, sizeof(slot));
        if (!w->slots) {
                w->slots = old;
                w->n_slots = n_old;
                return -ENOMEM;
        }
        for (size_t i = 0; i < n_old; i++)
                if (old[i].key)
                        *lookup(w, old[i].key) = old[i];
        free(old);
        return 0;
}

/* `path` case-folded as mtools compares names (towupper() of each code
 * point), or NULL with errno EINVAL if it is not UTF-8. */
static char *fold(writer *w, const char *path) {
        char *out = malloc(strlen(path) * 2 + 1), *o = out;

        if (!out)
                return NULL;
        for (const char *p = path; *p;) {
                uint32_t c;
                int l = utf8_next(p, &c);

                if (l < 0) {
                        free(out);
                        errno = EINVAL;
                        return NULL;
                }
                if (c >= 0x80)
                        w->non_ascii = true;
                if (w->utf8)
                        c = (uint32_t)towupper_l((wint_t)c, w->utf8);
                else if (c >= 'a' && c <= 'z')
                        c -= 'a' - 'A';
                o += utf8_put(o, c);
                p += l;
        }
        *o = '\0';
        return out;
}

/* Whether FAT (and mtools) can hold `name`, a single path component: the
 * rule the evaluator applies to the targets it knows (fat-names.h). */
static int check_name(writer *w, const char *target, const char *name) {
        char buf[128];
        const char *why = nri_fat_name_problem(name, w->utf8, buf, sizeof(buf));

        if (why) {
                fprintf(stderr, "%s: '%s': %s\n", w->what, target, why);
                return -EINVAL;
        }
        return 0;
}

static const char *base_name(const char *path) {
        const char *s = strrchr(path, '/');

        return s ? s + 1 : path;
}

/* Records `target` in *ret_slot, refusing it if its name is not for FAT or
 * if a name already recorded differs from it at most in case.  Returns 0
 * (new), 1 (a directory recorded before: *ret_slot is that one) or a
 * negative errno. */
static int claim(writer *w, const char *target, bool is_dir, slot **ret_slot) {
        _cleanup_free_ char *key = NULL;
        slot *s;
        int r;

        r = check_name(w, target, base_name(target));
        if (r < 0)
                return r;
        key = fold(w, target);
        if (!key)
                return -errno;
        s = lookup(w, key);
        if (s->key) {
                if (is_dir && s->is_dir && strcmp(s->target, target) == 0) {
                        *ret_slot = s;
                        return 1;
                }
                if (strcmp(s->target, target) != 0)
                        fprintf(stderr,
                                "%s: '%s' and '%s' differ only in case; FAT compares names "
                                "case-insensitively and cannot hold both\n",
                                w->what, s->target, target);
                else
                        fprintf(stderr, "%s: '%s' is written twice (as a %s and as a %s)\n", w->what, target,
                                s->is_dir ? "directory" : "file", is_dir ? "directory" : "file");
                return -EINVAL;
        }
        r = grow_table(w);
        if (r < 0)
                return r;
        s = lookup(w, key); /* again: growing moved it */
        s->target = strdup(target);
        if (!s->target)
                return -ENOMEM;
        s->key = TAKE_PTR(key);
        s->is_dir = is_dir;
        w->used++;
        *ret_slot = s;
        return 0;
}

/* The index of directory `target` in w->dirs, recording it (and its
 * parents) if new. */
static int want_dir(writer *w, const char *target, size_t *ret) {
        _cleanup_free_ char *parent = NULL;
        const char *slash;
        size_t parent_index;
        slot *s;
        int r;

        if (target[0] != '/') {
                fprintf(stderr, "%s: '%s': the target is not an absolute path\n", w->what, target);
                return -EINVAL;
        }
        if (strcmp(target, "/") == 0) {
                *ret = 0;
                return 0;
        }
        slash = strrchr(target, '/');
        parent = slash == target ? strdup("/") : strndup(target, (size_t)(slash - target));
        if (!parent)
                return -ENOMEM;
        r = want_dir(w, parent, &parent_index);
        if (r < 0)
                return r;

        r = claim(w, target, true, &s);
        if (r < 0)
                return r;
        if (r == 0) {
                if (w->n_dirs == w->cap_dirs) {
                        size_t cap = w->cap_dirs ? w->cap_dirs * 2 : 64;
                        char **d = realloc(w->dirs, cap * sizeof(char *));

                        if (!d)
                                return -ENOMEM;
                        w->dirs = d;
                        w->cap_dirs = cap;
                }
                s->index = w->n_dirs;
                w->dirs[w->n_dirs++] = s->target;
        }
        *ret = s->index;
        return 0;
}

static int want_file(writer *w, const char *target, const char *source, uint64_t size) {
        _cleanup_free_ char *parent = NULL;
        const char *slash = strrchr(target, '/');
        size_t dir;
        slot *s;
        int r;

        if (target[0] != '/' || strcmp(target, "/") == 0) {
                fprintf(stderr, "%s: '%s': not a file target\n", w->what, target);
                return -EINVAL;
        }
        if (size > UINT32_MAX) {
                fprintf(stderr, "%s: '%s' (from %s) is %" PRIu64 " bytes; FAT files hold less than 4 GiB\n",
                        w->what, target, source, size);
                return -EINVAL;
        }
        parent = slash == target ? strdup("/") : strndup(target, (size_t)(slash - target));
        if (!parent)
                return -ENOMEM;
        r = want_dir(w, parent, &dir);
        if (r < 0)
                return r;
        r = claim(w, target, false, &s);
        if (r < 0)
                return r;

        if (w->n_files == w->cap_files) {
                size_t cap = w->cap_files ? w->cap_files * 2 : 256;
                vfat_file *f = realloc(w->files, cap * sizeof(vfat_file));

                if (!f)
                        return -ENOMEM;
                w->files = f;
                w->cap_files = cap;
        }
        vfat_file *f = &w->files[w->n_files];
        *f = (vfat_file){
            .target = s->target,
            .source = strdup(source),
            .dir = dir,
            .seq = w->n_files,
            .same_name = strcmp(base_name(source), base_name(target)) == 0,
            .size = size,
        };
        if (!f->source)
                return -ENOMEM;
        s->index = w->n_files++;
        return 0;
}

/* ---- the visitor ------------------------------------------------------- */

static int visit_directory(void *ctx, const nri_entry *e) {
        size_t index;

        return want_dir(ctx, e->target, &index);
}

static int visit_file(void *ctx, const nri_entry *e, int fd) {
        (void)fd; /* mcopy reads the store file itself */
        return want_file(ctx, e->target, e->source, e->size);
}

static int visit_symlink(void *ctx, const nri_entry *e) {
        writer *w = ctx;

        fprintf(stderr,
                "%s: '%s' is a symbolic link (to '%s', from %s); FAT has no symbolic links, "
                "so it cannot be copied into a vfat partition\n",
                w->what, e->target, e->link_target ? e->link_target : "?", e->source ? e->source : "?");
        return -EINVAL;
}

static void writer_done(writer *w) {
        for (size_t i = 0; i < w->n_slots; i++) {
                free(w->slots[i].key);
                free(w->slots[i].target);
        }
        free(w->slots);
        for (size_t i = 0; i < w->n_files; i++)
                free(w->files[i].source);
        free(w->files);
        free(w->dirs);
        if (w->utf8)
                freelocale(w->utf8);
}

/* ---- argv -------------------------------------------------------------- */

/* mtools matches each directory of a path as a pattern, where '[' opens a
 * range and '\' quotes; '*', '?' and '\' cannot be in FAT names, so quoting
 * '[' is enough.  The last component is taken literally when it is created. */
static char *dos_path(const char *dir, const char *name) {
        size_t n = 0;
        char *out, *o;

        for (const char *p = dir; *p; p++)
                n += *p == '[' || *p == ']' ? 2 : 1;
        out = malloc(2 + n + 1 + (name ? strlen(name) : 0) + 1);
        if (!out)
                return NULL;
        o = stpcpy(out, "::");
        for (const char *p = dir; *p; p++) {
                if (*p == '[' || *p == ']')
                        *o++ = '\\';
                *o++ = *p;
        }
        if (o[-1] != '/')
                *o++ = '/';
        if (name)
                o = stpcpy(o, name);
        *o = '\0';
        return out;
}

typedef struct argv_builder {
        char **v;
        size_t n, cap, fixed, bytes;
} argv_builder;

/* Arguments of one call are kept well below the kernel's limits. */
#define BATCH_MAX_ARGS 2048
#define BATCH_MAX_BYTES (512 * 1024)

static int argv_push(argv_builder *a, char *s) {
        if (!s)
                return -ENOMEM;
        if (a->n + 2 > a->cap) {
                size_t cap = a->cap ? a->cap * 2 : 64;
                char **v = realloc(a->v, cap * sizeof(char *));

                if (!v) {
                        free(s);
                        return -ENOMEM;
                }
                a->v = v;
                a->cap = cap;
        }
        a->v[a->n++] = s;
        a->v[a->n] = NULL;
        a->bytes += strlen(s) + 1 + sizeof(char *);
        return 0;
}

/* Drops the arguments after the fixed ones. */
static void argv_reset(argv_builder *a) {
        while (a->n > a->fixed)
                free(a->v[--a->n]);
        if (a->v)
                a->v[a->n] = NULL;
        a->bytes = 0;
}

static void argv_free(argv_builder *a) {
        a->fixed = 0;
        argv_reset(a);
        free(a->v);
}

static bool argv_full(const argv_builder *a) {
        return a->n - a->fixed >= BATCH_MAX_ARGS || a->bytes >= BATCH_MAX_BYTES;
}

static int argv_start(argv_builder *a, const char *program, const char *image, bool clash_opts) {
        int r;

        *a = (argv_builder){0};
        r = argv_push(a, strdup(program));
        if (r >= 0)
                r = argv_push(a, strdup("-i"));
        if (r >= 0)
                r = argv_push(a, strdup(image));
        /* A long name that exists already: skip it, which makes the program
         * fail; a short name that does: the next free ~N. */
        if (r >= 0 && clash_opts)
                r = argv_push(a, strdup("-D"));
        if (r >= 0 && clash_opts)
                r = argv_push(a, strdup("s"));
        if (r >= 0 && clash_opts)
                r = argv_push(a, strdup("-D"));
        if (r >= 0 && clash_opts)
                r = argv_push(a, strdup("A"));
        a->fixed = a->n;
        a->bytes = 0;
        return r;
}

/* ---- the steps --------------------------------------------------------- */

static int do_mformat(const char *prog, const char *image, const nri_vfat_geometry *g, uint32_t volume_id,
                      const char *label, char **env, const char *what) {
        char ss[16], total[16], heads[16], spt[16], cluster[16], reserved[16], fatlen[16], root[16], id[16],
            media[8];
        char *argv[40];
        size_t n = 0;

        snprintf(ss, sizeof(ss), "%" PRIu32, g->sector_size);
        snprintf(total, sizeof(total), "%" PRIu32, g->total_sectors);
        snprintf(heads, sizeof(heads), "%" PRIu32, g->heads);
        snprintf(spt, sizeof(spt), "%" PRIu32, g->sectors_per_track);
        snprintf(cluster, sizeof(cluster), "%" PRIu32, g->sectors_per_cluster);
        snprintf(reserved, sizeof(reserved), "%" PRIu32, g->reserved_sectors);
        snprintf(fatlen, sizeof(fatlen), "%" PRIu32, g->fat_sectors);
        snprintf(root, sizeof(root), "%" PRIu32, g->root_dir_sectors);
        snprintf(id, sizeof(id), "%08" PRIx32, volume_id);
        snprintf(media, sizeof(media), "0x%02x", g->media);

        argv[n++] = (char *)prog;
        argv[n++] = "-i";
        argv[n++] = (char *)image;
        argv[n++] = "-M"; /* sector size */
        argv[n++] = ss;
        argv[n++] = "-T"; /* total sectors */
        argv[n++] = total;
        argv[n++] = "-h";
        argv[n++] = heads;
        argv[n++] = "-s";
        argv[n++] = spt;
        argv[n++] = "-H"; /* hidden sectors */
        argv[n++] = "0";
        argv[n++] = "-c";
        argv[n++] = cluster;
        argv[n++] = "-R";
        argv[n++] = reserved;
        argv[n++] = "-d";
        argv[n++] = "2";
        argv[n++] = "-L";
        argv[n++] = fatlen;
        argv[n++] = "-m";
        argv[n++] = media;
        argv[n++] = "-N";
        argv[n++] = id;
        if (g->fat_bits == 32) {
                argv[n++] = "-F";
        } else {
                argv[n++] = "-r";
                argv[n++] = root;
        }
        if (strcmp(label, "NO NAME") != 0) {
                argv[n++] = "-v";
                argv[n++] = (char *)label;
        }
        argv[n++] = "::";
        argv[n] = NULL;
        return run(argv, env, what, "formatting the file system");
}

static int do_mmd(const char *prog, const char *image, writer *w, char **env) {
        argv_builder a;
        int r;

        r = argv_start(&a, prog, image, true);
        for (size_t i = 1, first = 1; r >= 0 && i < w->n_dirs; i++) {
                const char *t = w->dirs[i], *slash = strrchr(t, '/');
                _cleanup_free_ char *parent = strndup(t, (size_t)(slash - t) + 1);

                r = parent ? argv_push(&a, dos_path(parent, slash + 1)) : -ENOMEM;
                if (r >= 0 && (argv_full(&a) || i + 1 == w->n_dirs)) {
                        r = run(a.v, env, w->what, "making directories");
                        if (r < 0)
                                fprintf(stderr, "%s: ... while making the directories '%s' to '%s'\n",
                                        w->what, w->dirs[first], t);
                        argv_reset(&a);
                        first = i + 1;
                }
        }
        argv_free(&a);
        return r;
}

static int cmp_files(const void *a, const void *b) {
        const vfat_file *x = a, *y = b;

        if (x->dir != y->dir)
                return x->dir < y->dir ? -1 : 1;
        if (x->same_name != y->same_name)
                return x->same_name ? -1 : 1;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int do_mcopy(const char *prog, const char *image, writer *w, char **env) {
        argv_builder a;
        size_t done = 0;
        uint64_t bytes = 0;
        int r;

        /* By directory (in the order they were made); in each, first the
         * files that keep their store name (one mcopy for all), then the
         * renamed ones (one each), each group in walk order. */
        if (w->n_files > 0) /* qsort(NULL, 0, …) is undefined (UBSan) */
                qsort(w->files, w->n_files, sizeof(vfat_file), cmp_files);

        r = argv_start(&a, prog, image, true);
        if (r >= 0)
                r = argv_push(&a, strdup("-Q")); /* stop at the first failure */
        a.fixed = a.n;
        a.bytes = 0;
        for (size_t i = 0; r >= 0 && i < w->n_files; i++) {
                const vfat_file *f = &w->files[i];
                const char *dir = w->dirs[f->dir];
                bool last_of_batch;

                /* mcopy reads '-' as stdin and a relative "x:..." as a drive. */
                if (f->source[0] == '/')
                        r = argv_push(&a, strdup(f->source));
                else {
                        char *s;

                        r = asprintf(&s, "./%s", f->source) < 0 ? -ENOMEM : argv_push(&a, s);
                }
                if (r < 0)
                        break;
                bytes += f->size;
                if (!f->same_name) {
                        /* A file named differently from its source: alone. */
                        const char *slash = strrchr(f->target, '/');
                        _cleanup_free_ char *parent = strndup(f->target, (size_t)(slash - f->target) + 1);

                        r = parent ? argv_push(&a, dos_path(parent, slash + 1)) : -ENOMEM;
                        last_of_batch = true;
                } else {
                        const vfat_file *next = i + 1 < w->n_files ? &w->files[i + 1] : NULL;

                        last_of_batch = !next || next->dir != f->dir || !next->same_name || argv_full(&a);
                        if (last_of_batch)
                                r = argv_push(&a, dos_path(dir, NULL));
                }
                if (r < 0 || !last_of_batch)
                        continue;

                r = run(a.v, env, w->what, "copying files");
                if (r < 0) {
                        fprintf(stderr, "%s: ... while copying %zu file(s) into '%s' (the first from %s)\n",
                                w->what, a.n - a.fixed - 1, dir, a.v[a.fixed]);
                        break;
                }
                done = i + 1;
                argv_reset(&a);
        }
        argv_free(&a);
        if (r >= 0 && w->n_files)
                fprintf(stderr, "%s: copied %zu files (%" PRIu64 " bytes) into %zu directories\n", w->what,
                        done, bytes, w->n_dirs);
        return r;
}

/* The directory entries a name takes: one, and the long-name entries (13
 * UTF-16 units each) unless it is a short name already — 8.3, characters a
 * short name may hold, each part in one case.  Where mtools might still do
 * without long-name entries (characters outside ASCII that its code page
 * has), none are counted: this is a lower bound. */
static uint64_t dir_entries(const char *name) {
        const char *dot = strchr(name, '.');
        size_t base = dot ? (size_t)(dot - name) : strlen(name), ext = dot ? strlen(dot + 1) : 0;
        bool short_name = base >= 1 && base <= 8 && ext <= 3 && (!dot || (ext > 0 && !strchr(dot + 1, '.')));
        int upper[2] = {0}, lower[2] = {0};
        uint64_t units = 0;

        for (const char *p = name; *p;) {
                uint32_t c;
                int l = utf8_next(p, &c), part = dot && p > dot;

                if (l < 0)
                        return 1;
                units += c > 0xffff ? 2 : 1;
                if (c < 0x80 && p != dot && !((c >= '0' && c <= '9') || strchr("!#$%&()-@^_`{}~", (int)c))) {
                        if (c >= 'A' && c <= 'Z')
                                upper[part] = 1;
                        else if (c >= 'a' && c <= 'z')
                                lower[part] = 1;
                        else
                                short_name = false;
                }
                p += l;
        }
        if (short_name && !(upper[0] && lower[0]) && !(upper[1] && lower[1]))
                return 1;
        return 1 + (units + 12) / 13;
}

/* A lower bound of the clusters the content takes (its data and its
 * directories), so that content too large fails here with the numbers
 * rather than in the middle of an mcopy. */
static int check_space(writer *w, const nri_vfat_geometry *g, bool has_label) {
        uint64_t cluster = (uint64_t)g->sector_size * g->sectors_per_cluster;
        uint64_t need = 0, root_entries, have = g->clusters - (g->fat_bits == 32 ? 1 : 0);
        uint64_t *entries = calloc(w->n_dirs, sizeof(uint64_t));

        if (!entries)
                return -ENOMEM;
        entries[0] = has_label; /* the volume label is an entry of the root */
        for (size_t i = 0; i < w->n_files; i++) {
                need += (w->files[i].size + cluster - 1) / cluster;
                entries[w->files[i].dir] += dir_entries(base_name(w->files[i].target));
        }
        for (size_t i = 1; i < w->n_dirs; i++) {
                const char *t = w->dirs[i], *slash = strrchr(t, '/');
                size_t parent = 0;

                if (slash != t) {
                        _cleanup_free_ char *p = strndup(t, (size_t)(slash - t));
                        _cleanup_free_ char *key = p ? fold(w, p) : NULL;

                        if (!key) {
                                free(entries);
                                return -ENOMEM;
                        }
                        parent = lookup(w, key)->index;
                }
                entries[parent] += dir_entries(slash + 1);
        }
        root_entries = entries[0];
        for (size_t i = 0; i < w->n_dirs; i++) {
                uint64_t e = entries[i] + (i ? 2 : 0); /* "." and ".." */
                uint64_t clusters = (e * 32 + cluster - 1) / cluster;

                if (i == 0) /* FAT12/16: a fixed area; FAT32: has its first cluster */
                        clusters = g->fat_bits == 32 && clusters > 1 ? clusters - 1 : 0;
                need += clusters;
        }
        free(entries);

        if (g->fat_bits != 32 && root_entries > (uint64_t)g->root_dir_sectors * g->sector_size / 32) {
                fprintf(stderr,
                        "%s: the root directory needs at least %" PRIu64 " entries; a FAT%" PRIu32
                        " root holds %" PRIu64 "\n",
                        w->what, root_entries, g->fat_bits,
                        (uint64_t)g->root_dir_sectors * g->sector_size / 32);
                return -ENOSPC;
        }
        if (need > have) {
                fprintf(stderr,
                        "%s: the content needs at least %" PRIu64 " bytes of clusters, the FAT%" PRIu32
                        " file system has %" PRIu64 "\n",
                        w->what, need * cluster, g->fat_bits, have * cluster);
                return -ENOSPC;
        }
        return 0;
}

/* mtools passes a device name through /bin/sh when it contains any of these
 * (expand.c), and splits it at "@@" and '|'. */
static bool image_name_is_plain(const char *p) {
        return !strpbrk(p, "$*(){}[]\\?`~|\"' \t\n") && !strstr(p, "@@") && strlen(p) < 900;
}

/* "image@@offset", through a symlink with a plain name if the image's path
 * is not plain.  *ret_tmpdir is set to the directory holding that symlink. */
static int image_spec(const char *image_path, uint64_t offset, char **ret, char **ret_tmpdir,
                      const char *what) {
        _cleanup_free_ char *real = NULL, *dir = NULL, *link = NULL;
        const char *path = image_path;
        const char *tmp = getenv("TMPDIR");

        *ret_tmpdir = NULL;
        if (!image_name_is_plain(image_path)) {
                real = realpath(image_path, NULL);
                if (!real) {
                        int r = -errno;

                        fprintf(stderr, "%s: %s: %s\n", what, image_path, strerror(errno));
                        return r;
                }
                if (!tmp || !*tmp || !image_name_is_plain(tmp))
                        tmp = "/tmp";
                if (asprintf(&dir, "%s/nri-vfat-XXXXXX", tmp) < 0)
                        return -ENOMEM;
                if (!mkdtemp(dir)) {
                        int r = -errno;

                        fprintf(stderr, "%s: cannot make a directory in %s: %s\n", what, tmp,
                                strerror(errno));
                        return r;
                }
                if (asprintf(&link, "%s/image", dir) < 0)
                        return -ENOMEM;
                if (symlink(real, link) < 0) {
                        int r = -errno;

                        fprintf(stderr, "%s: cannot make %s: %s\n", what, link, strerror(errno));
                        rmdir(dir);
                        return r;
                }
                path = link;
        }
        if (asprintf(ret, "%s@@%" PRIu64, path, offset) < 0) {
                if (link) {
                        unlink(link);
                        rmdir(dir);
                }
                return -ENOMEM;
        }
        if (link) {
                *ret_tmpdir = dir;
                dir = NULL;
        }
        return 0;
}

int nri_vfat_write(const char *image_path, uint64_t offset, uint64_t size, const nri_vfat_options *o,
                   const nri_plan *plan) {
        _cleanup_free_ char *label = NULL, *image = NULL, *tmpdir = NULL;
        char *progs[_PROG_MAX] = {0};
        writer w = {.what = o->what ? o->what : "vfat"};
        nri_visitor v = {
            .ctx = &w,
            .directory = visit_directory,
            .file = visit_file,
            .symlink = visit_symlink,
            .hardlink = NULL, /* FAT has no hard links: each name gets a copy of the data */
        };
        nri_vfat_geometry g;
        char **env = NULL;
        int64_t mtime;
        struct stat st;
        int r;

        r = nri_vfat_geometry_for(size, o->sector_size, &g);
        if (r < 0) {
                fprintf(stderr,
                        "%s: no FAT file system fits %" PRIu64 " bytes with %" PRIu32 "-byte sectors\n",
                        w.what, size, o->sector_size ? o->sector_size : 512);
                return r;
        }
        r = nri_vfat_mangle_label(o->label ? o->label : "", &label);
        if (r < 0) {
                fprintf(stderr, "%s: the label \"%s\" is not UTF-8\n", w.what, o->label);
                return r;
        }
        if (nri_vfat_label_problem(label)) {
                fprintf(stderr, "%s: the label \"%s\" (\"%s\" for FAT) %s\n", w.what, o->label, label,
                        nri_vfat_label_problem(label));
                return -EINVAL;
        }
        if (stat(image_path, &st) < 0) {
                r = -errno;
                fprintf(stderr, "%s: %s: %s\n", w.what, image_path, strerror(errno));
                return r;
        }
        if ((uint64_t)st.st_size < offset + (uint64_t)g.total_sectors * g.sector_size) {
                fprintf(stderr,
                        "%s: %s is %" PRIu64 " bytes, too small for a file system at %" PRIu64 " of %" PRIu64
                        " bytes\n",
                        w.what, image_path, (uint64_t)st.st_size, offset, size);
                return -EINVAL;
        }

        /* First the content: all of it must be fit for FAT before anything is written. */
        w.utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
        r = grow_table(&w);
        if (r >= 0) {
                w.dirs = malloc(64 * sizeof(char *));
                w.cap_dirs = w.dirs ? 64 : 0;
                r = w.dirs ? 0 : -ENOMEM;
                if (r >= 0)
                        w.dirs[w.n_dirs++] = "/";
        }
        if (r >= 0)
                r = nri_plan_walk(plan, &v);
        if (r >= 0 && w.non_ascii && !w.utf8) {
                fprintf(stderr, "%s: names outside ASCII need the C.UTF-8 locale, which this system lacks\n",
                        w.what);
                r = -ENOTSUP;
        }
        if (r >= 0)
                r = check_space(&w, &g, strcmp(label, "NO NAME") != 0);

        for (int i = 0; r >= 0 && i < _PROG_MAX; i++)
                r = find_program(prog_names[i], w.what, &progs[i]);
        if (r >= 0) {
                mtime = plan->mtime < NRI_VFAT_TIME_MIN   ? NRI_VFAT_TIME_MIN
                        : plan->mtime > NRI_VFAT_TIME_MAX ? NRI_VFAT_TIME_MAX
                                                          : plan->mtime;
                env = make_env(mtime);
                r = env ? 0 : -ENOMEM;
        }
        if (r >= 0)
                r = image_spec(image_path, offset, &image, &tmpdir, w.what);

        if (r >= 0)
                r = do_mformat(progs[PROG_MFORMAT], image, &g, o->volume_id, label, env, w.what);
        if (r >= 0 && w.n_dirs > 1)
                r = do_mmd(progs[PROG_MMD], image, &w, env);
        if (r >= 0)
                r = do_mcopy(progs[PROG_MCOPY], image, &w, env);

        if (tmpdir) {
                _cleanup_free_ char *link = NULL;

                if (asprintf(&link, "%s/image", tmpdir) >= 0)
                        unlink(link);
                rmdir(tmpdir);
        }
        free_env(env);
        for (int i = 0; i < _PROG_MAX; i++)
                free(progs[i]);
        writer_done(&w);
        return r;
}
