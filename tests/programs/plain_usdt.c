// A USDT request start/done pair without a semaphore (sys/sdt.h without
// _SDT_HAS_SEMAPHORES): it needs no uprobe_multi link, so spanprobe traces it on every kernel,
// as perf-event uprobes before Linux 6.6. handle(i) for i from 1 to 3, then "plain 60".
#include <stdio.h>
#include <sys/sdt.h>

__attribute__((noinline)) static long handle(long id) {
    DTRACE_PROBE1(plain, request__start, id);
    long result = id * 10;
    DTRACE_PROBE1(plain, request__done, result);
    return result;
}

int main(void) {
    long total = 0;
    for (long i = 1; i <= 3; i++) total += handle(i);
    printf("plain %ld\n", total);
    return 0;
}
