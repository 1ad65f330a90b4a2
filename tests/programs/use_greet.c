/* Calls into libgreet.so. */
#include <stdio.h>
#include <time.h>

int greet_len(const char *name);

int main(void) {
    int total = greet_len("world") + greet_len("spanprobe");
    printf("use_greet %d\n", total);
    /* Stay a moment, so that stacks are read while the process still runs. */
    struct timespec pause = {0, 300 * 1000 * 1000};
    nanosleep(&pause, NULL);
    return 0;
}
