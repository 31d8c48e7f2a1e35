//! A per-dispatch profile of one recording: each dispatch's kernel, layer, bytes and
//! device time, from timestamp queries where the adapter has them
//! ([`ProfileMethod::Timestamps`]: each dispatch in its own compute pass with begin and
//! end timestamps), else by submitting and waiting after every dispatch
//! ([`ProfileMethod::Synchronised`], host wall time: an upper bound that includes the
//! submission). See [`Recorder::enable_profiling`](crate::Recorder::enable_profiling).

/// How the times were taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileMethod {
    /// Timestamp queries around each dispatch (device time).
    Timestamps,
    /// A submission and a wait after each dispatch (host time, includes the overhead of
    /// a submission: the fallback for adapters without timestamp queries).
    Synchronised,
}

/// One profiled dispatch.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatchProfile {
    /// The shader file.
    pub kernel: &'static str,
    /// The layer that recorded it (graph node names joined with `.`).
    pub layer: String,
    /// Bytes bound read-only.
    pub read: u64,
    /// Bytes bound for writing.
    pub written: u64,
    /// Time in milliseconds.
    pub ms: f64,
}

impl DispatchProfile {
    /// Bytes moved per second, in GB/s.
    pub fn gb_per_s(&self) -> f64 {
        (self.read + self.written) as f64 / (self.ms * 1e6).max(f64::MIN_POSITIVE)
    }
}

/// The profile of one recording ([`Recorder::profile`](crate::Recorder::profile)).
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// How the times were taken.
    pub method: ProfileMethod,
    /// Every dispatch, in recording order.
    pub dispatches: Vec<DispatchProfile>,
    /// Host time from the submission to the end of the work, in milliseconds (with
    /// [`ProfileMethod::Synchronised`]: of all the submissions together).
    pub wall_ms: f64,
}

impl Profile {
    /// The dispatches' times summed, in milliseconds.
    pub fn total_ms(&self) -> f64 {
        self.dispatches.iter().map(|d| d.ms).sum()
    }

    /// The `n` most expensive dispatches, most expensive first.
    pub fn top(&self, n: usize) -> Vec<&DispatchProfile> {
        let mut sorted: Vec<&DispatchProfile> = self.dispatches.iter().collect();
        sorted.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        sorted.truncate(n);
        sorted
    }
}

impl std::fmt::Display for Profile {
    /// A table of every dispatch and the totals.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<40} {:<28} {:>10} {:>9}",
            "layer", "kernel", "ms", "GB/s"
        )?;
        for d in &self.dispatches {
            writeln!(
                f,
                "{:<40} {:<28} {:>10.3} {:>9.2}",
                d.layer,
                d.kernel,
                d.ms,
                d.gb_per_s()
            )?;
        }
        write!(
            f,
            "{} dispatches: {:.3} ms ({:?}); wall {:.3} ms",
            self.dispatches.len(),
            self.total_ms(),
            self.method,
            self.wall_ms
        )
    }
}
