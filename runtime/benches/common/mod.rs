//! What the benchmarks share: reading options, quantiles of a sorted sample, and the resident
//! set.

#![allow(dead_code)] // each bench uses part of it

/// The value after `name` on the command line (`--rounds 41`), or `default`.
pub(crate) fn option(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == name)
        .and_then(|at| args.get(at + 1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The `q` quantile of `sorted`, interpolated between neighbours.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = (sorted.len() - 1) as f64 * q;
    let (low, high) = (at.floor() as usize, at.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (at - low as f64)
}

/// Whether this is a bench run (`cargo bench` passes `--bench`); `cargo test --benches` runs
/// each bench once, short, as a check.
pub(crate) fn benchmarking() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// The process's resident set, in bytes (Linux; 0 elsewhere).
pub(crate) fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
