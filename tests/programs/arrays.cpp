// `touch(grid &, int (&)[10], const point &)`: references to a struct and to an array, as C++
// passes them (arrays.h), called once; prints the sum it returns.
#include <cstdio>

#include "arrays.h"

__attribute__((noinline)) int touch(grid &g, int (&array)[10], const point &pt) {
    __asm__ volatile("" ::: "memory");
    return g.y[1][0] + array[1] + pt.y;
}

int main() {
    static grid g;
    fill(&g, 0);
    int array[10] = {0, 11, 22, 33, 44, 55, 66, 77, 88, 99};
    point pt = {5, 6};
    std::printf("arrays %d\n", touch(g, array, pt));
    return 0;
}
