// Rust test program: a function whose symbol is mangled (with a hash that changes every build),
// and one taking a `&str` and a `&[u8]`, each a pointer and a length in two registers.
#[inline(never)]
pub fn compute(x: u64) -> u64 {
    std::hint::black_box(x) * 3
}

#[inline(never)]
pub fn label(name: &str, key: &[u8]) -> usize {
    println!("label {name} {key:02x?}");
    std::hint::black_box(name.len() + key.len())
}

fn main() {
    let total: u64 = (1..=3).map(compute).sum();
    println!("rusty {total}");
    // Not NUL-terminated: "temperature" is followed by more text in the same literal.
    let text = "temperature-and-more";
    // The results are used: otherwise the optimizer may drop `label`'s return value.
    let short = label(&text[..11], &[1, 2, 0xab]);
    let long = label(&"x".repeat(100), &[]);
    println!("lengths {short} {long}");
}
