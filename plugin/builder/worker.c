/* worker.c: one thread beside the walk (see worker.h). */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QUEUE 64 /* jobs waiting: as many descriptors held */
/* A sleeping side is woken when half the queue is there to work on (or a
 * job this large), not at every job: each wake is two system calls. */
#define WAKE_BYTES (UINT64_C(1) << 20)

struct nri_worker {
        nri_job_fn fn;
        void *ctx;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t changed; /* a job queued or done, or the end asked */
        /* Who waits on `changed`: woken only then, not at every job (a
         * system call each, for tens of thousands of small files). */
        bool worker_waits, queuer_waits;
        nri_job jobs[QUEUE]; /* a ring: [head, head + n) */
        size_t head, n;      /* jobs[head] is the one running, if any */
        bool closing;        /* no more jobs: stop when the queue is empty */
        int error;           /* the first job's that failed */
};

static void job_release(nri_job *j) {
        if (j->fd >= 0)
                close(j->fd);
        free((char *)j->source);
        *j = (nri_job){.fd = -1};
}

static void *run(void *arg) {
        nri_worker *w = arg;

        pthread_mutex_lock(&w->lock);
        for (;;) {
                nri_job job;
                int r;

                while (w->n == 0 && !w->closing) {
                        w->worker_waits = true;
                        pthread_cond_wait(&w->changed, &w->lock);
                        w->worker_waits = false;
                }
                if (w->n == 0 || w->error)
                        break;
                job = w->jobs[w->head];
                pthread_mutex_unlock(&w->lock);

                r = w->fn(w->ctx, &job);
                job_release(&job);

                pthread_mutex_lock(&w->lock);
                w->head = (w->head + 1) % QUEUE;
                w->n--;
                if (r < 0 && !w->error)
                        w->error = r;
                if (w->queuer_waits && (w->n <= QUEUE / 2 || w->error))
                        pthread_cond_broadcast(&w->changed);
                if (w->error)
                        break;
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

int nri_worker_new(nri_job_fn fn, void *ctx, nri_worker **ret) {
        nri_worker *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        w->fn = fn;
        w->ctx = ctx;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->changed, NULL);
        r = pthread_create(&w->thread, NULL, run, w);
        if (r != 0) {
                pthread_cond_destroy(&w->changed);
                pthread_mutex_destroy(&w->lock);
                free(w);
                return -r;
        }
        *ret = w;
        return 0;
}

int nri_worker_give(nri_worker *w, const nri_job *job) {
        nri_job j = *job;
        int r;

        j.source = strdup(job->source ? job->source : "");
        if (!j.source)
                return -ENOMEM;
        pthread_mutex_lock(&w->lock);
        while (w->n == QUEUE && !w->error) {
                w->queuer_waits = true;
                pthread_cond_wait(&w->changed, &w->lock);
                w->queuer_waits = false;
        }
        r = w->error;
        if (!r) {
                w->jobs[(w->head + w->n) % QUEUE] = j;
                w->n++;
                /* Woken for a batch of small jobs, or for a large one. */
                if (w->worker_waits && (w->n >= QUEUE / 2 || j.length >= WAKE_BYTES))
                        pthread_cond_broadcast(&w->changed);
        }
        pthread_mutex_unlock(&w->lock);
        if (r)
                free((char *)j.source); /* fd stays the caller's */
        return r;
}

int nri_worker_queue(nri_worker *w, const nri_job *job) {
        nri_job j = *job;
        int r;

        j.fd = fcntl(job->fd, F_DUPFD_CLOEXEC, 3);
        if (j.fd < 0)
                return -errno;
        r = nri_worker_give(w, &j);
        if (r < 0)
                close(j.fd);
        return r;
}

int nri_worker_finish(nri_worker *w) {
        int r;

        if (!w)
                return 0;
        pthread_mutex_lock(&w->lock);
        w->closing = true;
        pthread_cond_broadcast(&w->changed);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);

        r = w->error;
        /* After an error, the jobs still queued are dropped. */
        for (size_t i = 0; i < w->n; i++)
                job_release(&w->jobs[(w->head + i) % QUEUE]);
        pthread_cond_destroy(&w->changed);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return r;
}
