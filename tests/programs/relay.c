/* A shared library for the unwinding tests: librelay.so, which calls back into its caller. */

/* Calls `next` with `n + 1`; not a tail call, so that its frame stays on the stack. */
__attribute__((noinline)) long relay(long (*next)(long), long n) {
    long result = next(n + 1); /* RELAY CALL */
    return result * 3 + n;
}
