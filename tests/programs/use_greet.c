/* Calls into libgreet.so. */
#include <stdio.h>

int greet_len(const char *name);

int main(void) {
    int total = greet_len("world") + greet_len("spanprobe");
    printf("use_greet %d\n", total);
    return 0;
}
