//! Encode/decode speed and memory of the full-size 75 tokens/s WavTokenizer on the CPU.
//!
//! ```text
//! cargo bench --bench codec_bench                     # 10 s and 60 s, 2 threads
//! cargo bench --bench codec_bench -- --quick          # 10 s only, one run (smoke test)
//! cargo bench --bench codec_bench -- --seconds 10,30 --threads 4 --runs 2 --stages
//! ```
//!
//! The model has random weights (shapes from `WavTokenizerConfig::frame75_24khz()`), so no
//! checkpoint or fixture is needed; speed and memory do not depend on the values. Each case
//! (task x audio length) runs in a fresh child process (this binary, re-executed with
//! `--case TASK --seconds S`) so that its peak resident memory (`VmHWM`) is its own; the child
//! prints one JSON line, the parent collects a table and writes `target/codec_bench.json`.
//!
//! Options: `--seconds 10,60` audio lengths; `--threads N` (default 2, passed to the children
//! as `RAYON_NUM_THREADS` / `CANDLE_NUM_THREADS` before any tensor work); `--runs N` timed runs
//! per case (best is reported; default 3 up to 30 s, else 2); `--quick` (10 s, one run, no
//! stage breakdown); `--stages` / `--no-stages` rough per-stage timing (default on unless
//! `--quick`). Unknown arguments (cargo passes `--bench`) are ignored.
//!
//! Each case's JSON also has its CPU time (user/system) and minor page faults per run. On
//! glibc, temporaries over 32 MiB (long inputs) are mmap'ed fresh on every allocation, and the
//! page faults show up as system time; to see what that costs, run the bench under e.g.
//! `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=2147483647:glibc.malloc.trim_threshold=4294967295`.

#[path = "../tests/support/random_weights.rs"]
mod random_weights;
#[path = "../tests/support/wavtokenizer_keys.rs"]
mod wavtokenizer_keys;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use codec::models::wavtokenizer::{WavTokenizer, WavTokenizerConfig};
use codec::{Codec, Device, Tensor};
use serde_json::{json, Value};

use random_weights::{random_state_dict, speech_like, XorShift};
use wavtokenizer_keys::wavtokenizer_keys;

const MODEL: &str = "wavtokenizer-75 (full)";
const RESULT_TAG: &str = "CODEC_BENCH_RESULT ";
const WEIGHT_SEED: u64 = 0x5EED_0075;

#[derive(Debug, Clone)]
struct Args {
    case: Option<String>,
    seconds: Vec<f64>,
    threads: usize,
    runs: Option<usize>,
    quick: bool,
    stages: Option<bool>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        case: None,
        seconds: vec![10.0, 60.0],
        threads: 2,
        runs: None,
        quick: false,
        stages: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--case" => args.case = Some(value("--case")?),
            "--seconds" => {
                args.seconds = value("--seconds")?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<f64>()
                            .map_err(|e| format!("--seconds {s}: {e}"))
                    })
                    .collect::<Result<_, _>>()?;
                if args.seconds.iter().any(|&s| s <= 0.0) {
                    return Err("--seconds must be positive".into());
                }
            }
            "--threads" => {
                let v = value("--threads")?;
                args.threads = v.parse().map_err(|e| format!("--threads {v}: {e}"))?;
                if args.threads == 0 {
                    return Err("--threads must be at least 1".into());
                }
            }
            "--runs" => {
                let v = value("--runs")?;
                let runs: usize = v.parse().map_err(|e| format!("--runs {v}: {e}"))?;
                args.runs = Some(runs.max(1));
            }
            "--quick" => args.quick = true,
            "--stages" => args.stages = Some(true),
            "--no-stages" => args.stages = Some(false),
            // `--bench` from cargo, test-name filters and the like.
            _ => {}
        }
    }
    if args.quick {
        args.seconds = vec![10.0];
        args.runs.get_or_insert(1);
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("codec_bench: {e}");
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
// Child: one case in this process.

/// `VmHWM` (peak resident set) and `VmRSS` of this process in MiB, where the OS tells.
fn memory_mib() -> (Option<f64>, Option<f64>) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (None, None);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map(|kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU seconds (user, system) and minor page faults of this process so far, from
/// `/proc/self/stat` (clock ticks taken as 100 per second, the Linux default).
fn cpu_usage() -> Option<(f64, f64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let minflt = f.get(7)?.parse().ok()?;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime / 100.0, stime / 100.0, minflt))
}

