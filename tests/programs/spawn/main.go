// Goroutines started inside traced calls, as Go servers fan work out: each handle(n) starts
// child(n) on a goroutine, which starts grandchild(n), which starts leaf(n) (three deep); and
// relay(n), not traced, which starts leaf(n + 100) (its creator has no span open: its own
// creator's is the one). A goroutine started before any traced call, idle(0), has no parent.
package main

import (
	"fmt"
	"sync"
)

var wg sync.WaitGroup

//go:noinline
func leaf(n int) int {
	return n * 2
}

//go:noinline
func grandchild(n int) int {
	wg.Add(1)
	go func() {
		defer wg.Done()
		leaf(n)
	}()
	return n
}

//go:noinline
func child(n int) int {
	wg.Add(1)
	go func() {
		defer wg.Done()
		grandchild(n)
	}()
	return n
}

//go:noinline
func relay(n int) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		leaf(n + 100)
	}()
}

//go:noinline
func handle(n int) int {
	wg.Add(2)
	go func() {
		defer wg.Done()
		child(n)
	}()
	go func() {
		defer wg.Done()
		relay(n)
	}()
	return n
}

//go:noinline
func idle(n int) int {
	return n
}

func main() {
	wg.Add(1)
	go func() {
		defer wg.Done()
		idle(0)
	}()
	wg.Wait()
	for n := 1; n <= 3; n++ {
		handle(n)
	}
	wg.Wait()
	fmt.Println("spawn done")
}
