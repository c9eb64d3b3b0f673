//! Lyra v2 against the official runtime (LiteRT) on real audio: `../shared/fixtures/lyra/`
//! holds the published files and LiteRT's outputs with both of its kernel sets (the default
//! XNNPACK ones and the reference kernels, `refkernels`). Two correct runs of the runtime
//! disagree (`cases.json`, `reference_self_agreement`); the port follows the reference kernels'
//! arithmetic, and these tests hold it to them bit for bit, and to the default kernels within
//! the runtime's own disagreement, as the fixture README asks.

mod common;

use std::path::{Path, PathBuf};

use codec_core::models::lyra::{Lyra, LyraConfig, FRAME};
use codec_core::npy::read_npy;
use codec_core::{audio, Codec, Device, EncodeOptions, Tensor};

const CASES: [&str; 5] = [
    "sample1_16kHz",
    "sample2_16kHz",
    "libri_16k",
    "radio_ja_16k",
    "music_16k",
];
const QUANTIZERS: [usize; 3] = [16, 30, 46];

fn setup() -> Option<(PathBuf, Lyra, serde_json::Value)> {
    let dir = common::fixture_dir("lyra")?;
    let model = Lyra::from_dir(&LyraConfig::lyra_v2(), &dir, "lyra-v2", &Device::Cpu).unwrap();
    let cases =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    Some((dir, model, cases))
}

fn f32s(path: &Path) -> Vec<f32> {
    read_npy(path)
        .unwrap()
        .values
        .iter()
        .map(|&v| v as f32)
        .collect()
}

/// `[46, frames]` int32 codes (-1 for unused stages) → the first `n` rows.
fn codes(path: &Path, n: usize) -> Vec<Vec<u32>> {
    let a = read_npy(path).unwrap();
    let frames = a.shape[1];
    let v = &a.values;
    (0..n)
        .map(|s| {
            v[s * frames..(s + 1) * frames]
                .iter()
                .map(|&c| c as u32)
                .collect()
        })
        .collect()
}

/// The case's audio over whole frames, as the fixtures were made.
fn samples(dir: &Path, name: &str) -> Vec<f32> {
    let mut x = audio::read_audio(dir.join(format!("{name}.wav")))
        .unwrap()
        .to_mono();
    x.truncate(x.len() / FRAME * FRAME);
    x
}

fn equal_fraction(a: &[Vec<u32>], b: &[Vec<u32>]) -> f64 {
    let (mut same, mut all) = (0usize, 0usize);
    for (x, y) in a.iter().zip(b) {
        same += x.iter().zip(y).filter(|(p, q)| p == q).count();
        all += x.len();
    }
    same as f64 / all as f64
}

#[test]
fn quantizer_gives_the_reference_codes_and_vectors() {
    let Some((dir, model, _)) = setup() else {
        return;
    };
    for name in CASES {
        let features = f32s(&dir.join(format!("{name}.features.npy")));
        for n in QUANTIZERS {
            let want = codes(&dir.join(format!("{name}.nq{n}.codes.npy")), n);
            let got = model.quantize_features(&features, n);
            // Measured: every frame equal on all five clips (no near-ties occur in them).
            assert_eq!(got, want, "{name} nq{n}: codes differ");
            let vectors = model.dequantize_codes(&want);
            let want_vectors = f32s(&dir.join(format!("{name}.nq{n}.dequantized.npy")));
            // Measured: bit-identical (the sum runs in the graph's stage order).
            assert_eq!(
                vectors, want_vectors,
                "{name} nq{n}: dequantised vectors differ"
            );
        }
    }
}

