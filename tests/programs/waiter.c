// A program for attaching to a process already running (a sidecar): it calls outer(1), says
// `waiter[PID] ready 6`, waits for SIGUSR1, then calls outer(3) and outer(4) and says
// `waiter done 22`. outer -> middle -> inner is the same chain as calls.c's. With `hold`, it
// then stays until its standard input closes, so that /proc still shows it while its spans
// are read.
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PROBED __attribute__((noinline, noipa))
PROBED long inner(long x) { return x * 2; }
PROBED long middle(long x) { return inner(x + 1) + 1; }
PROBED long outer(long x) { return middle(x) + 1; }

int main(int argc, char **argv) {
    sigset_t usr1;
    int signal;
    // Blocked before it says it is ready: a SIGUSR1 sent at once waits for sigwait.
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    long before = outer(1);
    printf("waiter[%d] ready %ld\n", (int)getpid(), before);
    fflush(stdout);
    sigwait(&usr1, &signal);
    printf("waiter done %ld\n", outer(3) + outer(4));
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "hold") == 0) {
        char byte;
        while (read(0, &byte, 1) > 0) {
        }
    }
    return 0;
}
