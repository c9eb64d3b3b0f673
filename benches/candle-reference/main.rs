//! The same encode/decode cases as `codec_bench`, run on candle-transformers' own
//! implementations of the same published models (EnCodec 24 kHz, SNAC, DAC 44.1 kHz decode),
//! for comparison. `benches/run_all.sh` runs it beside `codec_bench` and the reference Python
//! packages and prints one table.
//!
//! ```text
//! cargo run --release --manifest-path benches/candle-reference/Cargo.toml --                      # encodec,dac,snac; 10 s and 60 s
//! cargo run --release --manifest-path benches/candle-reference/Cargo.toml -- --models snac --seconds 10 --runs 1
//! ```
//!
//! | key | candle-transformers model | notes |
//! |---|---|---|
//! | `encodec` | `models::encodec::Model`, the 24 kHz config with `target_bandwidths` up to 6 kbit/s | its `encode` always uses every codebook the model has, so the 6 kbit/s case builds the model with 8 |
//! | `encodec-24kbps` | the same with all 32 codebooks | |
//! | `snac`, `snac-32khz` | `models::snac::Model` with the published configs | |
//! | `dac` | `models::dac::Model` (hard-wired 44.1 kHz architecture) | decode only: its quantizer has no encode (`from_codes` only) |
//! | `mimi` | `models::mimi::Model` with `Config::v0_1(Some(8))` | batch `encode`/`decode`, and `encode_step`/`decode_step` one frame at a time (`encode-stream`, `decode-stream`, with per-frame compute times) |
//!
//! candle-transformers' EnCodec pads with `Replicate` where the reference pads with `Reflect`
//! (unsupported there), and does not trim its transposed convolutions' extra samples (its
//! decode returns 370 samples more than `frames * 320`); the cost is about the same. Weights are random: every model is built once from
//! a `VarMap` to learn its variables' names and shapes, then again from those names filled with
//! uniform random values (weight-norm magnitudes, norms' scales and Snake `alpha`s positive) —
//! not zeros, which could take fast paths or give NaNs through weight norm. (SNAC takes its
//! names from the reference checkpoint's key list instead; see [`build_random`].)
//!
//! Each case runs in a fresh child process (this binary with `--case TASK --model KEY
//! --seconds S`); peak memory is that process's `VmHWM`. Threads: `--threads N` (default 2) as
//! `RAYON_NUM_THREADS`, which candle's CPU kernels read. Runs: `--runs N` (default 3 up to 30 s,
//! else 2), best reported.

#[path = "../../tests/support/codec_keys.rs"]
mod codec_keys;
#[path = "../../tests/support/proc_stats.rs"]
mod proc_stats;
#[path = "../../tests/support/random_weights.rs"]
mod random_weights;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use candle_core::StreamTensor;
use candle_transformers::models::{dac, encodec, mimi, snac};
use proc_stats::{cpu_per_run, cpu_usage, memory_mib};
use serde_json::{json, Value};

use random_weights::{default_init, fill, speech_like, Init, XorShift};

const RESULT_TAG: &str = "CANDLE_REF_RESULT ";
const WEIGHT_SEED: u64 = 0x5EED_0075;
const MODELS: [&str; 6] = [
    "encodec",
    "encodec-24kbps",
    "dac",
    "snac",
    "snac-32khz",
    "mimi",
];
/// Models that also run the `encode-stream` / `decode-stream` tasks.
const STREAMING_MODELS: [&str; 1] = ["mimi"];
const DEFAULT_MODELS: &str = "encodec,dac,snac";

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Debug, Clone)]
struct Args {
    case: Option<String>,
    models: Vec<String>,
    seconds: Vec<f64>,
    threads: usize,
    runs: Option<usize>,
}