#[test]
fn encoder_equals_the_reference_kernels_and_stays_within_the_runtimes_disagreement() {
    let Some((dir, model, cases)) = setup() else {
        return;
    };
    for name in CASES {
        let x = samples(&dir, name);
        let features = model.features(&x);
        let reference = f32s(&dir.join(format!("{name}.refkernels.features.npy")));
        let default = f32s(&dir.join(format!("{name}.features.npy")));
        // Measured: bit-identical to LiteRT's reference kernels on all five clips.
        assert_eq!(
            features, reference,
            "{name}: features differ from the reference kernels"
        );
        let agreement = &cases[name]["nq16"]["reference_self_agreement"];
        let self_snr = agreement["features_snr_db"].as_f64().unwrap();
        let snr = common::snr_db(&default, &features);
        assert!(snr >= self_snr - 1.0, "{name}: features {snr:.2} dB from the default kernels, runtime self-agreement {self_snr:.2} dB");
        for n in QUANTIZERS {
            let got = model.quantize_features(&features, n);
            let want = codes(&dir.join(format!("{name}.nq{n}.codes.npy")), n);
            let first = equal_fraction(&got[..1], &want[..1]);
            let all = equal_fraction(&got, &want);
            let own = cases[name][format!("nq{n}")]["reference_self_agreement"]
                ["codes_equal_fraction"]
                .as_f64()
                .unwrap();
            assert!(
                first >= 0.95,
                "{name} nq{n}: first-quantizer codes {first:.3} equal"
            );
            assert!(
                all >= own - 0.05,
                "{name} nq{n}: codes {all:.3} equal, runtime's own {own:.3}"
            );
            let refk = codes(&dir.join(format!("{name}.refkernels.nq{n}.codes.npy")), n);
            assert_eq!(
                got, refk,
                "{name} nq{n}: codes differ from the reference kernels'"
            );
        }
    }
}

#[test]
fn decoding_the_reference_codes_gives_the_reference_audio() {
    let Some((dir, model, cases)) = setup() else {
        return;
    };
    for name in CASES {
        for n in QUANTIZERS {
            let c = codes(&dir.join(format!("{name}.refkernels.nq{n}.codes.npy")), n);
            let frames = c[0].len();
            let flat: Vec<u32> = c.iter().flatten().copied().collect();
            let t = Tensor::from_vec(flat, (1, n, frames), &Device::Cpu).unwrap();
            let audio = model
                .decode(&t)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let reference = f32s(&dir.join(format!("{name}.refkernels.nq{n}.decoded.npy")));
            // Measured: bit-identical to the reference kernels.
            assert_eq!(
                audio, reference,
                "{name} nq{n}: audio differs from the reference kernels'"
            );
            let c = codes(&dir.join(format!("{name}.nq{n}.codes.npy")), n);
            let flat: Vec<u32> = c.iter().flatten().copied().collect();
            let t = Tensor::from_vec(flat, (1, n, frames), &Device::Cpu).unwrap();
            let audio = model
                .decode(&t)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let default = f32s(&dir.join(format!("{name}.nq{n}.decoded.npy")));
            let snr = common::snr_db(&default, &audio);
            let own = cases[name][format!("nq{n}")]["reference_self_agreement"]
                ["decoded_snr_db_same_codes"]
                .as_f64()
                .unwrap();
            assert!(snr >= own - 3.0, "{name} nq{n}: decoded {snr:.2} dB from the default kernels', runtime's own {own:.2} dB");
        }
    }
}

