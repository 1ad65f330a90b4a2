// A Go program with C inside (cgo): its C functions are called by the System V convention
// on a thread's stack, and probed as any C function is.
package main

/*
#include <stdint.h>

__attribute__((noinline)) int64_t c_square(int64_t x) { return x * x; }

int64_t c_sum(int64_t n) {
	int64_t sum = 0;
	for (int64_t i = 1; i <= n; i++)
		sum += c_square(i);
	return sum;
}
*/
import "C"
import "fmt"

//go:noinline
func total(n int) int64 {
	return int64(C.c_sum(C.int64_t(n)))
}

func main() {
	fmt.Println(total(4), total(10))
}
