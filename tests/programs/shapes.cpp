// C++ test program: namespaced and member functions (demangled span names), a reference
// parameter, and an exception that unwinds through probed calls.
#include <cstdio>
#include <stdexcept>

namespace shapes {
struct Square {
    long side;
    __attribute__((noinline)) long area() const { return side * side; }
    // No IPA clone (GCC may pass `side` instead of `this` to one): `this` stays the first slot.
    __attribute__((noinline, noipa)) long scaled(long k) const { return side * k; }
};
__attribute__((noinline)) long total_area(long side) { return Square{side}.area() + 1; }
__attribute__((noinline)) long fail_inner(long x) {
    if (x > 0) throw std::runtime_error("boom");
    return x;
}
__attribute__((noinline)) long fail_outer(long x) { return fail_inner(x) + 1; }
// A reference parameter: a pointer in the first slot, as DWARF's reference type says.
__attribute__((noinline, noipa)) long perimeter(const Square &square) { return 4 * square.side; }
}  // namespace shapes

int main() {
    long total = shapes::total_area(3);
    try {
        total += shapes::fail_outer(1);
    } catch (const std::exception &) {
        total += 100;
    }
    total += shapes::total_area(4);
    total += shapes::Square{5}.scaled(7);
    total += shapes::perimeter(shapes::Square{6});
    std::printf("shapes %ld\n", total);
    return 0;
}
