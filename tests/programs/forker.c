// A server that forks its workers once told to, as PostgreSQL's postmaster forks a backend per
// connection: it says `forker[PID] ready`, waits for SIGUSR1, then forks a child, which forks a
// grandchild; each calls work() with its generation (1 the parent, 2 the child, 3 the
// grandchild), and the parent says `forker done` once both are gone.
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline, noipa)) long work(long generation) { return generation * 10; }

int main(void) {
    sigset_t usr1;
    int signal;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    printf("forker[%d] ready\n", (int)getpid());
    fflush(stdout);
    sigwait(&usr1, &signal);
    long generation = 1;
    for (int level = 0; level < 2; level++) {
        pid_t child = fork();
        if (child != 0) {
            waitpid(child, NULL, 0);
            break;
        }
        generation++;
    }
    work(generation);
    if (generation == 1) printf("forker done\n");
    return 0;
}
