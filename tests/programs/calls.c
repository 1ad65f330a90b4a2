/* Test program for real-world call patterns. Usage: calls MODE [N]
 *   threads N   N threads, each calling outer -> middle -> inner with its own numbers
 *   recurse N   a recursive function N levels deep
 *   exit        exit() inside a probed call, nested in another
 *   thread-exit a thread that calls pthread_exit() inside a probed call, then normal calls
 *   longjmp     a longjmp out of two probed calls, then a normal probed call
 *   serve N     call tick() every 20 ms, N times (for attaching to a running process)
 *   resolve     getaddrinfo("localhost") from libc
 *   chain-wait  outer(1), then 300 ms alive (so that its stacks are read while it runs)
 *   tailcall    tail_outer(1), which jumps to tail_inner, then outer(1)
 *   bench N [work]  N calls of inner() (or work()), printing the mean ns per call
 *   load T S [R] [F]  T threads calling work() (or F: work_on) for S seconds, R calls/s in
 *               all (default 0: as fast as they can), printing the calls made and the calls
 *               per second
 *   slow N      one call of slow(), which sleeps N ms
 *   fork        fork(); the child calls outer(2) at once, without exec; the parent outer(1)
 * Built with frame pointers and without sibling-call optimisation, like the demo. */
#include <netdb.h>
#include <sys/wait.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROBED __attribute__((noinline, noipa))

PROBED long inner(long x) { return x * 2; }
PROBED long middle(long x) { return inner(x + 1) + 1; }
PROBED long outer(long x) { return middle(x) + 1; }

/* The benchmarks' function: with a frame, so it starts with push %rbp (after endbr64 with
 * -fcf-protection), which the kernel emulates, unlike inner's lea. */
PROBED long work(long x) { return inner(x) + 1; }

/* work() on a struct, for the cost of reading its members along chains of pointers. */
struct item {
    long x, y, a, b, c, d;
};
PROBED long work_on(const struct item *item) { return inner(item->x) + 1; }

PROBED long recurse(long depth) { return depth <= 1 ? 1 : 1 + recurse(depth - 1); }

PROBED void exit_now(int code) { exit(code); }
PROBED void about_to_exit(int code) { exit_now(code); }

PROBED void thread_exit_now(int code) { pthread_exit((void *)(long)code); }

static jmp_buf jump;
PROBED void jump_back(int value) { longjmp(jump, value); }
PROBED void jump_from_here(int value) { jump_back(value); }
PROBED int after_jump(int value) { return value + 1; }

PROBED long tick(long i) { return i; }

PROBED void slow(long ms) {
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
}

/* tail_outer ends with a jump to tail_inner (a sibling call), not a call. */
PROBED long tail_inner(long x) { return x * 3; }
__attribute__((noinline, optimize("optimize-sibling-calls"))) long tail_outer(long x) {
    return tail_inner(x + 1);
}

static void *thread_main(void *arg) {
    long id = (long)arg;
    long total = 0;
    for (long i = 0; i < 20; i++) total += outer(id * 1000 + i);
    return (void *)total;
}

static double seconds_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec + now.tv_nsec / 1e9;
}

struct load {
    double seconds;
    double rate; /* calls/s of this thread, 0 for as fast as it can */
    int on_item; /* call work_on() instead of work() */
    long calls;
};

/* Calls work() in rounds of 100 until the time is up, sleeping between rounds to keep to the
 * rate, if any. */
static void *load_main(void *arg) {
    struct load *load = arg;
    double start = seconds_now(), now = start;
    long calls = 0, total = 0;
    struct item item = {1, 2, 3, 4, 5, 6};
    while (now - start < load->seconds) {
        for (long i = 0; i < 100; i++) total += load->on_item ? work_on(&item) : work(calls + i);
        calls += 100;
        now = seconds_now();
        double due = load->rate > 0 ? start + calls / load->rate : now;
        if (due > now) {
            struct timespec until = {(time_t)due, (long)((due - (time_t)due) * 1e9)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL);
            now = seconds_now();
        }
    }
    load->calls = calls;
    return (void *)total;
}

