//! What the multi-process benchmark examples share: numbers as a table shows them, and the
//! children's start signal.

#![allow(dead_code)]

/// The median of `v` (0 when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The `p` quantile of `sorted` (0 when empty).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

/// Microseconds as a human reads them: "48 µs", "3.2 ms", "0.81 s".
pub fn us(v: u64) -> String {
    match v {
        0..1_000 => format!("{v} µs"),
        1_000..1_000_000 => format!("{:.1} ms", v as f64 / 1e3),
        _ => format!("{:.2} s", v as f64 / 1e6),
    }
}

/// Says `ready` and waits for the parent's `go`.
pub fn go() {
    println!("ready");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("go");
}
