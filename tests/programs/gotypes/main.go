// Go values of every shape a capture meets, built by the tests with Debian's Go toolchain:
// generic functions (passed their dictionary first), a struct by value, an interface, a
// pointer, strings, a []byte and an []int, and the same behind pointers (reached by `path`). Its strings are laid out one after the other, with
// no NUL between them: a string read without its length shows its neighbours.
package main

import (
	"fmt"
	"os"
)

type item struct {
	Name  string
	Count int
	Tags  []byte
}

type shop struct {
	id   int
	name string
}

type Stack[T any] struct{ xs []T }

type customer struct {
	name string
	tier int
}

type order struct {
	id    int
	buyer *customer
	note  string
	lines []item
	raw   []byte
}

type parcel struct {
	to     *customer
	weight int
}

//go:noinline
func Pair[K comparable, V any](k K, v V, n int) int {
	m := map[K]V{k: v}
	return len(m) + n
}

//go:noinline
func (s *Stack[T]) Push(v T, n int) int {
	s.xs = append(s.xs, v)
	return len(s.xs) + n
}

//go:noinline
func store(it item, tag string) int {
	return len(it.Name) + it.Count + len(it.Tags) + len(tag)
}

//go:noinline
func describe(v any, n int) int {
	if s, ok := v.(*shop); ok {
		return s.id + n
	}
	return n
}

//go:noinline
func (s *shop) open(code string, raw []byte, ids []int) int {
	return s.id + len(code) + len(raw) + len(ids)
}

//go:noinline
func (o *order) ship(express bool) int {
	if express {
		return o.id + len(o.note) + len(o.lines) + len(o.raw) + o.buyer.tier
	}
	return 0
}

//go:noinline
func deliver(p parcel) *customer {
	p.to.tier += p.weight
	return p.to
}

func main() {
	a := Pair("key", 42, 3)
	b := Pair(7, "seven", 4)
	stack := &Stack[string]{}
	c := stack.Push("top", 9)
	d := store(item{Name: "widget", Count: 3, Tags: []byte("ab")}, "t")
	s := &shop{id: 11, name: "corner"}
	e := describe(s, 5)
	f := s.open("dawn", []byte{1, 2, 3}, []int{4, 5})
	ada := &customer{name: "ada", tier: 2}
	o := &order{
		id:    7,
		buyer: ada,
		note:  "fragile",
		lines: []item{{Name: "bolt"}, {Name: "nut", Count: 4}},
		raw:   []byte{0xca, 0xfe},
	}
	g := o.ship(true)
	h := deliver(parcel{to: ada, weight: 3}).tier
	fmt.Println(a, b, c, d, e, f, g, h)
	os.Exit(0)
}