fn parse_models(list: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for k in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        if k == "all" {
            out.extend(MODELS.iter().map(|m| m.to_string()));
        } else if k == "wavtokenizer" {
            // Not in candle-transformers; accepted so that one --models list serves every bench.
            eprintln!(
                "candle_reference: wavtokenizer: candle-transformers has no WavTokenizer, skipped"
            );
        } else if MODELS.contains(&k) {
            out.push(k.to_string());
        } else {
            return Err(format!(
                "unknown model {k:?} (known: {})",
                MODELS.join(", ")
            ));
        }
    }
    out.dedup();
    Ok(out)
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        case: None,
        models: parse_models(DEFAULT_MODELS)?,
        seconds: vec![10.0, 60.0],
        threads: 2,
        runs: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--case" => args.case = Some(value("--case")?),
            "--models" | "--model" => args.models = parse_models(&value("--models")?)?,
            "--seconds" => {
                args.seconds = value("--seconds")?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<f64>()
                            .map_err(|e| format!("--seconds {s}: {e}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--threads" => {
                let v = value("--threads")?;
                args.threads = v.parse().map_err(|e| format!("--threads {v}: {e}"))?;
            }
            "--runs" => {
                let v = value("--runs")?;
                args.runs = Some(
                    v.parse::<usize>()
                        .map_err(|e| format!("--runs {v}: {e}"))?
                        .max(1),
                );
            }
            "--quick" => {
                args.seconds = vec![10.0];
                args.runs.get_or_insert(1);
            }
            _ => {}
        }
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("candle_reference: {e}");
            std::process::exit(2);
        }
    };
    let code = match args.case.clone() {
        Some(case) => child(&case, &args),
        None => parent(&args),
    };
    std::process::exit(code);
}

// ---------------------------------------------------------------------------------------------
// Child.

/// Build a model from random weights. The names and shapes are `keys` when given, else found
/// by building the model once from an empty `VarMap` (which records every variable it asks for,
/// filled with zeros). That does not work where a model tries one shape and falls back to
/// another (candle-transformers' SNAC asks for a full conv weight first and takes a depthwise
/// one when that is missing: a `VarMap` hands it the full one), so SNAC passes the reference
/// checkpoint's keys (`tests/support/codec_keys.rs`, which candle-transformers reads as is).
fn build_random<M>(
    keys: Option<Vec<(String, Vec<usize>)>>,
    build: impl Fn(VarBuilder) -> candle_core::Result<M>,
) -> AnyResult<(M, usize)> {
    let mut shapes = match keys {
        Some(keys) => keys,
        None => {
            let varmap = VarMap::new();
            drop(build(VarBuilder::from_varmap(
                &varmap,
                DType::F32,
                &Device::Cpu,
            ))?);
            let shapes: Vec<(String, Vec<usize>)> = varmap
                .data()
                .lock()
                .map_err(|_| "poisoned VarMap")?
                .iter()
                .map(|(k, v)| (k.clone(), v.dims().to_vec()))
                .collect();
            shapes
        }
    };
    shapes.sort();
    let mut rng = XorShift::new(WEIGHT_SEED);
    let mut tensors = HashMap::with_capacity(shapes.len());
    let mut params = 0;
    for (name, shape) in shapes {
        let init = if name.ends_with(".alpha") || name.ends_with(".cluster_usage") {
            Init::Uniform(0.5, 1.5)
        } else {
            default_init(&name, &shape)
        };
        let n: usize = shape.iter().product();
        params += n;
        let t = Tensor::from_vec(fill(&init, n, &mut rng), shape, &Device::Cpu)?;
        tensors.insert(name, t);
    }
    let model = build(VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu))?;
    Ok((model, params))
}

fn encodec_config(bandwidth_kbps: f64) -> encodec::Config {
    // The published 24 kHz model (transformers' `facebook/encodec_24khz` config); the number of
    // codebooks follows the largest target bandwidth.
    encodec::Config {
        target_bandwidths: [1.5, 3.0, 6.0, 12.0, 24.0]
            .into_iter()
            .filter(|&b| b <= bandwidth_kbps)
            .collect(),
        ..encodec::Config::default()
    }
}

fn snac_config(key: &str) -> snac::Config {
    if key == "snac" {
        snac::Config {
            sampling_rate: 24000,
            encoder_dim: 48,
            encoder_rates: vec![2, 4, 8, 8],
            decoder_dim: 1024,
            decoder_rates: vec![8, 8, 4, 2],
            attn_window_size: None,
            codebook_size: 4096,
            codebook_dim: 8,
            vq_strides: vec![4, 2, 1],
            noise: true,
            depthwise: true,
        }
    } else {
        snac::Config {
            sampling_rate: 32000,
            encoder_dim: 64,
            encoder_rates: vec![2, 3, 8, 8],
            decoder_dim: 1536,
            decoder_rates: vec![8, 8, 3, 2],
            attn_window_size: Some(32),
            codebook_size: 4096,
            codebook_dim: 8,
            vq_strides: vec![8, 4, 2, 1],
            noise: true,
            depthwise: true,
        }
    }
}

