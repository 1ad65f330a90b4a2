// Functions that fill buffers their caller hands them, as read(2), SSL_read and getline do:
// what they wrote is known only when they return.
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

static jmp_buf escape;

// Fills `buf` and returns how many bytes it wrote; -1 (and nothing written) for a bad `fd`.
__attribute__((noinline)) ssize_t fill(int fd, char *buf, size_t cap) {
    static const char text[] = "filled by the call";
    if (fd < 0 || cap < sizeof text - 1) return -1;
    memcpy(buf, text, sizeof text - 1);
    return sizeof text - 1;
}

// As SSL_read_ex: returns 1 on success with the count behind `written`, 0 on failure.
__attribute__((noinline)) int fill_ex(char *buf, size_t cap, size_t *written) {
    static const char text[] = "counted behind a pointer";
    if (cap < sizeof text - 1) return 0;
    memcpy(buf, text, sizeof text - 1);
    *written = sizeof text - 1;
    return 1;
}

// As getline: points `*line` at its own buffer and returns the line's length.
__attribute__((noinline)) ssize_t next_line(char **line, size_t *cap) {
    static char own[32];
    strcpy(own, "a line of its own");
    *line = own;
    *cap = sizeof own;
    return (ssize_t)strlen(own);
}

// Fills `buf` and leaves by a longjmp: it never returns.
__attribute__((noinline)) void fill_and_escape(char *buf) {
    memcpy(buf, "never seen", 10);
    longjmp(escape, 1);
}

int main(void) {
    char buf[64];
    size_t written = 0, cap = 0;
    char *line = NULL;
    memset(buf, 's', sizeof buf);
    fill(3, buf, sizeof buf);
    fill(-1, buf, sizeof buf);
    fill_ex(buf, sizeof buf, &written);
    fill_ex(buf, 1, &written);
    next_line(&line, &cap);
    if (setjmp(escape) == 0) fill_and_escape(buf);
    printf("%.*s %zu %s\n", 18, buf, written, line);
    return 0;
}
