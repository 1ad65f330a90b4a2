// A real Go program whose calls return: goroutines that yield (runtime.Gosched) inside nested
// calls, `(int, error)` and `error` results, recursion, stacks that grow and move while calls
// are in progress, panics recovered by a probed and by an unprobed caller, runtime.Goexit,
// and a goroutine still inside a call when the program exits.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
)

type parseError struct{ text string }

func (e *parseError) Error() string { return "bad " + e.text }

//go:noinline
func parse(text string) (int, error) {
	runtime.Gosched()
	n, err := strconv.Atoi(text)
	if err != nil {
		return 0, &parseError{text}
	}
	return n, nil
}

//go:noinline
func step(text string) int {
	runtime.Gosched()
	n, err := parse(text)
	if err != nil {
		return -1
	}
	return n * 2
}

//go:noinline
func fib(n int) int {
	if n < 2 {
		return n
	}
	return fib(n-1) + fib(n-2)
}

// Each call takes 256 bytes more of the goroutine's stack, which Go grows by copying it
// elsewhere, calls in progress included.
//
//go:noinline
func deep(n int) int {
	var pad [256]byte
	pad[n%256] = byte(n)
	if n == 0 {
		return int(pad[0])
	}
	return deep(n-1) + int(pad[n%256]&1)
}

//go:noinline
func explode(n int) int {
	if n > 0 {
		panic("boom")
	}
	return n
}

//go:noinline
func rescue(n int) (result int) {
	defer func() {
		if recover() != nil {
			result = -n
		}
	}()
	return explode(n)
}

// Not probed: the panic it recovers skips explode's return, and its next call to explode
// starts at the same place on the stack.
//
//go:noinline
func guard(n int) (result int) {
	defer func() {
		if recover() != nil {
			result = -1
		}
	}()
	return explode(n)
}

// Not probed either: its goroutine ends right after it recovers explode's panic, as a server's
// connection goroutine may.
//
//go:noinline
func shield(n int) {
	defer func() {
		recover()
	}()
	explode(n)
}

//go:noinline
func quit(n int) int {
	runtime.Goexit()
	return n
}

// Still waiting when the program exits.
//
//go:noinline
func hang(started chan<- bool, never <-chan int) int {
	started <- true
	return <-never
}

// Never returns: compiled without a RET.
//
//go:noinline
func forever(c <-chan int) int {
	n := 0
	for {
		n += <-c
	}
}

var errEmpty = errors.New("empty")

//go:noinline
func check(s string) error {
	if s == "" {
		return errEmpty
	}
	return nil
}

func main() {
	go forever(make(chan int))
	var wg sync.WaitGroup
	results := make([]int, 4)
	for i, text := range []string{"1", "22", "x", "4"} {
		wg.Add(1)
		go func(i int, text string) {
			defer wg.Done()
			results[i] = step(text)
		}(i, text)
	}
	wg.Wait()
	fmt.Println(results, fib(10), deep(2000), rescue(3), check(""), check("a"), guard(1), guard(0))
	shielded := make(chan bool)
	go func() {
		defer close(shielded)
		shield(4)
	}()
	<-shielded
	done := make(chan bool)
	go func() {
		defer close(done)
		quit(5)
	}()
	<-done
	// quit's goroutine has run its deferred calls; wait until it has ended too (main and
	// forever remain).
	for runtime.NumGoroutine() > 2 {
		runtime.Gosched()
	}
	started := make(chan bool)
	go hang(started, make(chan int))
	<-started
	os.Exit(3)
}
