//! Scratch (not committed): PIDNet-S dispatches, traffic, pipelines and per-kernel time.
use segblocks::networks::{PidNet, PidNetConfig};
use segblocks::{DeviceClass, Gpu, GpuOptions, StateDict};
use std::collections::BTreeMap;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let which = std::env::args().nth(1).unwrap_or("s".into());
    for class in [DeviceClass::Cpu, DeviceClass::Gpu] {
        let t0 = Instant::now();
        let gpu = Gpu::with_options(GpuOptions {
            device_class: Some(class),
            ..GpuOptions::default()
        })?;
        let sd = StateDict::synthetic();
        let cfg = PidNetConfig::from_name(&format!("pidnet_{which}"), 19)?;
        let net = PidNet::load(&gpu, cfg, &sd, "")?;
        let s = [1, 3, 512, 1024];
        let x = gpu.upload(ndarray::Array4::<f32>::from_elem(s, 0.5).view())?;
        let mut rec = gpu.recorder();
        let y = net.forward(&mut rec, &x)?;
        let t = rec.traffic();
        let n = rec.dispatch_count();
        rec.download(&y)?;
        eprintln!("{class:?}: first forward {:?} (with load), passes {n}, compute dispatches {}, read {:.0} MB written {:.0} MB, pipelines {}, peak {:.0} MB",
            t0.elapsed(), t.dispatch_count(), t.read() as f64 / 1e6, t.written() as f64 / 1e6, gpu.pipelines_created(), gpu.memory_stats().peak_live_bytes as f64 / 1e6);
        if class == DeviceClass::Gpu {
            continue;
        }
        let mut last = None;
        for _ in 0..3 {
            let mut rec = gpu.recorder();
            rec.enable_profiling()?;
            net.forward(&mut rec, &x)?;
            last = Some(rec.profile()?);
        }
        let prof = last.unwrap();
        println!(
            "{:?}: {} dispatches, {:.1} ms",
            s,
            prof.dispatches.len(),
            prof.total_ms()
        );
        let mut by_kernel: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
        for d in &prof.dispatches {
            let e = by_kernel.entry(d.kernel).or_default();
            e.0 += d.ms;
            e.1 += 1;
        }
        let mut v: Vec<_> = by_kernel.into_iter().collect();
        v.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
        for (k, (ms, n)) in v {
            println!("  {ms:8.2} ms {n:4}x {k}");
        }
        for d in prof.top(15) {
            println!(
                "    {:>8.3} ms {:6.1} GB/s {:<28} {}",
                d.ms,
                d.gb_per_s(),
                d.kernel,
                d.layer
            );
        }
    }
    Ok(())
}
