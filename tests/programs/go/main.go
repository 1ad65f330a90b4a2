// A real Go program, built by the tests with Debian's Go toolchain (register ABI): strings,
// ints, a bool, a slice, a float and a method's receiver as arguments; workers on goroutines
// of their own.
package main

import (
	"errors"
	"fmt"
	"os"
)

type order struct {
	id    int
	total float64
}

//go:noinline
func handle(name string, n int, flag bool) int {
	return len(name) + n
}

//go:noinline
func lookup(items []int, key int) (int, error) {
	for i, v := range items {
		if v == key {
			return i, nil
		}
	}
	return -1, errors.New("not found")
}

//go:noinline
func (o *order) apply(rate float64, code string) int {
	return o.id + len(code)
}

//go:noinline
func worker(n int, done chan<- int) {
	done <- n * 2
}

func main() {
	total := handle("alpha", 2, true)
	i, err := lookup([]int{4, 5, 6}, 5)
	_, err2 := lookup([]int{4}, 9)
	o := &order{id: 7}
	total += o.apply(1.5, "xy")
	done := make(chan int, 3)
	// Each worker has returned (its RET run, which ends its span) before main exits: a
	// worker's send alone would let os.Exit come between the send and the return.
	returned := make(chan bool, 3)
	for n := 1; n <= 3; n++ {
		go func(n int) {
			worker(n, done)
			returned <- true
		}(n)
	}
	sum := 0
	for k := 0; k < 3; k++ {
		sum += <-done
		<-returned
	}
	fmt.Println(total, i, err, err2, sum)
	os.Exit(0)
}
