/* The bundled demo: small functions for spanprobe to turn into spans.
 *
 * Usage: demo [LOOPS [PAUSE_MS]]   (default 3 loops; 0 loops runs until killed, pausing
 * PAUSE_MS, default 200, between loops: the sidecar demo)
 * Each loop calls two_ints_and_return, two_chars_and_return, do_nothing_and_return, and the
 * nested chain outer -> middle -> inner. noinline and noipa keep every call a real call that
 * the compiler cannot fold, inline or turn into a jump. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define PROBED __attribute__((noinline, noipa))

PROBED int two_ints_and_return(int a, int b) { return a + b; }

PROBED char two_chars_and_return(char a, char b) { return (char)(a + b - 'a'); }

PROBED int do_nothing_and_return(void) { return 0; }

PROBED long inner(long x) { return x * 2; }

PROBED long middle(long x) { return inner(x + 1) + 1; }

PROBED long outer(long x) { return middle(x) + 1; }

int main(int argc, char **argv) {
    long loops = argc > 1 ? strtol(argv[1], NULL, 10) : 3;
    long pause_ms = argc > 2 ? strtol(argv[2], NULL, 10) : 200;
    struct timespec pause = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
    long total = 0;
    for (long i = 0; loops == 0 || i < loops; i++) {
        if (loops == 0 && i > 0) nanosleep(&pause, NULL);
        total += two_ints_and_return((int)i, (int)(i * 10));
        total += two_chars_and_return('a', (char)('a' + i % 26));
        total += do_nothing_and_return();
        total += outer(i);
    }
    printf("demo[%d]: %ld loops, total %ld\n", (int)getpid(), loops, total);
    return 0;
}