fn build_model(config: &WavTokenizerConfig) -> codec::Result<WavTokenizer> {
    let keys = wavtokenizer_keys(config);
    let state = random_state_dict(&keys, WEIGHT_SEED, "random weights")?;
    let (model, unused) = WavTokenizer::load(config, state, MODEL, &Device::Cpu)?;
    assert!(
        unused.is_empty(),
        "generated keys not used by the model: {unused:?}"
    );
    Ok(model)
}

fn audio_tensor(samples: usize, sample_rate: u32) -> codec::Result<Tensor> {
    let audio = speech_like(samples, sample_rate, 7);
    Ok(Tensor::from_vec(audio, (1, 1, samples), &Device::Cpu)?)
}

/// Random codes for `frames` frames: decoding cost does not depend on which codes they are,
/// and the decode case then needs no encoder run of its own.
fn codes_tensor(config: &WavTokenizerConfig, frames: usize) -> codec::Result<Tensor> {
    let mut rng = XorShift::new(11);
    let n = config.num_quantizers * frames;
    let codes: Vec<u32> = (0..n)
        .map(|_| rng.below(config.codebook_size as u32))
        .collect();
    Ok(Tensor::from_vec(
        codes,
        (1, config.num_quantizers, frames),
        &Device::Cpu,
    )?)
}

fn timed<T>(f: impl FnOnce() -> codec::Result<T>) -> codec::Result<(T, f64)> {
    let t = Instant::now();
    let out = f()?;
    Ok((out, t.elapsed().as_secs_f64()))
}

fn child(case: &str, args: &Args) -> i32 {
    // Thread counts are read once, when candle/rayon build their pools: set them before any
    // tensor work (the parent also puts them in our environment).
    let threads = args.threads.to_string();
    for var in ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, &threads);
        }
    }
    let seconds = args.seconds[0];
    let result = match case {
        "encode" | "decode" => run_case(case, seconds, args),
        "stages" => run_stages(seconds, args),
        other => {
            eprintln!("codec_bench: unknown case {other}");
            return 2;
        }
    };
    match result {
        Ok(mut v) => {
            v["threads"] = json!(std::env::var("RAYON_NUM_THREADS").ok());
            println!("{RESULT_TAG}{v}");
            0
        }
        Err(e) => {
            eprintln!("codec_bench: {case} {seconds} s failed: {e}");
            1
        }
    }
}

fn run_case(task: &str, seconds: f64, args: &Args) -> codec::Result<Value> {
    let config = WavTokenizerConfig::frame75_24khz();
    let runs = args.runs.unwrap_or(if seconds <= 30.0 { 3 } else { 2 });
    let samples = (seconds * config.sample_rate as f64).round() as usize;
    let frames = samples.div_ceil(config.head.hop_length);

    let (model, load_s) = timed(|| build_model(&config))?;
    let (load_hwm, load_rss) = memory_mib();
    let input = match task {
        "encode" => audio_tensor(samples, config.sample_rate)?,
        _ => codes_tensor(&config, frames)?,
    };
    let mut walls = Vec::with_capacity(runs);
    let cpu_before = cpu_usage();
    for i in 0..runs {
        let (out, wall) = timed(|| match task {
            "encode" => model.encode(&input),
            _ => model.decode(&input),
        })?;
        let expected = match task {
            "encode" => vec![1, config.num_quantizers, frames],
            _ => vec![1, 1, frames * config.head.hop_length],
        };
        assert_eq!(out.dims(), expected.as_slice(), "{task} output shape");
        eprintln!("  {task} {seconds} s run {}/{runs}: {wall:.2} s", i + 1);
        walls.push(wall);
    }
    let best = walls.iter().copied().fold(f64::INFINITY, f64::min);
    let (peak, _) = memory_mib();
    // CPU time and page faults per run (averaged over the runs).
    let cpu = match (cpu_before, cpu_usage()) {
        (Some((u0, s0, f0)), Some((u1, s1, f1))) => json!({
            "user_s_per_run": (u1 - u0) / runs as f64,
            "sys_s_per_run": (s1 - s0) / runs as f64,
            "minor_faults_per_run": (f1 - f0) / runs as u64,
        }),
        _ => Value::Null,
    };
    Ok(json!({
        "model": MODEL,
        "task": task,
        "audio_s": seconds,
        "samples": samples,
        "frames": frames,
        "runs": runs,
        "wall_s": best,
        "walls_s": walls,
        "rtf": seconds / best,
        "peak_rss_mib": peak,
        "after_load_rss_mib": load_rss,
        "load_peak_rss_mib": load_hwm,
        "load_s": load_s,
        "cpu": cpu,
    }))
}

