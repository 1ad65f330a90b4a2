// libuv's thread pool, as Node.js and C servers use it: `handle` queues two jobs with
// `uv_queue_work`, and libuv runs each job's `work` callback on a pool thread, where `crunch`
// does the work; then the loop runs each job's `done` callback (which calls `settle`) back on
// the thread that queued it. The `uv_work_t *` goes in at `uv_queue_work` and comes out as the
// callbacks' argument: handoffs across a library no one here wrote, to another thread and to
// the same one later.
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

struct job {
    uv_work_t req;
    int request;
    int result;
};

static long total;

__attribute__((noinline)) int crunch(int request) {
    __asm__ volatile("" ::: "memory");
    return request * 3;
}

__attribute__((noinline)) void work(uv_work_t *req) {
    struct job *job = req->data;
    job->result = crunch(job->request);
}

__attribute__((noinline)) int settle(int request, int result) {
    __asm__ volatile("" ::: "memory");
    return request + result;
}

// Run by the loop, on the thread that queued the job, once its work is done.
__attribute__((noinline)) void done(uv_work_t *req, int status) {
    struct job *job = req->data;
    if (status == 0) {
        total += settle(job->request, job->result) - job->request;
    }
    free(job);
}

__attribute__((noinline)) int handle(uv_loop_t *loop, int request) {
    for (int i = 0; i < 2; i++) {
        struct job *job = calloc(1, sizeof *job);
        job->request = request;
        job->req.data = job;
        uv_queue_work(loop, &job->req, work, done);
    }
    return request;
}

int main(void) {
    uv_loop_t *loop = uv_default_loop();
    for (int request = 1; request <= 3; request++) {
        handle(loop, request);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    printf("uvwork %ld\n", total);
    return 0;
}
