/* Functions whose first instruction the kernel would single-step, built as distributions
 * build them (-O2, no frame pointer): sum_list starts with `test %rdi,%rdi` and a branch,
 * which its probes move past; scale tail-calls sum_list, so the two share a return slot. */
#include <stdio.h>

__attribute__((noinline)) long sum_list(const long *xs, long n) {
    if (!xs)
        return -1;
    long sum = 0;
    for (long i = 0; i < n; i++)
        sum += xs[i];
    return sum;
}

__attribute__((noinline)) long scale(const long *xs, long n) {
    if (!xs)
        return -2;
    return sum_list(xs, n);
}

int main(void) {
    long xs[] = {1, 2, 3, 4};
    long total = sum_list(xs, 4) + sum_list(0, 9) + scale(xs, 2);
    printf("prologue %ld\n", total);
    return 0;
}
