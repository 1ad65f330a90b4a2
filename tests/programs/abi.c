/* Functions whose parameters the System V AMD64 convention places in unusual slots: a double
 * before integers (XMM, no integer slot), a 16-byte struct of two integers (two slots), a large
 * struct by value (copied onto the stack, no slot), a large struct returned (a hidden pointer
 * in RDI), a mixed struct (one integer and one XMM register). Each prints what it received, for
 * a test to compare with the spans `spanprobe init`'s config makes.
 * Built with frame pointers and without sibling-call optimisation, like the demo. */
#include <stdio.h>
#include <string.h>

#define PROBED __attribute__((noinline, noipa))

struct pair { long a; const char *b; };
struct big { long x[4]; };
struct mixed { long n; double d; };

PROBED long after_double(double d, long n, const char *s) {
    printf("after_double n=%ld s=%s\n", n, s);
    return n + (long)d;
}

PROBED long after_pair(struct pair p, long n) {
    printf("after_pair p.a=%ld p.b=%s n=%ld\n", p.a, p.b, n);
    return p.a + n;
}

PROBED struct big make_big(long n) {
    struct big b = {{n, n + 1, n + 2, n + 3}};
    printf("make_big n=%ld\n", n);
    return b;
}

PROBED long after_big(struct big b, long n) {
    printf("after_big n=%ld\n", n);
    return b.x[0] + n;
}

PROBED long after_mixed(struct mixed m, long n) {
    printf("after_mixed n=%ld\n", n);
    return m.n + n;
}

int main(void) {
    struct pair p = {41, "pair"};
    struct mixed m = {5, 0.5};
    long total = after_double(1.5, 7, "seven") + after_pair(p, 8);
    struct big b = make_big(9);
    total += after_big(b, 10) + after_mixed(m, 11);
    printf("total %ld\n", total);
    return 0;
}
