//! The raw baseline of the embedded store: how long the disk takes to make a write durable.
//! Every batch the store commits waits for one `fdatasync`, so this bounds its throughput
//! the way `etcdctl check perf` does for etcd.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use crate::load::Latencies;

const SYNCS: u64 = 200;
const PAGE: [u8; 4096] = [7; 4096];

/// Latencies of `SYNCS` rounds of a 4 KiB write followed by `fdatasync`, in a file in `dir`.
pub fn fdatasync_latencies(dir: &Path) -> anyhow::Result<Latencies> {
    let scratch = tempfile::Builder::new()
        .prefix("rkube-bench-fsync-")
        .tempdir_in(dir)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(scratch.path().join("probe"))?;
    let mut samples = Vec::new();
    for round in 0..SYNCS {
        // Cycle over 64 pages so the file does not grow after the first rounds.
        file.write_all_at(&PAGE, (round % 64) * PAGE.len() as u64)?;
        let started = Instant::now();
        file.sync_data()?;
        samples.push(started.elapsed());
    }
    Ok(Latencies::new(samples))
}
