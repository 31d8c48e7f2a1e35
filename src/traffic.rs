//! What a recording moves through device memory: per dispatch, per layer and in total.
//!
//! Small networks on GPUs are bound by the number of dispatches and by every
//! activation's round trip through memory, so these are measured properties of every
//! recording ([`Recorder::traffic`](crate::Recorder::traffic)). A dispatch counts the
//! bytes of every tensor it binds read-only as read and of every tensor it binds for
//! writing as written: what it moves at least once (a kernel that reads an input twice
//! may move more; caches may make that cheaper).

/// One recorded dispatch or buffer copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatchTraffic {
    /// The shader file, or `"copy"` for a buffer copy.
    pub kernel: &'static str,
    /// The layer that recorded it (graph node names joined with `.`; empty outside a
    /// block or network).
    pub layer: String,
    /// Bytes bound read-only.
    pub read: u64,
    /// Bytes bound for writing.
    pub written: u64,
}

/// The dispatches of a recording with the bytes they move.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// In recording order.
    pub dispatches: Vec<DispatchTraffic>,
}

/// One layer's share of a [`Traffic`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerTraffic {
    /// The layer's name.
    pub layer: String,
    /// Its dispatches and copies.
    pub dispatches: usize,
    /// Bytes read.
    pub read: u64,
    /// Bytes written.
    pub written: u64,
}

impl Traffic {
    /// Compute dispatches (copies excluded).
    pub fn dispatch_count(&self) -> usize {
        self.dispatches
            .iter()
            .filter(|d| d.kernel != "copy")
            .count()
    }

    /// Total bytes read.
    pub fn read(&self) -> u64 {
        self.dispatches.iter().map(|d| d.read).sum()
    }

    /// Total bytes written.
    pub fn written(&self) -> u64 {
        self.dispatches.iter().map(|d| d.written).sum()
    }

    /// Per layer, in the order the layers first appear.
    pub fn by_layer(&self) -> Vec<LayerTraffic> {
        let mut layers: Vec<LayerTraffic> = Vec::new();
        for d in &self.dispatches {
            let i = match layers.iter().position(|l| l.layer == d.layer) {
                Some(i) => i,
                None => {
                    layers.push(LayerTraffic {
                        layer: d.layer.clone(),
                        dispatches: 0,
                        read: 0,
                        written: 0,
                    });
                    layers.len() - 1
                }
            };
            let l = &mut layers[i];
            l.dispatches += 1;
            l.read += d.read;
            l.written += d.written;
        }
        layers
    }
}

impl std::fmt::Display for Traffic {
    /// A table per layer with the totals.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mb = |b: u64| b as f64 / 1e6;
        writeln!(
            f,
            "{:<40} {:>10} {:>12} {:>12}",
            "layer", "dispatches", "read MB", "written MB"
        )?;
        for l in self.by_layer() {
            let name = if l.layer.is_empty() { "-" } else { &l.layer };
            writeln!(
                f,
                "{:<40} {:>10} {:>12.3} {:>12.3}",
                name,
                l.dispatches,
                mb(l.read),
                mb(l.written)
            )?;
        }
        write!(
            f,
            "{:<40} {:>10} {:>12.3} {:>12.3}",
            "total",
            self.dispatch_count(),
            mb(self.read()),
            mb(self.written())
        )
    }
}
