// Functions for entries that overlap, globs with exclusions, a function the kernel cannot
// probe (its first instruction has a LOCK prefix), and a transaction whose span ends at either
// of two USDT probes.
#include <stdio.h>
#include <sys/sdt.h>

__attribute__((noinline)) int handle_get(int key) { return key + 1; }
__attribute__((noinline)) int handle_set(int key) { return key + 2; }
__attribute__((noinline)) int handle_del(int key) { return key + 3; }

// As glibc's pthread_spin_lock starts.
__attribute__((naked, noinline)) void spin_lock(int *lock) {
    __asm__("lock decl (%rdi)\n\tret");
}

__attribute__((noinline)) void spin_unlock(int *lock) {
    __atomic_store_n(lock, 1, __ATOMIC_RELEASE);
}

__attribute__((noinline)) void transaction(long id, int commit) {
    DTRACE_PROBE1(app, tx__begin, id);
    if (commit) {
        DTRACE_PROBE1(app, tx__commit, id);
    } else {
        DTRACE_PROBE1(app, tx__abort, id);
    }
}

int main(void) {
    int lock = 1, sum = 0;
    for (int i = 0; i < 3; i++) sum += handle_get(i) + handle_set(i) + handle_del(i);
    spin_lock(&lock);
    spin_unlock(&lock);
    transaction(1, 1);
    transaction(2, 0);
    printf("%d %d\n", sum, lock);
    return 0;
}
