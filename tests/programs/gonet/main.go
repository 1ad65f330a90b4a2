// A Go program as most are built: it imports net, so the toolchain links it with cgo's
// resolver, dynamically, exporting C functions (crosscall2, _cgo_*) from .dynsym. Its pointer
// methods share a name across types, and a generic function is instantiated twice: names
// with the characters of globs in them.
package main

import (
	"fmt"
	"net"
	"os"
)

type order struct{ id int }

type suborder struct{ id int }

//go:noinline
func (o *order) apply(n int) int { return o.id + n }

//go:noinline
func (s *suborder) apply(n int) int { return s.id * n }

//go:noinline
func Sum[T int | float64](xs []T) T {
	var total T
	for _, x := range xs {
		total += x
	}
	return total
}

//go:noinline
func handle(name string, n int) int {
	return len(name) + n
}

func main() {
	ip := net.ParseIP("127.0.0.1")
	o, s := &order{id: 7}, &suborder{id: 3}
	total := handle("alpha", 2) + o.apply(1) + s.apply(2)
	fmt.Println(ip, total, Sum([]int{1, 2, 3}), Sum([]float64{0.5, 0.25}))
	os.Exit(0)
}
