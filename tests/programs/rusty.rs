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

/// A struct behind a reference, whose field layout rustc chooses: DWARF says where each is.
pub struct Reading {
    pub sensor: u32,
    pub celsius: i64,
    pub valid: bool,
    /// A pointer and a length side by side, with more text after the bytes it counts.
    pub place: &'static str,
    pub raw: &'static [u8],
}

/// The reference goes through `black_box`, or the optimizer may pass `celsius` alone in its
/// place (argument promotion), as it may for any function that is not exported.
#[inline(never)]
pub fn record(reading: &Reading) -> i64 {
    std::hint::black_box(reading).celsius
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
    let reading = Reading {
        sensor: 3,
        celsius: -21,
        valid: true,
        place: &text[..11],
        raw: &[7, 8, 9],
    };
    println!("recorded {}", record(std::hint::black_box(&reading)));
}