/// Rough per-stage times from the public methods, best of `--runs` (default 3). The LSTM and
/// `pos_net` are timed by difference against models built without them; all variants stay
/// loaded and their runs are interleaved, so that load from other processes hits them alike.
fn run_stages(seconds: f64, args: &Args) -> codec::Result<Value> {
    let runs = args.runs.unwrap_or(3);
    let config = WavTokenizerConfig::frame75_24khz();
    let samples = (seconds * config.sample_rate as f64).round() as usize;
    let frames = samples.div_ceil(config.head.hop_length);
    let audio = audio_tensor(samples, config.sample_rate)?;
    let codes = codes_tensor(&config, frames)?;

    let full = build_model(&config)?;
    let mut cfg = config.clone();
    cfg.encoder.lstm = 0;
    let no_lstm = build_model(&cfg)?;
    let mut cfg = config.clone();
    cfg.backbone.pos_net = false;
    let no_pos_net = build_model(&cfg)?;
    let features = full.codes_to_features(&codes)?;

    type Step<'a> = Box<dyn Fn() -> codec::Result<Tensor> + 'a>;
    let steps: Vec<(&str, Step)> = vec![
        ("encode", Box::new(|| full.encode(&audio))),
        ("encode_latent", Box::new(|| full.encode_latent(&audio))),
        (
            "encode_latent_no_lstm",
            Box::new(|| no_lstm.encode_latent(&audio)),
        ),
        ("decode", Box::new(|| full.decode(&codes))),
        (
            "codes_to_features",
            Box::new(|| full.codes_to_features(&codes)),
        ),
        ("backbone", Box::new(|| full.backbone(&features))),
        (
            "backbone_no_pos_net",
            Box::new(|| no_pos_net.backbone(&features)),
        ),
    ];
    let mut best = vec![f64::INFINITY; steps.len()];
    for run in 0..runs {
        for (i, (_, step)) in steps.iter().enumerate() {
            let (_, t) = timed(step)?;
            best[i] = best[i].min(t);
        }
        eprintln!("  stages {seconds} s: round {}/{runs} done", run + 1);
    }
    let t = |name: &str| best[steps.iter().position(|(n, _)| *n == name).expect("step")];
    let (encode, encoder, encoder_no_lstm) =
        (t("encode"), t("encode_latent"), t("encode_latent_no_lstm"));
    let (decode, codes_to_features) = (t("decode"), t("codes_to_features"));
    let (backbone, backbone_no_pos_net) = (t("backbone"), t("backbone_no_pos_net"));

    Ok(json!({
        "model": MODEL,
        "task": "stages",
        "audio_s": seconds,
        "frames": frames,
        "runs": runs,
        "encode_s": encode,
        "encode": {
            "seanet_convs_s": encoder_no_lstm,
            "lstm_s": (encoder - encoder_no_lstm).max(0.0),
            "quantize_s": (encode - encoder).max(0.0),
        },
        "decode_s": decode,
        "decode": {
            "codes_to_features_s": codes_to_features,
            "pos_net_s": (backbone - backbone_no_pos_net).max(0.0),
            "convnext_s": backbone_no_pos_net,
            "head_istft_s": (decode - codes_to_features - backbone).max(0.0),
        },
    }))
}

// ---------------------------------------------------------------------------------------------
// Parent: one child per case, then the table.

