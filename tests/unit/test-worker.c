/* test-worker.c: the worker runs every job once, in order, on descriptors
 * of its own; the first job that fails stops it, and its error reaches the
 * walk at the next job it queues and at the end; no descriptor is left. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <unistd.h>

#include "check.h"
#include "worker.h"

typedef struct seen {
        size_t n, next_id;
        size_t fail_at; /* 0: never */
        bool in_order, own_fd;
        int caller_fd;
} seen;

static int job(void *ctx, const nri_job *j) {
        seen *s = ctx;

        if (j->id != s->next_id)
                s->in_order = false;
        if (j->fd == s->caller_fd || fcntl(j->fd, F_GETFD) < 0) /* a descriptor of its own */
                s->own_fd = false;
        s->next_id++;
        s->n++;
        if (s->fail_at && j->id == s->fail_at) {
                usleep(1000); /* the walk has queued more by now */
                return -EIO;
        }
        return 0;
}

static size_t open_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        size_t n = 0;

        CHECK(d != NULL);
        while (d && readdir(d))
                n++;
        if (d)
                closedir(d);
        return n;
}

static void test_all_in_order(void) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        seen s = {.in_order = true, .own_fd = true, .caller_fd = fd};
        size_t before = open_fds();
        nri_worker *w;

        CHECK(nri_worker_new(job, &s, &w) == 0);
        for (size_t i = 0; i < 10000; i++) {
                nri_job j = {.fd = fd, .source = "/dev/null", .id = i};

                if (i % 2) { /* given: the worker closes it */
                        j.fd = dup(fd);
                        CHECK(nri_worker_give(w, &j) == 0);
                } else {
                        CHECK(nri_worker_queue(w, &j) == 0);
                }
        }
        CHECK(nri_worker_finish(w) == 0);
        CHECK_U64(s.n, 10000);
        CHECK(s.in_order);
        CHECK(s.own_fd);
        CHECK_U64(open_fds(), before);
        close(fd);
}

static void test_first_error_stops(void) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        seen s = {.in_order = true, .own_fd = true, .caller_fd = fd, .fail_at = 50};
        size_t before = open_fds(), queued = 0;
        nri_worker *w;
        int r = 0;

        CHECK(nri_worker_new(job, &s, &w) == 0);
        for (size_t i = 0; i < 100000 && r == 0; i++) {
                nri_job j = {.fd = fd, .source = "/dev/null", .id = i};

                r = nri_worker_queue(w, &j);
                queued += r == 0;
        }
        CHECK(r == -EIO); /* the walk learns it while queueing */
        CHECK(queued < 100000);
        /* A descriptor that cannot be given stays the caller's. */
        {
                int mine = dup(fd);
                nri_job j = {.fd = mine, .source = "/dev/null"};

                CHECK(nri_worker_give(w, &j) == -EIO);
                CHECK(fcntl(mine, F_GETFD) >= 0);
                close(mine);
        }
        CHECK(nri_worker_finish(w) == -EIO);
        CHECK_U64(s.n, 51);            /* nothing after the failed job ran */
        CHECK_U64(open_fds(), before); /* the jobs dropped were closed */
        close(fd);

        /* Nothing queued, and no worker at all. */
        CHECK(nri_worker_new(job, &s, &w) == 0);
        CHECK(nri_worker_finish(w) == 0);
        CHECK(nri_worker_finish(NULL) == 0);
}

int main(void) {
        test_all_in_order();
        test_first_error_stops();
        return check_result();
}
