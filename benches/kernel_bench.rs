//! The machine's float32 GEMM peak, and the convolution kernels beside candle's on the layer
//! shapes the codecs spend their time in.
//!
//! ```text
//! cargo bench --bench kernel_bench                      # 2 threads: peak, then every layer
//! cargo bench --bench kernel_bench -- --threads 1 --peak-only
//! ```
//!
//! The peak is the best of several `[m, k] x [k, n]` products (`gemm` crate, AVX-512 where the
//! CPU has it, the sizes below) on the threads asked for: the rate a convolution that is all
//! GEMM could reach, the denominator of the "fraction of peak" figures in README.md. Each layer
//! then runs candle's `conv1d` / `conv_transpose1d` and ours (`codec::nn::conv1d`) on the same
//! input, best of several runs, and prints both rates and their ratio. The 1-minute load
//! average is printed at the start and the end: numbers from a busy machine are not comparable.

use std::time::Instant;

use codec::candle_core::{Device, Module, Tensor};
use codec::nn::conv1d::{Conv1d, Conv1dConfig, ConvTranspose1d, ConvTranspose1dConfig};

struct Args {
    threads: usize,
    peak_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        threads: 2,
        peak_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--threads" => {
                args.threads = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n: &usize| n > 0)
                    .ok_or("--threads needs a positive number")?
            }
            "--peak-only" => args.peak_only = true,
            _ => {} // cargo passes --bench
        }
    }
    Ok(args)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Best wall time of `runs` calls of `f` after one warm-up call, in seconds.
fn best_of(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// GFLOP/s of the best `[m, k] x [k, n]` product among a few large sizes.
fn gemm_peak(threads: usize) -> f64 {
    let mut best = 0f64;
    for &(m, k, n) in &[(1024, 1024, 1024), (2048, 2048, 2048), (512, 4096, 2048)] {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0f32; m * n];
        let secs = best_of(4, || unsafe {
            // SAFETY: row-major buffers of exactly m*k, k*n and m*n values.
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                1,
                n as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                if threads > 1 {
                    gemm::Parallelism::Rayon(threads)
                } else {
                    gemm::Parallelism::None
                },
            )
        });
        let gflops = 2.0 * (m * k * n) as f64 / secs / 1e9;
        println!("gemm [{m}, {k}] x [{k}, {n}]: {gflops:.1} GFLOP/s");
        best = best.max(gflops);
    }
    best
}

/// One convolution layer of a codec: channels, taps, stride, dilation, frames out.
struct Layer {
    name: &'static str,
    in_c: usize,
    out_c: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    transposed: bool,
    /// Input frames.
    len: usize,
}

#[rustfmt::skip]
const LAYERS: &[Layer] = &[
    Layer { name: "EnCodec enc first 1->32 k7", in_c: 1, out_c: 32, kernel: 7, stride: 1, dilation: 1, transposed: false, len: 240_000 },
    Layer { name: "EnCodec res 32->16 k3", in_c: 32, out_c: 16, kernel: 3, stride: 1, dilation: 1, transposed: false, len: 240_000 },
    Layer { name: "EnCodec down 64->128 k8 s4", in_c: 64, out_c: 128, kernel: 8, stride: 4, dilation: 1, transposed: false, len: 120_000 },
    Layer { name: "EnCodec res 256->128 k3", in_c: 256, out_c: 128, kernel: 3, stride: 1, dilation: 1, transposed: false, len: 6_000 },
    Layer { name: "EnCodec dec up 512->256 k16 s8", in_c: 512, out_c: 256, kernel: 16, stride: 8, dilation: 1, transposed: true, len: 750 },
    Layer { name: "DAC res 64 k7 d9", in_c: 64, out_c: 64, kernel: 7, stride: 1, dilation: 9, transposed: false, len: 441_000 },
    Layer { name: "DAC res 512 k7 d3", in_c: 512, out_c: 512, kernel: 7, stride: 1, dilation: 3, transposed: false, len: 13_781 },
    Layer { name: "DAC res 1x1 512", in_c: 512, out_c: 512, kernel: 1, stride: 1, dilation: 1, transposed: false, len: 13_781 },
    Layer { name: "DAC dec up 1536->768 k16 s8", in_c: 1536, out_c: 768, kernel: 16, stride: 8, dilation: 1, transposed: true, len: 862 },
    Layer { name: "DAC dec res 96 k7", in_c: 96, out_c: 96, kernel: 7, stride: 1, dilation: 1, transposed: false, len: 441_000 },
    Layer { name: "SNAC dec up 256->128 k8 s4", in_c: 256, out_c: 128, kernel: 8, stride: 4, dilation: 1, transposed: true, len: 15_000 },
];

