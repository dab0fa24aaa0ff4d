/* plan-dir.h: a directory of a source, read for the walk (plan-dir.c):
 * its names sorted as the walk visits them.  Private to plan.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* One directory being read. */
typedef struct frame {
        int fd; /* -1: closed, to be opened again (plan.c: reopen_parent()) */
        dev_t dev;
        ino_t ino;
        char **names;
        size_t n, i;
        size_t id;               /* the directory's entry id (0: the root) */
        size_t src_len, tgt_len; /* its paths' lengths in walk.src/tgt */
        /* The directory was there before this copy reached it, so a name in
         * it may be taken already; in a directory this copy made, none is. */
        bool merged;
} frame;

/* Opens the directory `name` (relative to dirfd) and reads its sorted names
 * into *f.  `path` is for messages. */
int frame_open(frame *f, int dirfd, const char *name, const char *path);
void frame_free(frame *f);

/* readdir()'s d_type of a name of a frame (DT_UNKNOWN where the file
 * system gives none). */
unsigned char name_type(const char *name);

/* A name readdir() says is a regular file, opened, and *st its fstat();
 * -1 (errno kept) where that does not hold. */
int open_regular(int dirfd, const char *name, struct stat *st);