fn run_child(exe: &PathBuf, case: &str, seconds: f64, args: &Args) -> Result<Value, String> {
    let mut cmd = Command::new(exe);
    cmd.args(["--case", case, "--seconds", &seconds.to_string()])
        .args(["--threads", &args.threads.to_string()])
        .env("RAYON_NUM_THREADS", args.threads.to_string())
        .env("CANDLE_NUM_THREADS", args.threads.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(runs) = args.runs {
        cmd.args(["--runs", &runs.to_string()]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("child exited with {}", out.status));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(RESULT_TAG))
        .ok_or("child printed no result")?;
    serde_json::from_str(line).map_err(|e| format!("bad result line {line:?}: {e}"))
}

fn mib(v: &Value) -> String {
    v.as_f64()
        .map(|m| format!("{m:.0}"))
        .unwrap_or_else(|| "n/a".into())
}

fn secs(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn parent(args: &Args) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("codec_bench: cannot find this executable: {e}");
            return 1;
        }
    };
    let stages = args.stages.unwrap_or(!args.quick);
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    eprintln!(
        "codec_bench: {MODEL}, audio {:?} s, {} threads ({cpus} CPUs available){}",
        args.seconds,
        args.threads,
        if args.quick { ", quick" } else { "" }
    );
    let mut results = Vec::new();
    let mut stage_results = Vec::new();
    let mut failed = 0;
    for &seconds in &args.seconds {
        for task in ["encode", "decode"] {
            eprintln!("{task} {seconds} s ...");
            match run_child(&exe, task, seconds, args) {
                Ok(v) => results.push(v),
                Err(e) => {
                    eprintln!("codec_bench: {task} {seconds} s: {e}");
                    failed += 1;
                }
            }
        }
    }
    if stages {
        for &seconds in &args.seconds {
            eprintln!("stage breakdown {seconds} s ...");
            match run_child(&exe, "stages", seconds, args) {
                Ok(v) => stage_results.push(v),
                Err(e) => {
                    eprintln!("codec_bench: stages {seconds} s: {e}");
                    failed += 1;
                }
            }
        }
    }

    println!();
    println!(
        "{:<25} {:<7} {:<6} {:<8} {:<8} {:<6} {:<14} after load (MB)",
        "model", "task", "audio", "threads", "wall(s)", "RTF", "peak RSS (MB)"
    );
    for r in &results {
        println!(
            "{:<25} {:<7} {:<6} {:<8} {:<8.2} {:<6.1} {:<14} {}",
            r["model"].as_str().unwrap_or(MODEL),
            r["task"].as_str().unwrap_or("?"),
            format!("{} s", secs(&r["audio_s"])),
            r["threads"].as_str().unwrap_or("?"),
            secs(&r["wall_s"]),
            secs(&r["rtf"]),
            mib(&r["peak_rss_mib"]),
            mib(&r["after_load_rss_mib"]),
        );
    }
    let runs = match args.runs {
        Some(n) => n.to_string(),
        None => "3 (up to 30 s) or 2".into(),
    };
    println!(
        "(RTF = audio seconds / wall seconds, best of {runs} run(s) per case; MB = MiB, \
         VmHWM of the case's own process; after load = VmRSS once the model is built)"
    );
    for s in &stage_results {
        let (e, d) = (&s["encode"], &s["decode"]);
        println!(
            "stages {} s: encode {:.2} s = SEANet convs {:.2} + LSTM {:.2} + quantize {:.2}; \
             decode {:.2} s = codes_to_features {:.3} + pos_net {:.2} + ConvNeXt/embed {:.2} + head/iSTFT {:.2}",
            secs(&s["audio_s"]),
            secs(&s["encode_s"]),
            secs(&e["seanet_convs_s"]),
            secs(&e["lstm_s"]),
            secs(&e["quantize_s"]),
            secs(&s["decode_s"]),
            secs(&d["codes_to_features_s"]),
            secs(&d["pos_net_s"]),
            secs(&d["convnext_s"]),
            secs(&d["head_istft_s"]),
        );
    }

    let report = json!({
        "model": MODEL,
        "threads": args.threads,
        "available_cpus": cpus,
        "quick": args.quick,
        "results": results,
        "stages": stage_results,
    });
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target.join("codec_bench.json");
    let written = std::fs::create_dir_all(&target).and_then(|_| {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&report).unwrap_or_default(),
        )
    });
    match written {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => {
            eprintln!("codec_bench: cannot write {}: {e}", path.display());
            failed += 1;
        }
    }
    i32::from(failed > 0)
}
