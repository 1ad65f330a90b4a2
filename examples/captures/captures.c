/* A demo of every capture type: strings, byte buffers, pointers, bool, char, 64-bit values,
 * and arguments past the sixth, which the System V ABI passes on the stack.
 *
 * Usage: captures */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PROBED __attribute__((noinline, noipa))

/* Returns -2 (like -ENOENT) for paths starting with "/missing". */
PROBED int open_path(const char *path, int flags) {
    return strncmp(path, "/missing", 8) == 0 ? -2 : 3 + flags;
}

PROBED uint32_t checksum(const unsigned char *key, size_t len) {
    uint32_t sum = 0;
    for (size_t i = 0; i < len; i++) sum = sum * 31 + key[i];
    return sum;
}

/* Nine arguments: a0..a5 in registers, a6..a8 on the stack. */
PROBED long nine_args(long a0, long a1, long a2, long a3, long a4, long a5,
                      uint64_t a6, bool a7, char a8) {
    return a0 + a1 + a2 + a3 + a4 + a5 + (long)(a6 & 0xff) + a7 + a8;
}

PROBED void *pass_pointer(void *p) { return p; }

/* Called with NULL: a string argument that cannot be read. */
PROBED int name_length(const char *name) { return name ? (int)strlen(name) : -1; }

int main(void) {
    static const unsigned char key[] = {0xde, 0xad, 0xbe, 0xef};
    long total = 0;
    total += open_path("/etc/hosts", 1);
    total += open_path("/missing/file", 0);
    total += open_path("a-rather-long-path-name-that-will-be-cut", 2);
    total += name_length(NULL);
    total += checksum(key, sizeof key);
    total += nine_args(1, 2, 3, 4, 5, 6, 0xfedcba9876543210ULL, true, 'z');
    total += (long)(uintptr_t)pass_pointer((void *)0x1234);
    printf("captures: total %ld\n", total);
    return 0;
}
