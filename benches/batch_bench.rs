//! What batching buys: `batch::encode_batch` / `decode_batch` of 8 clips against 8 lone calls,
//! same process, same clips, best of `--runs`.
//!
//! ```text
//! cargo bench --bench batch_bench                       # lyra-v2, tinycodec-24khz; 8 x 2 s
//! cargo bench --bench batch_bench -- --models lyra-v2 --seconds 1 --items 8 --runs 5
//! ```
//!
//! Only batch-invariant models (`Codec::batch_invariant`) share calls; the others run their items
//! one by one inside `encode_batch` (ratio 1 by construction), so they are not measured here.
//! Clips are all the same length (the case batching helps); mixed lengths group by length.
//! Threads: `RAYON_NUM_THREADS` (set it, e.g. 2, before running).

use std::time::Instant;

use codec::audio::AudioClip;
use codec::batch::{decode_batch, encode_batch};
use codec::pipeline::{decode_tokens, encode_audio_with, DecodeOptions};
use codec::{load_model, Device, EncodeOptions, ModelSpec};

/// The command line (`cargo bench --bench batch_bench -- --models lyra-v2 --runs 5`).
#[derive(clap::Parser)]
#[command(about = "Clips encoded and decoded one call each versus one batch")]
struct Cli {
    /// Comma-separated model cards.
    #[arg(long, default_value = "lyra-v2,tinycodec-24khz")]
    models: String,
    /// Seconds per clip.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Clips per batch.
    #[arg(long, default_value_t = 8)]
    items: usize,
    /// Timed runs (best kept).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
    /// Test-name filters cargo passes on; ignored.
    #[arg(hide = true)]
    filters: Vec<String>,
}

fn best(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> codec::Result<()> {
    let Cli {
        models,
        seconds,
        items,
        runs,
        ..
    } = clap::Parser::parse();
    let (items, runs) = (items.max(1), runs.max(1));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "batch_bench: {items} clips x {seconds} s, best of {runs}, RAYON_NUM_THREADS={}, load average {}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "(all cores)".into()),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!("| model | task | lone calls (x real time) | one batch (x real time) | gain |");
    println!("|---|---|---:|---:|---:|");
    for name in models.split(',') {
        let model = load_model(&ModelSpec::parse(name)?, &Device::Cpu)?;
        let rate = model.info().sample_rate;
        let n = (seconds * f64::from(rate)) as usize;
        let clips: Vec<AudioClip> = (0..items)
            .map(|k| {
                let samples = (0..n)
                    .map(|i| {
                        let t = i as f32 / rate as f32;
                        0.3 * (t * (180.0 + 40.0 * k as f32) * std::f32::consts::TAU).sin()
                            * (t * 3.0).sin().abs()
                    })
                    .collect();
                AudioClip::mono(rate, samples)
            })
            .collect();
        let options = EncodeOptions::default();
        let audio_s = seconds * items as f64;
        let lone = best(runs, || {
            for c in &clips {
                encode_audio_with(model.as_ref(), c, &options).unwrap();
            }
        });
        let batched = best(runs, || {
            encode_batch(model.as_ref(), &clips, &options).unwrap();
        });
        println!(
            "| {name} | encode | {:.0} | {:.0} | {:.2}x |",
            audio_s / lone,
            audio_s / batched,
            lone / batched
        );
        let tokens: Vec<_> = encode_batch(model.as_ref(), &clips, &options)?
            .into_iter()
            .map(|e| e.tokens)
            .collect();
        let d = DecodeOptions::default();
        let lone = best(runs, || {
            for t in &tokens {
                decode_tokens(model.as_ref(), t, &d).unwrap();
            }
        });
        let batched = best(runs, || {
            decode_batch(model.as_ref(), &tokens, &d).unwrap();
        });
        println!(
            "| {name} | decode | {:.0} | {:.0} | {:.2}x |",
            audio_s / lone,
            audio_s / batched,
            lone / batched
        );
    }
    Ok(())
}
