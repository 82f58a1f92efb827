//! What the benchmarks measure with: operations per second over a round, and the median of rounds.

use std::time::{Duration, Instant};

/// How many times per second `f` ran, called with 0, 1, 2, ... for `round`.
pub fn rate(round: Duration, mut f: impl FnMut(u64)) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < round {
        f(n);
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The median of `v` (the upper one of an even count); `v` must not be empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
