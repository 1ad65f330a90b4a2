// Pointers followed by the size of what they point to, as C APIs pass buffers, and pointers
// that are not: what `spanprobe init` pairs into one counted capture (tests/init.rs). Each
// function is called once; the text is longer than the count, so a count that is not used
// shows.
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

__attribute__((noinline)) size_t send_text(int fd, const char *s, size_t n) {
    __asm__ volatile("" ::: "memory");
    return fd + n;
}

__attribute__((noinline)) size_t fill_buffer(char *buf, size_t len) {
    __asm__ volatile("" ::: "memory");
    return buf[0] + len;
}

__attribute__((noinline)) size_t put_bytes(const void *data, unsigned int nbytes) {
    __asm__ volatile("" ::: "memory");
    return ((const unsigned char *)data)[0] + nbytes;
}

// Not buffers of bytes: ints, a signed count, a count not named as one.
__attribute__((noinline)) size_t sum_ints(const int *v, size_t count) {
    __asm__ volatile("" ::: "memory");
    return v[0] + count;
}

__attribute__((noinline)) size_t signed_len(const char *s, int len) {
    __asm__ volatile("" ::: "memory");
    return s[0] + (size_t)len;
}

__attribute__((noinline)) size_t with_flags(const char *s, unsigned long flags) {
    __asm__ volatile("" ::: "memory");
    return s[0] + flags;
}

int main(void) {
    char buf[16] = "buffer contents";
    int ints[2] = {1, 2};
    size_t total = send_text(1, "hello, world", 5) + fill_buffer(buf, 6) +
                   put_bytes("wxyz", 3) + sum_ints(ints, 2) + signed_len("abc", 2) +
                   with_flags("xyz", 1);
    printf("buffers %zu\n", total);
    return 0;
}
