// USDT probes of our own (sys/sdt.h), for spans from start/until pairs: `request__start` ..
// `request__done` around each request, with `step__start` .. `step__done` nested inside;
// `request__done` is at two sites (an early return); `mark` has a constant argument and no
// pair, and fires once outside any request; `guarded` fires only while its semaphore is set, which spanprobe must do. Every probe
// has a semaphore (sdt.h gives all or none); only `guarded` is behind its own.
#define _SDT_HAS_SEMAPHORES 1
#include <stdio.h>
#include <sys/sdt.h>

#define SEMAPHORE(name) unsigned short app_##name##_semaphore __attribute__((section(".probes")))
SEMAPHORE(step__start);
SEMAPHORE(step__done);
SEMAPHORE(request__start);
SEMAPHORE(request__done);
SEMAPHORE(mark);
SEMAPHORE(guarded);

__attribute__((noinline)) static long step(long i) {
    DTRACE_PROBE1(app, step__start, i);
    long result = i * 10;
    DTRACE_PROBE1(app, step__done, result);
    return result;
}

__attribute__((noinline)) static long handle(long id, const char *name) {
    // In memory, so that its operand is an offset from a register.
    volatile int slot = (int)id + 100;
    DTRACE_PROBE3(app, request__start, id, name, slot);
    DTRACE_PROBE1(app, mark, 7);
    if (app_guarded_semaphore) DTRACE_PROBE1(app, guarded, id);
    if (id == 2) {
        DTRACE_PROBE1(app, request__done, id);
        return -1;
    }
    long total = step(id) + step(id + 1);
    DTRACE_PROBE1(app, request__done, id);
    return total;
}

int main(void) {
    const char *names[] = {"alpha", "beta", "gamma"};
    long total = 0;
    DTRACE_PROBE1(app, mark, 7);  // outside any request
    for (long i = 1; i <= 3; i++) total += handle(i, names[i - 1]);
    printf("usdt %ld guarded %d\n", total, app_guarded_semaphore != 0);
    return 0;
}