fn dac_config() -> dac::Config {
    // `descript/dac_44khz` as transformers describes it; `Model::new` hard-wires the rest.
    dac::Config {
        num_codebooks: 9,
        model_bitrate: 8,
        codebook_size: 1024,
        latent_dim: 1024,
        frame_rate: 86,
        sampling_rate: 44100,
    }
}

fn random_codes(n: usize, size: u32, rng: &mut XorShift) -> Vec<u32> {
    (0..n).map(|_| rng.below(size)).collect()
}

/// One step to time: a closure that runs the task once and checks its output.
type Step<'a> = Box<dyn Fn() -> AnyResult<()> + 'a>;

fn run_case(key: &str, task: &str, seconds: f64, runs: usize) -> AnyResult<Value> {
    let sample_rate: usize = match key {
        "encodec" | "encodec-24kbps" => 24000,
        "dac" => 44100,
        "snac" => 24000,
        "snac-32khz" => 32000,
        "mimi" => 24000,
        other => return Err(format!("unknown model {other}").into()),
    };
    // Per-frame compute times of the last run of a stream task (milliseconds).
    let frame_times = std::rc::Rc::new(std::cell::RefCell::new(Vec::<f64>::new()));
    if key == "dac" && task == "encode" {
        return Ok(json!({
            "skipped": "candle-transformers' DAC has no encoder-side quantizer (decode only)",
        }));
    }
    let samples = (seconds * sample_rate as f64).round() as usize;
    let dev = Device::Cpu;
    let audio = || -> AnyResult<Tensor> {
        Ok(Tensor::from_vec(
            speech_like(samples, sample_rate as u32, 7),
            (1, 1, samples),
            &dev,
        )?)
    };
    let mut rng = XorShift::new(11);
    let t0 = Instant::now();
    let (step, params, frames): (Step, usize, usize) = match key {
        "encodec" | "encodec-24kbps" => {
            let cfg = encodec_config(if key == "encodec" { 6.0 } else { 24.0 });
            let (model, params) = build_random(None, |vb| encodec::Model::new(&cfg, vb))?;
            let n_q = if key == "encodec" { 8 } else { 32 };
            let frames = samples.div_ceil(320);
            if task == "encode" {
                let x = audio()?;
                let step: Step = Box::new(move || {
                    let codes = model.encode(&x)?;
                    assert_eq!(codes.dims(), &[1, n_q, frames], "encodec codes");
                    Ok(())
                });
                (step, params, frames)
            } else {
                let codes = Tensor::from_vec(
                    random_codes(n_q * frames, 1024, &mut rng),
                    (1, n_q, frames),
                    &dev,
                )?;
                let step: Step = Box::new(move || {
                    let y = model.decode(&codes)?;
                    // Its transposed convolutions are not trimmed: a few hundred samples more.
                    let (b, c, n) = y.dims3()?;
                    assert!(
                        b == 1 && c == 1 && n >= frames * 320 && n < frames * 320 + 1000,
                        "encodec audio {:?}",
                        y.dims()
                    );
                    Ok(())
                });
                (step, params, frames)
            }
        }
        "snac" | "snac-32khz" => {
            let cfg = snac_config(key);
            let ours = if key == "snac" {
                codec::models::snac::SnacConfig::snac_24khz()
            } else {
                codec::models::snac::SnacConfig::snac_32khz()
            };
            // Only the keys the model reads (not the rotary `inv_freq` buffers it computes).
            let keys = codec_keys::snac_keys(&ours)
                .into_iter()
                .filter(|(k, _)| !k.ends_with(".inv_freq"))
                .collect();
            let (model, params) = build_random(Some(keys), |vb| snac::Model::new(&cfg, vb))?;
            let hop: usize = cfg.encoder_rates.iter().product();
            let s0 = cfg.vq_strides[0];
            let w = cfg.attn_window_size.unwrap_or(1);
            let multiple = s0 / gcd(s0, w) * w;
            let frames = samples.div_ceil(hop * multiple) * multiple;
            let lens: Vec<usize> = cfg.vq_strides.iter().map(|s| frames / s).collect();
            if task == "encode" {
                let x = audio()?;
                let step: Step = Box::new(move || {
                    let codes = model.encode(&x)?;
                    let got: Vec<usize> =
                        codes.iter().map(|c| c.dim(1)).collect::<Result<_, _>>()?;
                    assert_eq!(got, lens, "snac stream lengths");
                    Ok(())
                });
                (step, params, frames)
            } else {
                let codes = lens
                    .iter()
                    .map(|&n| Tensor::from_vec(random_codes(n, 4096, &mut rng), (1, n), &dev))
                    .collect::<Result<Vec<_>, _>>()?;
                let step: Step = Box::new(move || {
                    let refs: Vec<&Tensor> = codes.iter().collect();
                    let y = model.decode(&refs)?;
                    assert_eq!(y.dims(), &[1, 1, frames * hop], "snac audio");
                    Ok(())
                });
                (step, params, frames)
            }
        }
        "mimi" => {
            let cfg = mimi::Config::v0_1(Some(8));
            let (model, params) = build_random(None, |vb| mimi::Model::new(cfg.clone(), vb))?;
            let model = std::cell::RefCell::new(model);
            let (hop, n_q) = (1920, 8);
            let frames = samples / hop;
            let x = Tensor::from_vec(
                speech_like(frames * hop, sample_rate as u32, 7),
                (1, 1, frames * hop),
                &dev,
            )?;
            let codes = Tensor::from_vec(
                random_codes(n_q * frames, 2048, &mut rng),
                (1, n_q, frames),
                &dev,
            )?;
            let times = frame_times.clone();
            let step: Step = match task {
                "encode" => Box::new(move || {
                    let c = model.borrow_mut().encode(&x)?;
                    assert_eq!(c.dims(), &[1, n_q, frames], "mimi codes");
                    Ok(())
                }),
                "decode" => Box::new(move || {
                    let y = model.borrow_mut().decode(&codes)?;
                    assert_eq!(y.dims(), &[1, 1, frames * hop], "mimi audio");
                    Ok(())
                }),
                "encode-stream" => Box::new(move || {
                    let mut m = model.borrow_mut();
                    m.reset_state();
                    times.borrow_mut().clear();
                    for f in 0..frames {
                        let t = Instant::now();
                        let piece = StreamTensor::from_tensor(x.narrow(2, f * hop, hop)?);
                        let c = m.encode_step(&piece)?;
                        times.borrow_mut().push(t.elapsed().as_secs_f64() * 1000.0);
                        let c = c.as_option().ok_or("mimi: no codes for a whole frame")?;
                        assert_eq!(c.dims(), &[1, n_q, 1], "mimi stream codes");
                    }
                    Ok(())
                }),
                "decode-stream" => Box::new(move || {
                    let mut m = model.borrow_mut();
                    m.reset_state();
                    times.borrow_mut().clear();
                    for f in 0..frames {
                        let t = Instant::now();
                        let piece = StreamTensor::from_tensor(codes.narrow(2, f, 1)?);
                        let y = m.decode_step(&piece)?;
                        times.borrow_mut().push(t.elapsed().as_secs_f64() * 1000.0);
                        let y = y.as_option().ok_or("mimi: no audio for a code frame")?;
                        assert_eq!(y.dims(), &[1, 1, hop], "mimi stream audio");
                    }
                    Ok(())
                }),
                other => return Err(format!("unknown task {other}").into()),
            };
            (step, params, frames)
        }
        _ => {
            let cfg = dac_config();
            let (model, params) = build_random(None, |vb| dac::Model::new(&cfg, vb))?;
            let frames = samples.div_ceil(512);
            let codes = Tensor::from_vec(
                random_codes(9 * frames, 1024, &mut rng),
                (1, 9, frames),
                &dev,
            )?;
            let step: Step = Box::new(move || {
                let y = model.decode_codes(&codes)?;
                let (b, c, n) = y.dims3()?;
                assert!(
                    b == 1 && c == 1 && n.abs_diff(frames * 512) < 512,
                    "dac audio {:?}",
                    y.dims()
                );
                Ok(())
            });
            (step, params, frames)
        }
    };
    let load_s = t0.elapsed().as_secs_f64();
    let (_, load_rss) = memory_mib();
    let mut walls = Vec::with_capacity(runs);
    let cpu_before = cpu_usage();
    for i in 0..runs {
        let t = Instant::now();
        step()?;
        let wall = t.elapsed().as_secs_f64();
        eprintln!(
            "  candle {key} {task} {seconds} s run {}/{runs}: {wall:.2} s",
            i + 1
        );
        walls.push(wall);
    }
    let best = walls.iter().copied().fold(f64::INFINITY, f64::min);
    let (peak, _) = memory_mib();
    let cpu = cpu_per_run(cpu_before, runs);
    let frame_compute_ms = {
        let mut ms = frame_times.borrow().clone();
        ms.sort_by(f64::total_cmp);
        if ms.is_empty() {
            Value::Null
        } else {
            json!({
                "median": ms[ms.len() / 2],
                "p95": ms[((ms.len() as f64 * 0.95) as usize).min(ms.len() - 1)],
                "max": ms[ms.len() - 1],
                "frame_ms": 80.0,
            })
        }
    };
    Ok(json!({
        "frame_compute_ms": frame_compute_ms,
        "samples": samples,
        "frames": frames,
        "params": params,
        "runs": runs,
        "wall_s": best,
        "walls_s": walls,
        "rtf": seconds / best,
        "peak_rss_mib": peak,
        "after_load_rss_mib": load_rss,
        "load_s": load_s,
        "cpu": cpu,
    }))
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn child(task: &str, args: &Args) -> i32 {
    let threads = args.threads.to_string();
    for var in ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, &threads);
        }
    }
    let Some(key) = args.models.first() else {
        eprintln!("candle_reference: no model");
        return 2;
    };
    let seconds = args.seconds[0];
    let runs = args.runs.unwrap_or(if seconds <= 30.0 { 3 } else { 2 });
    match run_case(key, task, seconds, runs) {
        Ok(mut v) => {
            v["impl"] = json!("candle-transformers");
            v["model_key"] = json!(key);
            v["task"] = json!(task);
            v["audio_s"] = json!(seconds);
            v["threads"] = json!(std::env::var("RAYON_NUM_THREADS").ok());
            println!("{RESULT_TAG}{v}");
            0
        }
        Err(e) => {
            eprintln!("candle_reference: {key} {task} {seconds} s failed: {e}");
            1
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parent.

fn parent(args: &Args) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("candle_reference: cannot find this executable: {e}");
            return 1;
        }
    };
    let mut failed = 0;
    let mut rows: Vec<Value> = Vec::new();
    for key in &args.models {
        for &seconds in &args.seconds {
            let stream_tasks: &[&str] = if STREAMING_MODELS.contains(&key.as_str()) {
                &["encode-stream", "decode-stream"]
            } else {
                &[]
            };
            for &task in ["encode", "decode"].iter().chain(stream_tasks) {
                eprintln!("candle {key} {task} {seconds} s ...");
                let mut cmd = Command::new(&exe);
                cmd.args([
                    "--case",
                    task,
                    "--model",
                    key,
                    "--seconds",
                    &seconds.to_string(),
                ])
                .args(["--threads", &args.threads.to_string()])
                .env("RAYON_NUM_THREADS", args.threads.to_string())
                .env("CANDLE_NUM_THREADS", args.threads.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
                if let Some(r) = args.runs {
                    cmd.args(["--runs", &r.to_string()]);
                }
                let parsed = cmd
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .and_then(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .lines()
                            .find_map(|l| l.strip_prefix(RESULT_TAG))
                            .and_then(|l| serde_json::from_str::<Value>(l).ok())
                    });
                match parsed {
                    Some(v) => rows.push(v),
                    None => {
                        eprintln!("candle_reference: {key} {task} {seconds} s failed");
                        failed += 1;
                    }
                }
            }
        }
    }
    println!();
    println!(
        "{:<16} {:<7} {:<6} {:<8} {:<6} peak RSS (MB)",
        "model", "task", "audio", "wall(s)", "RTF"
    );
    for r in &rows {
        if let Some(why) = r["skipped"].as_str() {
            println!(
                "{:<16} {:<7} {:<6} skipped: {why}",
                r["model_key"].as_str().unwrap_or("?"),
                r["task"].as_str().unwrap_or("?"),
                format!("{} s", r["audio_s"]),
            );
            continue;
        }
        println!(
            "{:<16} {:<7} {:<6} {:<8.2} {:<6.1} {:.0}",
            r["model_key"].as_str().unwrap_or("?"),
            r["task"].as_str().unwrap_or("?"),
            format!("{} s", r["audio_s"]),
            r["wall_s"].as_f64().unwrap_or(f64::NAN),
            r["rtf"].as_f64().unwrap_or(f64::NAN),
            r["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
        );
    }
    println!("(candle-transformers, {} threads; RTF = audio seconds / wall seconds, best of the runs; MB = MiB, VmHWM of the case's process)", args.threads);
    i32::from(failed > 0)
}