static void *exiting_thread(void *arg) {
    (void)arg;
    thread_exit_now(7);
    return NULL;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    long n = argc > 2 ? strtol(argv[2], NULL, 10) : 1;
    printf("calls[%d] %s\n", (int)getpid(), mode);
    fflush(stdout);
    if (strcmp(mode, "threads") == 0) {
        pthread_t threads[64];
        if (n > 64) n = 64;
        for (long i = 0; i < n; i++) pthread_create(&threads[i], NULL, thread_main, (void *)(i + 1));
        for (long i = 0; i < n; i++) pthread_join(threads[i], NULL);
    } else if (strcmp(mode, "recurse") == 0) {
        printf("depth %ld\n", recurse(n));
        outer(1);
    } else if (strcmp(mode, "exit") == 0) {
        outer(5);
        about_to_exit(3);
    } else if (strcmp(mode, "thread-exit") == 0) {
        pthread_t thread;
        pthread_create(&thread, NULL, exiting_thread, NULL);
        pthread_join(thread, NULL);
        outer(9);
    } else if (strcmp(mode, "longjmp") == 0) {
        if (setjmp(jump) == 0) jump_from_here(41);
        after_jump(41);
    } else if (strcmp(mode, "serve") == 0) {
        struct timespec pause = {0, 20 * 1000 * 1000};
        for (long i = 0; i < n; i++) {
            tick(i);
            nanosleep(&pause, NULL);
        }
    } else if (strcmp(mode, "fork") == 0) {
        pid_t child = fork();
        if (child == 0) {
            outer(2);
            _exit(0);
        }
        outer(1);
        int status = 0;
        waitpid(child, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    } else if (strcmp(mode, "slow") == 0) {
        slow(n);
    } else if (strcmp(mode, "bench") == 0) {
        struct timespec start, end;
        long total = 0;
        clock_gettime(CLOCK_MONOTONIC, &start);
        int use_work = argc > 3 && strcmp(argv[3], "work") == 0;
        for (long i = 0; i < n; i++) total += use_work ? work(i) : inner(i);
        clock_gettime(CLOCK_MONOTONIC, &end);
        double ns = (end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec);
        printf("bench %ld calls %.1f ns/call (%ld)\n", n, ns / n, total);
    } else if (strcmp(mode, "load") == 0) {
        pthread_t threads[64];
        struct load loads[64];
        if (n > 64) n = 64;
        double seconds = argc > 3 ? strtod(argv[3], NULL) : 1;
        double rate = argc > 4 ? strtod(argv[4], NULL) : 0;
        int on_item = argc > 5 && strcmp(argv[5], "work_on") == 0;
        double start = seconds_now();
        for (long i = 0; i < n; i++) {
            loads[i] = (struct load){seconds, rate / n, on_item, 0};
            pthread_create(&threads[i], NULL, load_main, &loads[i]);
        }
        long calls = 0;
        for (long i = 0; i < n; i++) {
            pthread_join(threads[i], NULL);
            calls += loads[i].calls;
        }
        double elapsed = seconds_now() - start;
        printf("load %ld calls in %.2f s %.0f calls/s\n", calls, elapsed, calls / elapsed);
    } else if (strcmp(mode, "tailcall") == 0) {
        printf("tail %ld\n", tail_outer(1));
        outer(1);
    } else if (strcmp(mode, "chain-wait") == 0) {
        outer(1);
        struct timespec pause = {0, 300 * 1000 * 1000};
        nanosleep(&pause, NULL);
    } else if (strcmp(mode, "resolve") == 0) {
        struct addrinfo *result = NULL;
        int rc = getaddrinfo("localhost", NULL, NULL, &result);
        if (result) freeaddrinfo(result);
        printf("getaddrinfo %d\n", rc);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
