// USDT probes an interpreter has, one of each kind: a function entry/return pair, a probe per
// executed line and per object created (which `init --usdt` writes commented out), and a
// one-off `start` (tests/init.rs). `run` makes 3 calls of 4 lines and 2 objects each.
#include <stdio.h>
#include <sys/sdt.h>

__attribute__((noinline)) static long run(long id) {
    DTRACE_PROBE1(lang, function__entry, id);
    long total = 0;
    for (long line = 1; line <= 4; line++) {
        DTRACE_PROBE2(lang, line, id, line);
        total += line;
    }
    for (long object = 0; object < 2; object++) DTRACE_PROBE1(lang, object__create, object);
    DTRACE_PROBE1(lang, function__return, id);
    return total;
}

int main(void) {
    long total = 0;
    DTRACE_PROBE(lang, start);
    for (long id = 1; id <= 3; id++) total += run(id);
    printf("busy %ld\n", total);
    return 0;
}