#[test]
fn streaming_in_any_piece_size_equals_batch() {
    let Some((dir, model, _)) = setup() else {
        return;
    };
    let x = samples(&dir, "sample2_16kHz");
    let x = &x[..x.len().min(100 * FRAME)];
    let options = EncodeOptions::new(Some(30));
    let input = Tensor::from_slice(x, (1, 1, x.len()), &Device::Cpu).unwrap();
    let batch_codes = model
        .encode_with(&input, &options)
        .unwrap()
        .stacked()
        .unwrap();
    let batch_audio = model
        .decode(&batch_codes)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let batch_codes = batch_codes.squeeze(0).unwrap().to_vec2::<u32>().unwrap();
    for piece in [1usize, 7, 320, 1000, 4000] {
        let mut enc = model.streaming_encoder(1, &options).unwrap();
        let mut dec = model.streaming_decoder(1).unwrap();
        let mut got_codes: Vec<Vec<u32>> = vec![Vec::new(); 30];
        let mut got_audio = Vec::new();
        for chunk in x.chunks(piece) {
            let t = Tensor::from_slice(chunk, (1, 1, chunk.len()), &Device::Cpu).unwrap();
            if let Some(c) = enc.push_audio(&t).unwrap() {
                let rows = c.squeeze(0).unwrap().to_vec2::<u32>().unwrap();
                for (g, r) in got_codes.iter_mut().zip(rows) {
                    g.extend(r);
                }
                let a = dec.push_codes(&c).unwrap().unwrap();
                got_audio.extend(a.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            }
        }
        assert_eq!(got_codes, batch_codes, "pieces of {piece}: codes differ");
        // Measured: bit-identical (same layers, same summation order for any run length).
        assert_eq!(got_audio, batch_audio, "pieces of {piece}: audio differs");
    }
}

#[test]
fn a_clip_split_over_threads_equals_one_pass() {
    let Some((dir, model, _)) = setup() else {
        return;
    };
    // All five clips end to end: about 1300 frames, enough for four runs with their warm-up.
    let x: Vec<f32> = CASES.iter().flat_map(|name| samples(&dir, name)).collect();
    let input = Tensor::from_slice(&x, (1, 1, x.len()), &Device::Cpu).unwrap();
    let options = EncodeOptions::new(Some(46));
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let codes = model
                .encode_with(&input, &options)
                .unwrap()
                .stacked()
                .unwrap();
            let audio = model
                .decode(&codes)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            (
                codes.flatten_all().unwrap().to_vec1::<u32>().unwrap(),
                audio,
            )
        })
    };
    // The receptive fields (summed contexts of the causal layers) are about half a second;
    // four runs need 4x that per run, so this clip is split four ways.
    let (enc, gen) = model.receptive_frames();
    eprintln!("receptive fields: encoder {enc} frames, generator {gen} frames");
    assert!(
        (20..=40).contains(&enc) && (20..=40).contains(&gen),
        "{enc} / {gen} frames"
    );
    assert!(x.len() / FRAME >= 4 * 4 * enc.max(gen));
    let (one_codes, one_audio) = run(1);
    for threads in [2, 4] {
        let (codes, audio) = run(threads);
        assert_eq!(
            codes, one_codes,
            "{threads} threads: codes differ from one pass"
        );
        assert_eq!(
            audio, one_audio,
            "{threads} threads: audio differs from one pass"
        );
    }
}

/// Corrupted copies of the published files (bytes overwritten at random places, as a bad
/// download or disk would) load to a clear error or to a model that runs; never a panic.
#[test]
fn corrupted_graph_files_never_panic() {
    let Some(dir) = common::fixture_dir("lyra") else {
        return;
    };
    let files: Vec<Vec<u8>> = codec_core::models::lyra::FILES
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut refused, mut loaded) = (0, 0);
    for round in 0..60 {
        let which = round % 3;
        let mut bytes = files.clone();
        let n = bytes[which].len() as u64;
        for _ in 0..1 + next() % 8 {
            let at = (next() % n) as usize;
            bytes[which][at] = next() as u8;
        }
        let parts = [&bytes[0][..], &bytes[1][..], &bytes[2][..]];
        match Lyra::from_bytes(&LyraConfig::lyra_v2(), parts, "corrupt", &Device::Cpu) {
            Err(e) => {
                refused += 1;
                assert!(e.to_string().contains(".tflite"), "{e}");
            }
            Ok(model) => {
                loaded += 1;
                // Most flips land in weights: the model then runs (to other numbers).
                let x =
                    Tensor::zeros((1, 1, 3 * FRAME), codec_core::DType::F32, &Device::Cpu).unwrap();
                let codes = model.encode(&x).unwrap();
                model.decode(&codes).unwrap();
            }
        }
    }
    eprintln!("{refused} refused, {loaded} loaded");
    // Measured: 13 of the 60 are refused (structure or quantisation hit), 47 load and run.
    assert!(
        refused >= 5,
        "only {refused} of 60 corrupted files were refused"
    );
}
