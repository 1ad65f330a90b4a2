// Rust test program: a function whose symbol is mangled (with a hash that changes every build).
#[inline(never)]
pub fn compute(x: u64) -> u64 {
    std::hint::black_box(x) * 3
}

fn main() {
    let total: u64 = (1..=3).map(compute).sum();
    println!("rusty {total}");
}
