// A thread pool, as C servers hand work off: request handlers on producer threads submit
// tasks (`pool_submit(task)`), and worker threads run them later (`run_task(task)` calls the
// task's function), after every request has returned. What a handoff config ties together.
//
// pool TRACEPARENT: three producers each handle two requests of two tasks; then
// `handle_quiet` (a request the config samples out), `handle_traced` (a request that joined
// the caller's trace, TRACEPARENT) and a task enqueued with no `pool_submit` at all; only then
// do the workers start on the queue. `pool:submit`, a USDT probe, gives each task and its
// request as it is submitted.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>

struct task {
    int request;
    int part;
    const char *label;
    void (*fn)(struct task *);
    struct task *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static struct task *head, *tail;
static int open_gate, stopping;
static long total;

__attribute__((noinline)) void enqueue(struct task *t) {
    pthread_mutex_lock(&lock);
    t->next = NULL;
    if (tail) {
        tail->next = t;
    } else {
        head = t;
    }
    tail = t;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

__attribute__((noinline)) void pool_submit(struct task *t) {
    DTRACE_PROBE2(pool, submit, t, t->request);
    enqueue(t);
}

__attribute__((noinline)) int store_result(int request, int part) {
    __asm__ volatile("" ::: "memory");
    return request * 10 + part;
}

__attribute__((noinline)) void process_part(struct task *t) {
    int result = store_result(t->request, t->part);
    pthread_mutex_lock(&lock);
    total += result;
    pthread_mutex_unlock(&lock);
}

__attribute__((noinline)) void run_task(struct task *t) {
    t->fn(t);
    free(t);
}

static void *worker(void *unused) {
    (void)unused;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (!(open_gate && head) && !(stopping && !head)) {
            pthread_cond_wait(&changed, &lock);
        }
        struct task *t = head;
        if (!t) {
            pthread_mutex_unlock(&lock);
            return NULL;
        }
        head = t->next;
        if (!head) {
            tail = NULL;
        }
        pthread_mutex_unlock(&lock);
        run_task(t);
    }
}

static struct task *new_task(int request, int part) {
    struct task *t = calloc(1, sizeof *t);
    t->request = request;
    t->part = part;
    t->label = "part";
    t->fn = process_part;
    return t;
}

__attribute__((noinline)) static void submit_parts(int request) {
    for (int part = 0; part < 2; part++) {
        pool_submit(new_task(request, part));
    }
}

__attribute__((noinline)) int handle_request(int request) {
    submit_parts(request);
    __asm__ volatile("" ::: "memory");
    return request;
}

__attribute__((noinline)) int handle_quiet(int request) {
    submit_parts(request);
    __asm__ volatile("" ::: "memory");
    return request;
}

__attribute__((noinline)) int handle_traced(const char *traceparent, int request) {
    submit_parts(request);
    __asm__ volatile("" ::: "memory");
    return request + (traceparent[0] != 0);
}

static void *producer(void *arg) {
    int first = (int)(long)arg;
    for (int k = 0; k < 2; k++) {
        handle_request(first + k);
    }
    return NULL;
}

int main(int argc, char **argv) {
    const char *traceparent = argc > 1 ? argv[1] : "";
    pthread_t workers[2], producers[3];
    for (int i = 0; i < 2; i++) {
        pthread_create(&workers[i], NULL, worker, NULL);
    }
    for (int i = 0; i < 3; i++) {
        pthread_create(&producers[i], NULL, producer, (void *)(long)(10 * (i + 1)));
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(producers[i], NULL);
    }
    handle_quiet(900);
    handle_traced(traceparent, 800);
    enqueue(new_task(700, 0));
    pthread_mutex_lock(&lock);
    open_gate = 1;
    stopping = 1;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < 2; i++) {
        pthread_join(workers[i], NULL);
    }
    printf("pool %ld\n", total);
    return 0;
}
