/* vfat.c: a FAT file system, formatted by mformat and filled by the
 * builder (vfat.h).
 *
 * The plan is walked once before anything is written: every name is
 * checked against what FAT holds and given its place, its short name and
 * its clusters (fat-fill.h), so that nothing FAT cannot hold, nothing too
 * large, is found half-way.  Then mformat runs with each layout value
 * given explicitly (mtools' own choices would differ from mkfs.vfat's),
 * and the plan is walked again to copy each file's bytes to its clusters
 * from the descriptor the walk opened; last the directories and the FATs
 * are written.
 *
 * Until this file wrote the directories itself, mmd made them (one call
 * for all, parents first) and mcopy copied the files (one call per
 * directory for those that keep their store name, one per renamed file).
 * The images are the bytes those made (fat-fill.h says where they are
 * not), but mtools resolved every path from the root and scanned a
 * directory for each numbered short name it tried: a 2000-deep tree or a
 * few thousand similar names in one directory took minutes.  Now the work
 * per name is the same whatever the depth or the directory's size, and no
 * program but mformat runs (a short one, which cannot outlive the builder:
 * run()). */
#include "vfat.h"
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <locale.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <wctype.h>

#include "fat-fill.h"
#include "log.h"
#include "nix-repart-image/fat-names.h"
#include "nix-repart-image/macro.h"

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
        if (g->root_dir_sectors > 0 && 3 * st->root_names + st->root_name_bytes / 13 + 1 >
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

/* ---- running mformat --------------------------------------------------- */

static int find_program(const nri_mtools *mt, const char *name, const char *what, char **ret) {
        const char *dir = mt ? mt->dir : NULL;
        const char *path;

        if (dir && *dir) {
                char *p;

                if (asprintf(&p, "%s/%s", dir, name) < 0)
                        return -ENOMEM;
                if (access(p, X_OK) < 0) {
                        int r = -errno;

                        log_error_errno(r, "%s: %s (from NRI_MTOOLS_DIR) is not executable: %m", what, p);
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
        log_error("%s: %s not found on PATH (install mtools or set NRI_MTOOLS_DIR)", what, name);
        return -ENOENT;
}

/* The environment every mtools program runs in.  mtools reads its global
 * settings from /etc/mtools.conf, ~/.mtoolsrc and $MTOOLSRC and then from
 * the environment, which wins: so setting all of them here makes the host's
 * files irrelevant.  SOURCE_DATE_EPOCH is mtools' "now" (every timestamp it
 * writes); TZ=UTC0 because FAT stores local time; the UTF-8 locale is how
 * mtools reads names from argv (it calls setlocale(LC_ALL, "")). */
static char **make_env(const nri_mtools *mt, int64_t mtime) {
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
        for (size_t i = 0, k = n + 2; mt && i < 2; i++) {
                const char *var = i ? "GCONV_PATH" : "LOCPATH", *val = i ? mt->gconv_path : mt->locpath;

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

/* Runs argv[0] (an absolute path) with `env`, stdin from /dev/null, its
 * stdout and stderr passed on to ours, and anything it prints counts as a
 * failure: mtools is silent when all is well, and some of its errors leave
 * the exit status 0.
 *
 * The program must not outlive the builder (Nix kills a build that runs
 * too long, or a user stops one): it stays in the builder's process group,
 * which is what Nix kills, and asks the kernel for SIGKILL when the builder
 * dies (PR_SET_PDEATHSIG), however it dies.  posix_spawn() cannot ask for
 * that, so this is fork() and, in the child, only calls that are safe
 * there; a builder that died between fork() and prctl() is seen in
 * getppid().  Run by hand from a terminal, the program could stop to ask
 * on it: it gives up the controlling terminal (TIOCNOTTY), which is all
 * that a new session was for. */
static int run(const nri_mtools *mt, char *const *argv, char *const *env, const char *what,
               const char *doing) {
        const char *loader = mt ? mt->loader : NULL, *libs = mt ? mt->library_path : NULL;
        char **largv = NULL, *const *args = argv;
        size_t printed = 0;
        int r, status, out[2];
        pid_t pid, parent = getpid();
        char buf[4096];
        ssize_t n;

        /* With a loader (a bundle's, main.c), as `LOADER --library-path
         * LIBRARY_PATH argv…`: the bundle's programs are not patched to find
         * its loader and libraries. */
        if (loader && *loader) {
                size_t argc = 0;

                while (argv[argc])
                        argc++;
                largv = calloc(argc + 4, sizeof(char *));
                if (!largv)
                        return -ENOMEM;
                largv[0] = (char *)loader;
                largv[1] = (char *)"--library-path";
                largv[2] = (char *)(libs ? libs : "");
                memcpy(largv + 3, argv, argc * sizeof(char *));
                args = largv;
        }
        if (pipe2(out, O_CLOEXEC) < 0) {
                r = -errno;
                free(largv);
                log_error_errno(r, "%s: pipe: %m", what);
                return r;
        }
        pid = fork();
        if (pid == 0) {
                sigset_t none;
                int fd;

                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(127);
                /* Signals as a new program expects them (sigaction() and
                 * sigprocmask() are safe here; signal() is not). */
                for (int sig = 1; sig < NSIG; sig++)
                        (void)sigaction(sig, &(struct sigaction){.sa_handler = SIG_DFL}, NULL);
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
                if (fd >= 0)
                        (void)ioctl(fd, TIOCNOTTY);
                fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (fd < 0 || dup2(fd, 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0)
                        _exit(127);
                execve(args[0], args, env);
                _exit(127);
        }
        r = pid < 0 ? -errno : 0;
        free(largv);
        close(out[1]);
        if (r < 0) {
                close(out[0]);
                log_error_errno(r, "%s: cannot run %s: %m", what, argv[0]);
                return r;
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
                        log_error_errno(-errno, "%s: waiting for %s: %m", what, argv[0]);
                        return r;
                }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && printed == 0)
                return 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                log_error("%s: %s reported the errors above %s", what, argv[0], doing);
        else if (WIFEXITED(status))
                log_error("%s: %s failed (exit status %d) %s", what, argv[0], WEXITSTATUS(status), doing);
        else
                log_error("%s: %s killed by signal %d %s", what, argv[0],
                          WIFSIGNALED(status) ? WTERMSIG(status) : 0, doing);
        return -EIO;
}

/* ---- what goes in: every name checked before anything is written ------- */

typedef struct vfat_dir {
        char *name; /* NULL for the root */
        size_t parent;
} vfat_dir;

typedef struct vfat_file {
        char *name;
        size_t dir;        /* index into writer.dirs */
        size_t id;         /* the walk's entry id */
        size_t seq;        /* in walk order */
        bool same_name;    /* its source has its name: mcopy copied those first */
        size_t source_len; /* how long the path of its source is: it was an argument of mcopy */
        uint64_t size;
        uint32_t cluster;
        bool copied;
} vfat_file;

/* A name in a directory, folded as FAT compares names. */
typedef struct slot {
        char *key; /* "<directory index>/<folded name>"; NULL: empty */
        bool is_dir;
        size_t index; /* into dirs or files */
} slot;

typedef struct writer {
        const char *what;
        locale_t utf8; /* for towupper(), as mtools compares names; (locale_t)0 if missing */
        slot *slots;
        size_t n_slots, used;
        vfat_dir *dirs; /* dirs[0] is the root */
        size_t n_dirs, cap_dirs;
        vfat_file *files;
        size_t n_files, cap_files;
        /* By the walk's entry id: dir index + 1, or file index + 1 as
         * -(index + 1); 0: neither. */
        ssize_t *by_id;
        size_t n_ids;
        bool non_ascii;
        /* While the data is copied: */
        nri_fat_fill *fill;
        int fd;          /* the image */
        uint64_t offset; /* of the file system in it */
        size_t copied;
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

static void *grow_array(void *items, size_t n, size_t *cap, size_t size) {
        size_t c = *cap ? *cap * 2 : 64;
        void *p;

        if (n < *cap)
                return items;
        p = realloc(items, c * size);
        if (p)
                *cap = c;
        else
                free(items);
        return p;
}

/* Whether FAT (and mtools) can hold `name`, a single path component: the
 * rule the evaluator applies to the targets it knows (fat-names.h). */
static int check_name(writer *w, const char *target, const char *name) {
        char buf[128];
        const char *why = nri_fat_name_problem(name, w->utf8, buf, sizeof(buf));

        if (why) {
                log_error("%s: '%s': %s", w->what, target, why);
                return -EINVAL;
        }
        return 0;
}

static const char *base_name(const char *path) {
        const char *s = strrchr(path, '/');

        return s ? s + 1 : path;
}

/* The path of directory d (and `name` in it), for messages; malloc'ed. */
static char *path_of(const writer *w, size_t d, const char *name) {
        size_t len = name ? strlen(name) + 2 : 2;
        char *out, *o;

        for (size_t i = d; i != 0; i = w->dirs[i].parent)
                len += strlen(w->dirs[i].name) + 1;
        out = malloc(len);
        if (!out)
                return NULL;
        o = out + len - 1;
        *o = 0;
        if (name) {
                o -= strlen(name);
                memcpy(o, name, strlen(name));
                *--o = '/';
        }
        for (size_t i = d; i != 0; i = w->dirs[i].parent) {
                o -= strlen(w->dirs[i].name);
                memcpy(o, w->dirs[i].name, strlen(w->dirs[i].name));
                *--o = '/';
        }
        if (!*o)
                *--o = '/';
        memmove(out, o, strlen(o) + 1);
        return out;
}

static ssize_t *id_slot(writer *w, size_t id) {
        if (id >= w->n_ids) {
                size_t n = w->n_ids ? w->n_ids : 1024;
                ssize_t *p;

                while (n <= id)
                        n *= 2;
                p = realloc(w->by_id, n * sizeof(ssize_t));
                if (!p)
                        return NULL;
                memset(p + w->n_ids, 0, (n - w->n_ids) * sizeof(ssize_t));
                w->by_id = p;
                w->n_ids = n;
        }
        return &w->by_id[id];
}

/* The directory an entry goes into: the root (id 0) or one visited before. */
static int dir_of(writer *w, const nri_entry *e, size_t *ret) {
        if (e->parent == 0) {
                *ret = 0;
                return 0;
        }
        if (e->parent >= w->n_ids || w->by_id[e->parent] <= 0) {
                log_error("%s: '%s': its directory was not seen before it", w->what, e->target);
                return -EINVAL;
        }
        *ret = (size_t)w->by_id[e->parent] - 1;
        return 0;
}

/* Records `name` in directory d, refusing it if it is not for FAT or if a
 * name already there differs from it at most in case; `target` is its
 * path, for messages. */
static int claim(writer *w, size_t d, const char *name, const char *target, bool is_dir, slot **ret_slot) {
        _cleanup_free_ char *folded = NULL, *key = NULL;
        slot *s;
        int r;

        r = check_name(w, target, name);
        if (r < 0)
                return r;
        for (const char *p = name; *p && !w->non_ascii; p++)
                w->non_ascii = (unsigned char)*p >= 0x80;
        folded = nri_fat_fold(name, w->utf8);
        if (!folded || asprintf(&key, "%zu/%s", d, folded) < 0)
                return -ENOMEM;
        s = lookup(w, key);
        if (s->key) {
                _cleanup_free_ char *other =
                    path_of(w, d, s->is_dir ? w->dirs[s->index].name : w->files[s->index].name);

                log_error("%s: '%s' and '%s' differ only in case; FAT compares names "
                          "case-insensitively and cannot hold both",
                          w->what, other ? other : "?", target);
                return -EINVAL;
        }
        r = grow_table(w);
        if (r < 0)
                return r;
        s = lookup(w, key); /* again: growing moved it */
        s->key = TAKE_PTR(key);
        s->is_dir = is_dir;
        w->used++;
        *ret_slot = s;
        return 0;
}

static int visit_directory(void *ctx, const nri_entry *e) {
        writer *w = ctx;
        ssize_t *by_id;
        slot *s;
        size_t d;
        int r;

        r = dir_of(w, e, &d);
        if (r >= 0)
                r = claim(w, d, e->name, e->target, true, &s);
        if (r < 0)
                return r;
        w->dirs = grow_array(w->dirs, w->n_dirs, &w->cap_dirs, sizeof(vfat_dir));
        by_id = id_slot(w, e->id);
        if (!w->dirs || !by_id)
                return -ENOMEM;
        w->dirs[w->n_dirs] = (vfat_dir){.name = strdup(e->name), .parent = d};
        if (!w->dirs[w->n_dirs].name)
                return -ENOMEM;
        s->index = w->n_dirs++;
        *by_id = (ssize_t)w->n_dirs;
        return 0;
}

static int visit_file(void *ctx, const nri_entry *e, int fd) {
        writer *w = ctx;
        ssize_t *by_id;
        vfat_file *f;
        slot *s;
        size_t d;
        int r;

        (void)fd; /* read in the second walk, once every name is known fit */
        if (e->size > UINT32_MAX) {
                log_error("%s: '%s' (from %s) is %" PRIu64 " bytes; FAT files hold less than 4 GiB", w->what,
                          e->target, e->source, e->size);
                return -EINVAL;
        }
        r = dir_of(w, e, &d);
        if (r >= 0)
                r = claim(w, d, e->name, e->target, false, &s);
        if (r < 0)
                return r;
        w->files = grow_array(w->files, w->n_files, &w->cap_files, sizeof(vfat_file));
        by_id = id_slot(w, e->id);
        if (!w->files || !by_id)
                return -ENOMEM;
        f = &w->files[w->n_files];
        *f = (vfat_file){
            .name = strdup(e->name),
            .dir = d,
            .id = e->id,
            .seq = w->n_files,
            .same_name = strcmp(base_name(e->source), e->name) == 0,
            .source_len = strlen(e->source) + (e->source[0] == '/' ? 0 : 2),
            .size = e->size,
        };
        if (!f->name)
                return -ENOMEM;
        s->index = w->n_files++;
        *by_id = -(ssize_t)w->n_files;
        return 0;
}

static int visit_symlink(void *ctx, const nri_entry *e) {
        writer *w = ctx;

        log_error("%s: '%s' is a symbolic link (to '%s', from %s); FAT has no symbolic links, "
                  "so it cannot be copied into a vfat partition",
                  w->what, e->target, e->link_target ? e->link_target : "?", e->source ? e->source : "?");
        return -EINVAL;
}

static void writer_done(writer *w) {
        for (size_t i = 0; i < w->n_slots; i++)
                free(w->slots[i].key);
        free(w->slots);
        for (size_t i = 0; i < w->n_files; i++)
                free(w->files[i].name);
        free(w->files);
        for (size_t i = 0; i < w->n_dirs; i++)
                free(w->dirs[i].name);
        free(w->dirs);
        free(w->by_id);
        nri_fat_fill_free(w->fill);
}

/* ---- where everything goes: as mmd and mcopy would have put it --------- */

/* The order vfat.c's mcopy calls copied files in (before it wrote the
 * directories itself): by directory, in each first the files that keep
 * their store name (one mcopy for them all), then the renamed ones (one
 * each), each group in walk order. */
static int cmp_files(const void *a, const void *b) {
        const vfat_file *x = *(vfat_file *const *)a, *y = *(vfat_file *const *)b;

        if (x->dir != y->dir)
                return x->dir < y->dir ? -1 : 1;
        if (x->same_name != y->same_name)
                return x->same_name ? -1 : 1;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

#define MCOPY_MAX_FILES 2048
#define MCOPY_MAX_BYTES (512 * 1024)

/* Every directory (in the order they were seen: parents first) and every
 * file, given its slots and clusters (fat-fill.h): a name FAT cannot hold
 * next to another, a full root directory or content larger than the file
 * system fails here, before anything is written. */
static int lay_out(writer *w, const nri_vfat_geometry *g, const uint8_t *label, int64_t mtime) {
        vfat_file **order;
        int r;

        r = nri_fat_fill_new(g, label, mtime, w->what, &w->fill);
        if (r == -ENOTSUP)
                log_error("%s: names in FAT need the C.UTF-8 locale and code page 437, which this system "
                          "lacks",
                          w->what);
        if (r < 0)
                return r;
        for (size_t i = 1; i < w->n_dirs; i++) {
                size_t index;

                r = nri_fat_fill_mkdir(w->fill, w->dirs[i].parent, w->dirs[i].name, &index);
                if (r < 0)
                        return r;
                if (index != i)
                        return -EINVAL; /* both count directories from 1 */
        }
        order = malloc((w->n_files ? w->n_files : 1) * sizeof(*order));
        if (!order)
                return -ENOMEM;
        for (size_t i = 0; i < w->n_files; i++)
                order[i] = &w->files[i];
        if (w->n_files > 0) /* qsort(NULL, 0, …) is undefined (UBSan) */
                qsort(order, w->n_files, sizeof(*order), cmp_files);
        /* Where one mcopy call ended and the next began, which is when a
         * directory's new clusters were given out: after each renamed
         * file; else at a change of directory, before the renamed ones, or
         * when the call had 2048 files or 512 KiB of paths. */
        for (size_t i = 0, count = 0, bytes = 0; r >= 0 && i < w->n_files; i++) {
                const vfat_file *f = order[i], *next = i + 1 < w->n_files ? order[i + 1] : NULL;

                if (count == 0)
                        r = nri_fat_fill_begin(w->fill, f->dir, !f->same_name);
                if (r >= 0)
                        r = nri_fat_fill_file(w->fill, f->dir, f->name, f->size, &order[i]->cluster);
                count++;
                bytes += f->source_len + 1 + sizeof(char *);
                if (r < 0 || !(!f->same_name || !next || next->dir != f->dir || !next->same_name ||
                               count >= MCOPY_MAX_FILES || bytes >= MCOPY_MAX_BYTES))
                        continue;
                r = nri_fat_fill_flush(w->fill, f->dir);
                count = bytes = 0;
        }
        free(order);
        return r;
}

/* ---- the second walk: the files' data ---------------------------------- */

static int changed(writer *w, const nri_entry *e) {
        log_error("%s: %s: changed while being read", w->what, e->source ? e->source : e->target);
        return -ESTALE;
}

static int copy_directory(void *ctx, const nri_entry *e) {
        writer *w = ctx;

        return e->id < w->n_ids && w->by_id[e->id] > 0 ? 0 : changed(w, e);
}

/* A file's bytes to its clusters, by the kernel where it can; the file
 * must not change while they are read (size, modification and change
 * time as when it was opened), as in ext4.c. */
static int copy_file(void *ctx, const nri_entry *e, int fd) {
        writer *w = ctx;
        uint64_t done = 0, to;
        vfat_file *f;
        bool kernel = true;
        char buf[65536];

        if (e->id >= w->n_ids || w->by_id[e->id] >= 0)
                return changed(w, e);
        f = &w->files[-w->by_id[e->id] - 1];
        if (f->copied || f->size != e->size || strcmp(f->name, e->name) != 0)
                return changed(w, e);
        to = w->offset + nri_fat_fill_data_offset(w->fill, f->cluster);
        while (done < f->size) {
                ssize_t k;

                if (kernel) {
                        loff_t in = (loff_t)done, out = (loff_t)(to + done);

                        k = copy_file_range(fd, &in, w->fd, &out, f->size - done, 0);
                        if (k < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP ||
                                      errno == ENOSYS || errno == EPERM)) {
                                kernel = false;
                                continue;
                        }
                } else {
                        k = pread(fd, buf, f->size - done < sizeof(buf) ? f->size - done : sizeof(buf),
                                  (off_t)done);
                        if (k > 0) {
                                for (ssize_t put = 0, m; put < k; put += m) {
                                        m = pwrite(w->fd, buf + put, (size_t)(k - put),
                                                   (off_t)(to + done) + put);
                                        if (m < 0 && errno == EINTR)
                                                m = 0;
                                        else if (m <= 0) {
                                                log_error("%s: cannot write %s into the image: %s", w->what,
                                                          e->target, strerror(m < 0 ? errno : EIO));
                                                return m < 0 ? -errno : -EIO;
                                        }
                                }
                        }
                }
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        int r = -errno;

                        log_error_errno(r, "%s: %s: cannot copy it into the image: %m", w->what, e->source);
                        return r;
                }
                if (k == 0)
                        return changed(w, e); /* shorter than it was */
                done += (uint64_t)k;
        }
        if (!nri_source_unchanged(fd, e->st))
                return changed(w, e);
        f->copied = true;
        w->copied++;
        return 0;
}

static int copy_symlink(void *ctx, const nri_entry *e) {
        return changed(ctx, e);
}

/* ---- the whole --------------------------------------------------------- */

static int do_mformat(const nri_mtools *mt, const char *prog, const char *image, const nri_vfat_geometry *g,
                      uint32_t volume_id, const char *label, char **env, const char *what) {
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
        return run(mt, argv, env, what, "formatting the file system");
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

                        log_error_errno(-errno, "%s: %s: %m", what, image_path);
                        return r;
                }
                if (!tmp || !*tmp || !image_name_is_plain(tmp))
                        tmp = "/tmp";
                if (asprintf(&dir, "%s/nri-vfat-XXXXXX", tmp) < 0)
                        return -ENOMEM;
                if (!mkdtemp(dir)) {
                        int r = -errno;

                        log_error_errno(-errno, "%s: cannot make a directory in %s: %m", what, tmp);
                        return r;
                }
                if (asprintf(&link, "%s/image", dir) < 0)
                        return -ENOMEM;
                if (symlink(real, link) < 0) {
                        int r = -errno;

                        log_error_errno(-errno, "%s: cannot make %s: %m", what, link);
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
        _cleanup_free_ char *label = NULL, *image = NULL, *tmpdir = NULL, *mformat = NULL;
        writer w = {.what = o->what ? o->what : "vfat", .fd = -1};
        nri_visitor collect = {
            .ctx = &w,
            .directory = visit_directory,
            .file = visit_file,
            .symlink = visit_symlink,
            .hardlink = NULL, /* FAT has no hard links: each name gets a copy of the data */
        };
        nri_visitor copy = {
            .ctx = &w,
            .directory = copy_directory,
            .file = copy_file,
            .symlink = copy_symlink,
        };
        uint64_t bytes = 0;
        nri_vfat_geometry g;
        char **env = NULL;
        int64_t mtime;
        struct stat st;
        int r;

        r = nri_vfat_geometry_for(size, o->sector_size, &g);
        if (r < 0) {
                log_error("%s: no FAT file system fits %" PRIu64 " bytes with %" PRIu32 "-byte sectors",
                          w.what, size, o->sector_size ? o->sector_size : 512);
                return r;
        }
        r = nri_vfat_mangle_label(o->label ? o->label : "", &label);
        if (r < 0) {
                log_error("%s: the label \"%s\" is not UTF-8", w.what, o->label);
                return r;
        }
        if (nri_vfat_label_problem(label)) {
                log_error("%s: the label \"%s\" (\"%s\" for FAT) %s", w.what, o->label, label,
                          nri_vfat_label_problem(label));
                return -EINVAL;
        }
        if (stat(image_path, &st) < 0) {
                r = -errno;
                log_error_errno(-errno, "%s: %s: %m", w.what, image_path);
                return r;
        }
        if ((uint64_t)st.st_size < offset + (uint64_t)g.total_sectors * g.sector_size) {
                log_error("%s: %s is %" PRIu64 " bytes, too small for a file system at %" PRIu64
                          " of %" PRIu64 " bytes",
                          w.what, image_path, (uint64_t)st.st_size, offset, size);
                return -EINVAL;
        }
        mtime = plan->mtime < NRI_VFAT_TIME_MIN   ? NRI_VFAT_TIME_MIN
                : plan->mtime > NRI_VFAT_TIME_MAX ? NRI_VFAT_TIME_MAX
                                                  : plan->mtime;

        /* First the content: all of it must be fit for FAT, and placed,
         * before anything is written. */
        w.utf8 = nri_fat_locale();
        r = grow_table(&w);
        if (r >= 0) {
                w.dirs = grow_array(NULL, 0, &w.cap_dirs, sizeof(vfat_dir));
                r = w.dirs ? 0 : -ENOMEM;
                if (r >= 0)
                        w.dirs[w.n_dirs++] = (vfat_dir){0};
        }
        if (r >= 0)
                r = nri_plan_walk(plan, &collect);
        if (r >= 0 && w.non_ascii && !w.utf8) {
                log_error("%s: names outside ASCII need the C.UTF-8 locale, which this system lacks",
                          w.what);
                r = -ENOTSUP;
        }
        if (r >= 0) {
                /* The label's entry, as mformat writes it (label_name_uc()). */
                uint8_t entry[11];

                memset(entry, ' ', sizeof(entry));
                for (size_t i = 0; i < 11 && label[i]; i++)
                        entry[i] = label[i] == '^' ? '~' : (uint8_t)label[i];
                r = lay_out(&w, &g, strcmp(label, "NO NAME") != 0 ? entry : NULL, mtime);
        }

        /* Then the file system, by mformat; then what goes in it. */
        if (r >= 0)
                r = find_program(o->mtools, "mformat", w.what, &mformat);
        if (r >= 0) {
                env = make_env(o->mtools, mtime);
                r = env ? 0 : -ENOMEM;
        }
        if (r >= 0)
                r = image_spec(image_path, offset, &image, &tmpdir, w.what);
        if (r >= 0)
                r = do_mformat(o->mtools, mformat, image, &g, o->volume_id, label, env, w.what);
        if (r >= 0) {
                w.fd = open(image_path, O_RDWR | O_CLOEXEC);
                w.offset = offset;
                if (w.fd < 0) {
                        r = -errno;
                        log_error_errno(r, "%s: %s: %m", w.what, image_path);
                }
        }
        if (r >= 0)
                r = nri_plan_walk(plan, &copy);
        if (r >= 0 && w.copied != w.n_files) {
                log_error("%s: %zu of the %zu files were not there to copy: the sources changed while "
                          "being read",
                          w.what, w.n_files - w.copied, w.n_files);
                r = -ESTALE;
        }
        if (r >= 0)
                r = nri_fat_fill_write(w.fill, w.fd, offset);
        if (w.fd >= 0 && close(w.fd) < 0 && r >= 0) {
                r = -errno;
                log_error_errno(r, "%s: writing %s: %m", w.what, image_path);
        }
        for (size_t i = 0; i < w.n_files; i++)
                bytes += w.files[i].size;
        if (r >= 0 && w.n_files)
                log_info("%s: copied %zu files (%" PRIu64 " bytes) into %zu directories", w.what, w.n_files,
                         bytes, w.n_dirs);

        if (tmpdir) {
                _cleanup_free_ char *link = NULL;

                if (asprintf(&link, "%s/image", tmpdir) >= 0)
                        unlink(link);
                rmdir(tmpdir);
        }
        free_env(env);
        writer_done(&w);
        return r;
}

/* ---- the file-system table's writer (fs.h) ---- */

static int guess_size(const nri_fs_part *fp, const nri_plan_stats *st, uint64_t *ret) {
        return nri_vfat_min_size(st, fp->spec->sector_size, ret);
}

static int write_fs(const nri_fs_part *fp) {
        nri_vfat_options o = {
            .volume_id = nri_uuid_vfat_volume_id(&fp->p->fs_uuid),
            .label = fp->p->label,
            /* The image's sector size, as newer systemd-repart passes it
             * (252 formats with 512 whatever the image has): firmware on a
             * 4Kn disk expects the FAT's sectors to match. */
            .sector_size = fp->spec->sector_size,
            .what = fp->what,
            .mtools = fp->mtools,
        };

        return nri_vfat_write(fp->image, fp->offset, fp->size, &o, fp->plan);
}

const nri_fs_writer nri_vfat_fs = {
    .guess_size = guess_size,
    .write = write_fs,
};