fn run_layer(layer: &Layer, peak: f64) -> codec::candle_core::Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (1, layer.in_c, layer.len), &dev)?;
    let bias = Tensor::randn(0f32, 0.1, layer.out_c, &dev)?;
    let (flops, theirs, ours) = if layer.transposed {
        let w = Tensor::randn(0f32, 0.1, (layer.in_c, layer.out_c, layer.kernel), &dev)?;
        let cfg = ConvTranspose1dConfig {
            padding: 0,
            output_padding: 0,
            stride: layer.stride,
            dilation: 1,
            groups: 1,
        };
        let conv = ConvTranspose1d::new(w.clone(), Some(bias.clone()), cfg)?;
        let candle = candle_nn_transposed(&w, &bias, cfg);
        let flops = 2.0 * (layer.in_c * layer.out_c * layer.kernel * layer.len) as f64;
        let theirs = best_of(3, || {
            candle.forward(&x).unwrap();
        });
        let ours = best_of(3, || {
            conv.forward(&x).unwrap();
        });
        (flops, theirs, ours)
    } else {
        let w = Tensor::randn(0f32, 0.1, (layer.out_c, layer.in_c, layer.kernel), &dev)?;
        let padding = (layer.kernel - 1) * layer.dilation / 2;
        let cfg = Conv1dConfig {
            padding,
            stride: layer.stride,
            dilation: layer.dilation,
            groups: 1,
            cudnn_fwd_algo: None,
        };
        let conv = Conv1d::new(w.clone(), Some(bias.clone()), cfg);
        let candle = codec::candle_nn::Conv1d::new(w, Some(bias), cfg);
        let out_len = conv.forward(&x)?.dim(2)?;
        let flops = 2.0 * (layer.in_c * layer.out_c * layer.kernel * out_len) as f64;
        let theirs = best_of(3, || {
            candle.forward(&x).unwrap();
        });
        let ours = best_of(3, || {
            conv.forward(&x).unwrap();
        });
        (flops, theirs, ours)
    };
    let (g_theirs, g_ours) = (flops / theirs / 1e9, flops / ours / 1e9);
    println!(
        "| {} | {:.2} | {:.1} | {:.1} | {:.1} % | {:.2} |",
        layer.name,
        flops / 1e9,
        g_theirs,
        g_ours,
        100.0 * g_ours / peak,
        theirs / ours
    );
    Ok(())
}

fn candle_nn_transposed(
    w: &Tensor,
    bias: &Tensor,
    cfg: ConvTranspose1dConfig,
) -> codec::candle_nn::ConvTranspose1d {
    codec::candle_nn::ConvTranspose1d::new(w.clone(), Some(bias.clone()), cfg)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kernel_bench: {e}");
            std::process::exit(2);
        }
    };
    // Before any tensor work, so that candle and rayon both size their pools from it.
    std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string());
    println!(
        "threads {}, load average (1 min) {}",
        args.threads,
        load_average()
    );
    let peak = gemm_peak(args.threads);
    println!(
        "peak: {peak:.1} GFLOP/s float32 on {} threads",
        args.threads
    );
    if !args.peak_only {
        println!();
        println!(
            "| layer (batch 1) | GFLOP | candle GFLOP/s | ours GFLOP/s | ours / peak | speed-up |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for layer in LAYERS {
            if let Err(e) = run_layer(layer, peak) {
                eprintln!("kernel_bench: {}: {e}", layer.name);
                std::process::exit(1);
            }
        }
    }
    println!("load average (1 min) at the end {}", load_average());
}
