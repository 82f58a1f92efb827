//! What a conformance run is asked to do.

/// Options of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The identity string passed to `open`.
    pub identity: String,
    /// Threads of the concurrency checks.
    pub threads: usize,
    /// Signatures per thread.
    pub signs_per_thread: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            identity: String::new(),
            threads: 8,
            signs_per_thread: 25,
        }
    }
}
