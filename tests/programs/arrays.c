// `probe_grid(struct grid *, union value *)` called once on a filled grid (arrays.h), so its
// arrays can be read by path; prints the sum it returns.
#include <stdio.h>
#include <stdlib.h>

#include "arrays.h"

__attribute__((noinline)) int probe_grid(struct grid *g, union value *v) {
    __asm__ volatile("" ::: "memory");
    return g->y[1][0] + (int)g->cube[1][2][3] + v->i;
}

int main(void) {
    struct grid *g = calloc(1, sizeof *g + 4 * sizeof(int));
    if (!g) return 1;
    fill(g, 4);
    union value v = {.i = 9};
    printf("arrays %d\n", probe_grid(g, &v));
    free(g);
    return 0;
}
