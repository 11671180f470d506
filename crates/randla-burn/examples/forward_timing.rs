//! Times the forward pass (and reports the process's peak RSS) in one mode.
//!
//! Run with: `cargo run --release -p randla-burn --example forward_timing -- CLOUD MODE [BUDGET_MIB]`
//! where CLOUD is `fixture` (the 4,096-point parity crop, Open3D-ML weights) or `random` (a
//! 45,056-point random cloud, KITTI configuration, random weights), and MODE is `standard` or
//! `efficient` (BUDGET_MIB: the memory-efficient mode's budget, default
//! [`randla_burn::DEFAULT_LFA_BUDGET`]). One mode per process, so that the peak RSS belongs to it.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use randla_burn::{BatchTensors, ForwardOptions, RandLaNet};
use randla_geom::{MemoryBudget, Pyramid};
use randla_model::{Batch, RandLaNetConfig, StateDict};

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let cloud = args.get(1).map(String::as_str).unwrap_or("fixture");
    let mode = args.get(2).map(String::as_str).unwrap_or("standard");
    let budget_mib: Option<u64> = args.get(3).and_then(|s| s.parse().ok());
    let device = Device::flex();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/parity");
    let (cfg, sd, batch) = match cloud {
        "fixture" => {
            let cfg = RandLaNetConfig {
                num_points: 4096,
                num_classes: 7,
                in_channels: 6,
                ..RandLaNetConfig::default()
            };
            let sd = StateDict::load(fixtures.join("o3d_kitti_small.pth"))?;
            (
                cfg,
                sd,
                Batch::load_safetensors(fixtures.join("o3d_kitti_small.io.safetensors"))?,
            )
        }
        _ => {
            let cfg = RandLaNetConfig::default(); // SemanticKITTI: 45,056 points, 19 classes, xyz
            let n = cfg.num_points;
            let mut s = 0x2545_f491_4f6c_dd1du64;
            let mut rnd = || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32
            };
            // A 50 m × 50 m ground with some height, like a LiDAR scan crop.
            let pts: Vec<[f32; 3]> = (0..n)
                .map(|_| [rnd() * 50.0, rnd() * 50.0, rnd() * 3.0])
                .collect();
            let t = Instant::now();
            let pyramid = Pyramid::build(&pts, &cfg.pyramid_config())?;
            eprintln!("pyramid: {:.2} s", t.elapsed().as_secs_f64());
            let feats: Vec<f32> = pts.iter().flatten().copied().collect();
            let batch = Batch::from_crops(&[(&feats, &pyramid)], 3)?;
            (cfg.clone(), StateDict::random(&cfg, 0), batch)
        }
    };
    let net = RandLaNet::from_state_dict(&cfg, &sd, &device)?;
    let input = BatchTensors::from_batch(&batch, &cfg, &device)?;
    let opts = match mode {
        "standard" => ForwardOptions::standard(),
        _ => ForwardOptions {
            memory_efficient: true,
            chunk_points: None,
            budget: budget_mib.map(|m| MemoryBudget::bytes(m << 20)),
        },
    };
    eprintln!("chunk plan: {:?}", net.chunk_plan(&input, &opts)?);
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let logits = net.forward_with(&input, &opts)?;
        let v = logits
            .try_into_vec_as::<f32>()
            .map_err(|e| format!("{e:?}"))?;
        times.push(t.elapsed().as_secs_f64());
        assert!(v.iter().all(|x| x.is_finite()));
    }
    println!(
        "{cloud} {mode} (budget {}): forward {:.3} s (best of 3; runs {:?}), peak RSS {:.0} MiB",
        budget_mib.map_or("default".to_string(), |m| format!("{m} MiB")),
        times.iter().copied().fold(f64::INFINITY, f64::min),
        times
            .iter()
            .map(|t| (t * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>(),
        peak_rss_mib()
    );
    Ok(())
}
