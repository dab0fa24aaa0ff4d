/* A main() for the fuzz targets without libFuzzer: runs the target once on
 * each file named (directories are walked), so the regression corpus is
 * replayed by `meson test` with any compiler.  Prints "N inputs". */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long count;

static int run_file(const char *path) {
        FILE *f = fopen(path, "rb");
        if (!f) {
                perror(path);
                return -1;
        }
        size_t cap = 4096, n = 0;
        uint8_t *buf = malloc(cap);
        size_t got;
        while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
                n += got;
                if (n == cap)
                        buf = realloc(buf, cap *= 2);
        }
        fclose(f);
        if (!buf)
                return -1;
        /* A copy of exactly n bytes, so ASan sees any read past the end. */
        uint8_t *exact = malloc(n ? n : 1);
        memcpy(exact, buf, n);
        free(buf);
        LLVMFuzzerTestOneInput(exact, n);
        free(exact);
        count++;
        return 0;
}

static int run_path(const char *path) {
        struct stat st;
        if (stat(path, &st) < 0) {
                perror(path);
                return -1;
        }
        if (!S_ISDIR(st.st_mode))
                return run_file(path);
        struct dirent **names;
        int k = scandir(path, &names, NULL, alphasort), r = 0;
        if (k < 0) {
                perror(path);
                return -1;
        }
        for (int i = 0; i < k; i++) {
                if (names[i]->d_name[0] != '.') {
                        char *p;
                        if (asprintf(&p, "%s/%s", path, names[i]->d_name) < 0)
                                abort();
                        if (run_path(p) < 0)
                                r = -1;
                        free(p);
                }
                free(names[i]);
        }
        free(names);
        return r;
}

int main(int argc, char **argv) {
        int r = 0;
        for (int i = 1; i < argc; i++)
                if (run_path(argv[i]) < 0)
                        r = 1;
        printf("%lu inputs\n", count);
        return r;
}
