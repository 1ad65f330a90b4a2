/*
 * A chain of calls through a shared library, for stacks unwound by tables: main -> outer ->
 * middle -> relay (librelay.so) -> leaf. Built with and without frame pointers, and each
 * frame keeps something on its stack, so that a frame-pointer walk cannot pass it by chance.
 *
 *   unwind [N]       the chain N times (default 1)
 *   unwind deep D    leaf at the bottom of D nested calls of `descend`
 *
 * Either way it prints what the calls returned and how long they took ("calls N in S s"),
 * then waits half a second, so that its mappings can still be read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

long relay(long (*next)(long), long n);

static volatile long sink;

__attribute__((noinline)) long leaf(long n) { /* PROBED leaf */
    char text[32];
    snprintf(text, sizeof text, "%ld", n);
    sink = (long)strlen(text);
    return n * 2;
}

__attribute__((noinline)) long middle(long n) {
    char scratch[48];
    memset(scratch, (int)n, sizeof scratch);
    sink = scratch[n % 48];
    long result = relay(leaf, n); /* MIDDLE CALL */
    return result + scratch[(n + 1) % 48];
}

__attribute__((noinline)) long outer(long n) {
    long values[8];
    for (int i = 0; i < 8; i++) values[i] = n + i;
    sink = values[n % 8];
    long result = middle(n + values[3]); /* OUTER CALL */
    return result - values[(n + 5) % 8];
}

/* Recurses `depth` times, each frame holding 256 bytes, then calls leaf. */
__attribute__((noinline)) long descend(long depth) {
    char frame[256];
    memset(frame, (int)depth, sizeof frame);
    sink = frame[depth % 256];
    long result = depth == 0 ? leaf(depth) : descend(depth - 1); /* DESCEND CALL */
    return result + frame[(depth + 7) % 256];
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    long total = 0, times = 1;
    double start = now();
    if (argc > 2 && strcmp(argv[1], "deep") == 0) {
        total = descend(atol(argv[2])); /* MAIN DEEP */
    } else {
        times = argc > 1 ? atol(argv[1]) : 1;
        for (long i = 0; i < times; i++) total += outer(i); /* MAIN CALL */
    }
    printf("total %ld\ncalls %ld in %.6f s\n", total, times, now() - start);
    fflush(stdout);
    usleep(500 * 1000);
    return 0;
}
