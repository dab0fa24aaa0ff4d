/* worker.h: one thread beside the walk, for the work on file data.
 *
 * The walk (plan.c) and the file-system writer are sequential: names,
 * inodes and blocks are given out in the walk's order, which is what makes
 * an image reproducible.  What is done with a file's bytes once its place
 * is known is not: counting its blocks of zeros while measuring, copying
 * it to the blocks it was given while writing.  A worker takes that part,
 * so the walk goes on to the next file while the bytes of this one move
 * (the builder's two halves on two cores).
 *
 * Jobs run in the order they are queued, one at a time, on one thread; the
 * queue is short (the walk waits when it is full).  A job holds a
 * descriptor of its own (dup()ed when queued, closed when done).  The first
 * job that fails stops the worker: its error is logged by the job and
 * returned by the next nri_worker_queue() and by nri_worker_finish(). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

typedef struct nri_job {
        int fd;             /* the source file, the job's own */
        const char *source; /* its path, for messages (the job's own copy) */
        uint64_t offset;    /* where in the source */
        uint64_t length;    /* how many bytes */
        uint64_t to;        /* where in the output (copies) */
        size_t id;          /* the walk's entry id */
        int flags;          /* the job function's own */
        /* Set: once done, the source must still be as the walk found it
         * (nri_source_unchanged(), plan.h), else the job fails. */
        bool verify;
        struct stat verify_st;
} nri_job;

/* Runs in the worker thread; `ctx` is the worker's, and only the worker
 * touches it until nri_worker_finish() returns.  0 or a negative errno
 * (after logging it). */
typedef int (*nri_job_fn)(void *ctx, const nri_job *job);

typedef struct nri_worker nri_worker;

/* 0, or a negative errno (no thread could be started). */
int nri_worker_new(nri_job_fn fn, void *ctx, nri_worker **ret);

/* Queues a job on a duplicate of job->fd and a copy of job->source (the
 * caller keeps its own).  0, or the error of an earlier job (nothing more
 * is queued then), or -errno. */
int nri_worker_queue(nri_worker *w, const nri_job *job);

/* The same, giving the worker job->fd itself (no duplicate: a system call
 * less, and the close is the worker's) once queued; when it cannot be
 * (an error returned), fd is still the caller's. */
int nri_worker_give(nri_worker *w, const nri_job *job);

/* Waits for every queued job (or, after an error, for the running one),
 * stops the thread and frees the worker.  0 or the first job's error.
 * NULL is fine. */
int nri_worker_finish(nri_worker *w);
