/* mformat.c: mtools' mformat, run as a program to make a FAT of a given
 * layout (mformat.h). */
#include "mformat.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "nix-repart-image/macro.h"

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
/* argv with a loader (a bundle's, main.c) in front, as `LOADER
 * --library-path LIBRARY_PATH argv…`: the bundle's programs are not
 * patched to find its loader and libraries.  *ret_argv is malloc'ed, NULL
 * when there is no loader (run argv as it is). */
static int with_loader(const nri_mtools *mt, char *const *argv, char ***ret_argv) {
        const char *loader = mt ? mt->loader : NULL, *libs = mt ? mt->library_path : NULL;
        size_t argc = 0;
        char **largv;

        *ret_argv = NULL;
        if (!loader || !*loader)
                return 0;
        while (argv[argc])
                argc++;
        largv = calloc(argc + 4, sizeof(char *));
        if (!largv)
                return -ENOMEM;
        largv[0] = (char *)loader;
        largv[1] = (char *)"--library-path";
        largv[2] = (char *)(libs ? libs : "");
        memcpy(largv + 3, argv, argc * sizeof(char *));
        *ret_argv = largv;
        return 0;
}

/* The child's side of the fork(): only calls that are safe there. */
_Noreturn static void child(char *const *args, char *const *env, int out, pid_t parent) {
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
        if (fd < 0 || dup2(fd, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
                _exit(127);
        execve(args[0], args, env);
        _exit(127);
}

/* Passes what the program prints on to our stderr until it closes its
 * end; returns how many bytes it printed. */
static size_t relay_output(int fd) {
        size_t printed = 0;
        char buf[4096];
        ssize_t n;

        while ((n = read(fd, buf, sizeof(buf))) != 0) {
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                fwrite(buf, 1, (size_t)n, stderr);
                printed += (size_t)n;
        }
        return printed;
}

/* Waits for the program and judges how it ended: 0 only for exit status 0
 * with nothing printed. */
static int judge(pid_t pid, size_t printed, const char *prog, const char *what, const char *doing) {
        int r, status;

        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        r = -errno;
                        log_error_errno(r, "%s: waiting for %s: %m", what, prog);
                        return r;
                }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && printed == 0)
                return 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                log_error("%s: %s reported the errors above %s", what, prog, doing);
        else if (WIFEXITED(status))
                log_error("%s: %s failed (exit status %d) %s", what, prog, WEXITSTATUS(status), doing);
        else
                log_error("%s: %s killed by signal %d %s", what, prog,
                          WIFSIGNALED(status) ? WTERMSIG(status) : 0, doing);
        return -EIO;
}

static int run(const nri_mtools *mt, char *const *argv, char *const *env, const char *what,
               const char *doing) {
        char **largv = NULL;
        size_t printed;
        int r, out[2];
        pid_t pid, parent = getpid();

        r = with_loader(mt, argv, &largv);
        if (r < 0)
                return r;
        if (pipe2(out, O_CLOEXEC) < 0) {
                r = -errno;
                free(largv);
                log_error_errno(r, "%s: pipe: %m", what);
                return r;
        }
        pid = fork();
        if (pid == 0)
                child(largv ? largv : argv, env, out[1], parent);
        r = pid < 0 ? -errno : 0;
        free(largv);
        close(out[1]);
        if (r < 0) {
                close(out[0]);
                log_error_errno(r, "%s: cannot run %s: %m", what, argv[0]);
                return r;
        }
        printed = relay_output(out[0]);
        close(out[0]);
        return judge(pid, printed, argv[0], what, doing);
}

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

int nri_mformat(const nri_mtools *mt, const char *image_path, uint64_t offset, const nri_vfat_geometry *g,
                uint32_t volume_id, const char *label, int64_t mtime, const char *what) {
        _cleanup_free_ char *mformat = NULL, *image = NULL, *tmpdir = NULL;
        char **env = NULL;
        int r;

        r = find_program(mt, "mformat", what, &mformat);
        if (r < 0)
                return r;
        env = make_env(mt, mtime);
        if (!env)
                return -ENOMEM;
        r = image_spec(image_path, offset, &image, &tmpdir, what);
        if (r >= 0)
                r = do_mformat(mt, mformat, image, g, volume_id, label, env, what);
        if (tmpdir) {
                _cleanup_free_ char *link = NULL;

                if (asprintf(&link, "%s/image", tmpdir) >= 0)
                        unlink(link);
                rmdir(tmpdir);
        }
        free_env(env);
        return r;
}
