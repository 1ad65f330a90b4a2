/* A shared library for tests: libgreet.so. */
#include <string.h>

__attribute__((noinline)) int greet_len(const char *name) { return (int)strlen(name); }
