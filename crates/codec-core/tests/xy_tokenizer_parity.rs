//! Parity with the reference XY-Tokenizer (gyt1145028706/XY-Tokenizer 5df5609, and MOSS-TTSD
//! v0.5's copy for the 24 kHz layout) on `../shared/fixtures/xy-tokenizer`.
//!
//! What is checked:
//! - both folders (the repo's layout at 16 kHz out, `ttsd_v0/` at 24 kHz out) load through the
//!   registry from their `.ckpt` and yaml, every key used, the family detected from the keys;
//! - the front end's filterbank and frames, and the encoder's stages, against the trace;
//! - codes from the WAV equal the reference's for 1 and 8 quantizers at every frame the
//!   fixture does not mark ambiguous;
//! - decoding the reference's codes matches its audio (16 and 24 kHz);
//! - a batch of both clips gives each its lone codes and audio.

mod common;

use std::collections::HashMap;
use std::path::Path;

use codec_core::audio::read_audio;
use codec_core::models::xy_tokenizer::{XyTokenizer, XyTokenizerConfig};
use codec_core::npy::read_npy;
use codec_core::weights::StateDict;
use codec_core::{Codec, Device, EncodeOptions, Tensor};

use common::{fixture_dir, snr_db};

const FIXTURE: &str = "xy-tokenizer";
/// (case, code frames, frames the fixture marks ambiguous for nq 8).
const CASES: &[(&str, usize, &[usize])] = &[("speech_a", 37, &[10, 13]), ("speech_b_odd", 31, &[])];

fn load(dir: &Path) -> XyTokenizer {
    let yaml = std::fs::read_to_string(dir.join("xy_tokenizer_config.yaml")).unwrap();
    let cfg = XyTokenizerConfig::from_reference_yaml(&yaml, "xy_tokenizer_config.yaml").unwrap();
    let state = StateDict::load(&dir.join("xy_tokenizer.ckpt")).unwrap();
    let (model, unused) = XyTokenizer::load(&cfg, state, "fixture", &Device::Cpu).unwrap();
    assert!(unused.is_empty(), "unused keys: {unused:?}");
    model
}

fn trace(dir: &Path, case: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join(format!("{case}.trace.safetensors")), &Device::Cpu)
        .unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(candle_core::DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// `[1, t, c]` (this port's layout) as the reference's `[1, c, t]`.
fn channels_first(t: &Tensor) -> Tensor {
    t.transpose(1, 2).unwrap().contiguous().unwrap()
}

/// Codes `[n_q][frames]` of a `NAME.nqN.codes.npy` (int64 `[n_q, 1, frames]`).
fn npy_codes(path: &Path) -> Vec<Vec<u32>> {
    let a = read_npy(path).unwrap();
    assert_eq!(a.shape.len(), 3, "{}", path.display());
    let (n_q, frames) = (a.shape[0], a.shape[2]);
    assert_eq!(a.shape[1], 1);
    (0..n_q)
        .map(|k| {
            a.values[k * frames..(k + 1) * frames]
                .iter()
                .map(|&v| v as u32)
                .collect()
        })
        .collect()
}

fn npy_audio(path: &Path) -> Vec<f32> {
    read_npy(path)
        .unwrap()
        .values
        .iter()
        .map(|&v| v as f32)
        .collect()
}

fn samples(dir: &Path, case: &str) -> Vec<f32> {
    let clip = read_audio(dir.join(format!("{case}.wav"))).unwrap();
    assert_eq!(clip.sample_rate, 16000);
    clip.channels.into_iter().next().unwrap()
}

fn audio_tensor(samples: &[f32]) -> Tensor {
    Tensor::from_vec(samples.to_vec(), (1, 1, samples.len()), &Device::Cpu).unwrap()
}

fn codes_tensor(codes: &[Vec<u32>]) -> Tensor {
    let frames = codes[0].len();
    let flat: Vec<u32> = codes.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (1, codes.len(), frames), &Device::Cpu).unwrap()
}

#[test]
fn both_layouts_load_through_the_registry() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    for (folder, rate) in [(dir.clone(), 16000), (dir.join("ttsd_v0"), 24000)] {
        let spec = codec_core::ModelSpec::parse(folder.to_str().unwrap()).unwrap();
        let loaded = codec_core::load_model_with_report(&spec, &Device::Cpu).unwrap();
        assert!(loaded.unused_keys.is_empty(), "{:?}", loaded.unused_keys);
        let info = loaded.model.info();
        assert_eq!(info.family, "xy-tokenizer");
        assert_eq!((info.sample_rate, info.frame_rate), (rate, 12.5));
        assert_eq!(info.codebook_sizes, vec![1024; 8]);
        assert_eq!(info.hop_length(), rate as usize / 25 * 2);
        let state = StateDict::load(&folder.join("xy_tokenizer.ckpt")).unwrap();
        assert_eq!(
            codec_core::models::detect_family_from_weights(&state),
            Some("xy-tokenizer")
        );
        // The shapes alone cannot tell the test model's heads (4 of 8): without the yaml the
        // checkpoint is refused, naming why.
        let err = codec_core::models::xy_tokenizer::infer_config(&state)
            .unwrap_err()
            .to_string();
        assert!(err.contains("heads"), "{err}");
    }
}

#[test]
fn converted_weights_load_the_same_model() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for folder in [dir.clone(), dir.join("ttsd_v0")] {
        let model = load(&folder);
        let state = StateDict::load(&folder.join("xy_tokenizer.ckpt")).unwrap();
        // What `codec convert` writes: the family's layout (`vocos.*`, weight norm folded,
        // the RVQ's training state dropped).
        let (family, converted) = codec_core::models::inference_weights(state).unwrap();
        assert_eq!(family, "xy-tokenizer");
        assert!(converted
            .tensors
            .keys()
            .all(|k| !k.starts_with("enhanced_vocos.")
                && !k.ends_with(".weight_g")
                && !k.ends_with(".embed_avg")));
        let file = tmp.path().join("converted.safetensors");
        codec_core::weights::convert_to_safetensors(&converted.tensors, &file).unwrap();
        let yaml = std::fs::read_to_string(folder.join("xy_tokenizer_config.yaml")).unwrap();
        let cfg = XyTokenizerConfig::from_reference_yaml(&yaml, "yaml").unwrap();
        let (again, unused) = XyTokenizer::load(
            &cfg,
            StateDict::load(&file).unwrap(),
            "fixture",
            &Device::Cpu,
        )
        .unwrap();
        assert!(unused.is_empty(), "{unused:?}");
        assert_eq!(again.info().fingerprint, model.info().fingerprint);
    }
}

#[test]
fn front_end_matches_the_trace() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let model = load(&dir);
    // The filterbank: transformers' `mel_filter_bank` `[201, 80]`; ours `[80][201]`.
    let want = read_npy(&dir.join("mel_filters.npy")).unwrap();
    assert_eq!(want.shape, vec![201, 80]);
    let got = model.mel_filters();
    let worst = (0..80)
        .flat_map(|m| (0..201).map(move |k| (m, k)))
        .map(|(m, k)| (got[m * 201 + k] as f64 - want.values[k * 80 + m]).abs())
        .fold(0f64, f64::max);
    println!("mel filters: max abs diff {worst:.2e}");
    assert!(worst < 1e-6, "filters differ by {worst}");
    for (case, _, _) in CASES {
        let trace = trace(&dir, case);
        let input = samples(&dir, case);
        assert_eq!(
            input,
            values(&trace["input"]),
            "{case}: the WAV is the trace input"
        );
        let t = model.encode_trace(&input, 8).unwrap();
        let want_len = trace["mel_length"]
            .to_dtype(candle_core::DType::I64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<i64>()
            .unwrap()[0] as usize;
        assert_eq!(t.mel_length, want_len, "{case}");
        // Ours: the valid frames and the next one.
        let want = trace["mel"].narrow(2, 0, want_len + 1).unwrap();
        assert_eq!(t.mel.dims(), want.dims(), "{case}");
        let snr = snr_db(&values(&want), &values(&t.mel));
        println!("{case} mel: {snr:.1} dB");
        // Measured 114.5 dB (speech_a), 115.0 dB (speech_b_odd): the reference's float32 STFT
        // against float64 here. Asserted about 9 dB under the lower.
        assert!(snr > 105.0, "{case}: mel at {snr:.1} dB");
    }
}

#[test]
fn encoder_stages_match_the_trace() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let model = load(&dir);
    for (case, frames, _) in CASES {
        let trace = trace(&dir, case);
        let t = model.encode_trace(&samples(&dir, case), 8).unwrap();
        let stages: Vec<(&str, Tensor)> = vec![
            (
                "semantic_encoder_out",
                channels_first(&t.semantic_encoder_out),
            ),
            (
                "semantic_encoder_adapter_out",
                channels_first(&t.semantic_encoder_adapter_out),
            ),
            (
                "acoustic_encoder_out",
                channels_first(&t.acoustic_encoder_out),
            ),
            (
                "pre_rvq_adapter_out",
                channels_first(&t.pre_rvq_adapter_out),
            ),
            ("downsample_out", channels_first(&t.downsample_out)),
            ("rvq_input", t.rvq_input.t().unwrap().unsqueeze(0).unwrap()),
            ("tokenize_zq", t.zq.t().unwrap().unsqueeze(0).unwrap()),
        ];
        for (name, got) in stages {
            let want = &trace[name];
            assert_eq!(got.dims(), want.dims(), "{case} {name}");
            let snr = snr_db(&values(want), &values(&got));
            println!("{case} {name}: {snr:.1} dB");
            // Measured 103.3 dB at the lowest (speech_a's rvq_input; 105.1 to 118.2 dB for
            // the stages before it, 143 dB for zq): asserted 8 dB under it.
            assert!(snr > 95.0, "{case}: {name} at {snr:.1} dB");
        }
        assert_eq!(t.codes[0].len(), *frames);
        // Each stage's input residual and chosen entry, `[8, 16, T]`.
        for (name, got) in [
            ("rvq_residual_in", &t.rvq_residual_in),
            ("rvq_quantized", &t.rvq_quantized),
        ] {
            let want = &trace[name];
            for (stage, g) in got.iter().enumerate() {
                let w = want.get(stage).unwrap();
                let snr = snr_db(&values(&w), &values(&g.t().unwrap()));
                println!("{case} {name}[{stage}]: {snr:.1} dB");
                // The residual falls 8 dB a stage while the port's absolute error stays: the
                // last stage's input measured 47.6 dB (speech_a), the chosen entries 200+ dB
                // (the same entries, rounded alike). Asserted 7 dB under the measured curve.
                let floor = if name == "rvq_residual_in" {
                    96.0 - 8.0 * stage as f64
                } else {
                    190.0
                };
                assert!(snr > floor, "{case}: {name}[{stage}] at {snr:.1} dB");
            }
        }
    }
}

#[test]
fn decoder_stages_match_the_trace() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let model = load(&dir);
    for (case, _, _) in CASES {
        let trace = trace(&dir, case);
        for n_q in [1usize, 8] {
            let codes = npy_codes(&dir.join(format!("{case}.nq{n_q}.codes.npy")));
            let t = model.decode_trace(&codes).unwrap();
            let mut stages = vec![(format!("quantized_nq{n_q}"), channels_first(&t.quantized))];
            if n_q == 8 {
                stages.extend([
                    (
                        "post_rvq_adapter_out_nq8".to_string(),
                        channels_first(&t.post_rvq_adapter_out),
                    ),
                    ("upsample_out_nq8".into(), channels_first(&t.upsample_out)),
                    (
                        "acoustic_decoder_out_nq8".into(),
                        t.acoustic_decoder_out.clone(),
                    ),
                    (
                        "vocos_backbone_out_nq8".into(),
                        t.vocos_backbone_out.clone(),
                    ),
                ]);
            }
            for (name, got) in stages {
                let want = &trace[name.as_str()];
                assert_eq!(got.dims(), want.dims(), "{case} {name}");
                let snr = snr_db(&values(want), &values(&got));
                println!("{case} {name}: {snr:.1} dB");
                // Measured 118.6 dB at the lowest (speech_b_odd's Vocos backbone; 143 dB for the
                // summed entries): asserted about 10 dB under it.
                assert!(snr > 108.0, "{case}: {name} at {snr:.1} dB");
            }
        }
    }
}

#[test]
fn codes_equal_the_reference() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let model = load(&dir);
    for (case, frames, ambiguous) in CASES {
        let input = samples(&dir, case);
        for n_q in [1usize, 8] {
            let want = npy_codes(&dir.join(format!("{case}.nq{n_q}.codes.npy")));
            assert_eq!(want.len(), n_q);
            assert_eq!(want[0].len(), *frames);
            let streams = model
                .encode_with(&audio_tensor(&input), &EncodeOptions::new(Some(n_q)))
                .unwrap();
            let got = streams.stacked().unwrap().squeeze(0).unwrap();
            let got = got.to_vec2::<u32>().unwrap();
            assert_eq!(got.len(), n_q);
            let mut matched = 0;
            for f in 0..*frames {
                let same = (0..n_q).all(|k| got[k][f] == want[k][f]);
                if same {
                    matched += 1;
                } else {
                    let allowed = n_q == 8 && ambiguous.contains(&f);
                    assert!(allowed, "{case} nq{n_q}: frame {f} differs");
                }
            }
            println!("{case} nq{n_q}: {matched} / {frames} frames identical");
        }
    }
}

#[test]
fn decoding_the_reference_codes_matches_its_audio() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    for (folder, hop) in [(dir.clone(), 1280), (dir.join("ttsd_v0"), 1920)] {
        let model = load(&folder);
        for (case, frames, _) in CASES {
            for n_q in [1usize, 8] {
                let codes = npy_codes(&dir.join(format!("{case}.nq{n_q}.codes.npy")));
                let want = npy_audio(&folder.join(format!("{case}.nq{n_q}.decoded.npy")));
                assert_eq!(want.len(), frames * hop);
                let got = values(&model.decode(&codes_tensor(&codes)).unwrap());
                assert_eq!(got.len(), want.len());
                let snr = snr_db(&want, &got);
                println!("{} {case} nq{n_q}: {snr:.1} dB", folder.display());
                // Measured 108.9 to 110.0 dB over the eight cases (16 and 24 kHz, nq 1 and 8);
                // asserted about 9 dB under the lowest (the README's criterion is 60 dB).
                assert!(snr >= 100.0, "{case} nq{n_q} at {snr:.1} dB");
            }
        }
    }
}

#[test]
fn a_batch_gives_each_clip_its_lone_result() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let model = load(&dir);
    let a = samples(&dir, "speech_a");
    let b = samples(&dir, "speech_b_odd");
    // Equal lengths for one tensor: b cut to a multiple of 1280 (its codes are the same
    // number then) and a cut to b's length.
    let len = b.len() / 1280 * 1280;
    let (a, b) = (&a[..len], &b[..len]);
    let batch = Tensor::cat(&[audio_tensor(a), audio_tensor(b)], 0).unwrap();
    let codes = model.encode(&batch).unwrap();
    let lone_a = model.encode(&audio_tensor(a)).unwrap();
    let lone_b = model.encode(&audio_tensor(b)).unwrap();
    assert_eq!(
        codes.to_vec3::<u32>().unwrap(),
        Tensor::cat(&[lone_a.clone(), lone_b.clone()], 0)
            .unwrap()
            .to_vec3::<u32>()
            .unwrap()
    );
    let audio = model.decode(&codes).unwrap();
    assert_eq!(
        values(&audio.get(1).unwrap()),
        values(&model.decode(&lone_b).unwrap())
    );
    assert_eq!(
        values(&audio.get(0).unwrap()),
        values(&model.decode(&lone_a).unwrap())
    );
}

#[test]
fn clips_over_30_s_take_the_reference_windows() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let model = load(&dir);
    // 45.5 s of speech: windows of 30 s at 0 and 20 s, and a short one at 40 s.
    let a = samples(&dir, "speech_a");
    let long: Vec<f32> = a.iter().copied().cycle().take(728_000).collect();
    let codes = model.encode_input_rate(&long, 8).unwrap();
    assert_eq!(codes[0].len(), 728_000 / 1280);
    // The first 250 codes are the first window's, the next 250 the second's.
    let first = model.encode_input_rate(&long[..480_000], 8).unwrap();
    let second = model.encode_input_rate(&long[320_000..800_000.min(long.len())], 8);
    for k in 0..8 {
        assert_eq!(codes[k][..250], first[k][..250], "stage {k}");
        assert_eq!(
            codes[k][250..500],
            second.as_ref().unwrap()[k][..250],
            "stage {k}"
        );
    }
    // Decoding: 375-code windows every 250, 250 codes' audio kept from each but the last.
    let audio = model.decode_codes(&codes).unwrap();
    assert_eq!(audio.len(), codes[0].len() * 1280);
    let head: Vec<Vec<u32>> = codes.iter().map(|s| s[..375].to_vec()).collect();
    let head_audio = model.decode_codes(&head).unwrap();
    assert_eq!(audio[..250 * 1280], head_audio[..250 * 1280]);
    assert!(audio.iter().all(|v| v.is_finite()));
}

#[test]
fn bad_input_is_an_error() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let model = load(&dir);
    // Under one code frame of audio.
    let short = audio_tensor(&[0.1; 1279]);
    assert!(model.encode(&short).is_err());
    // Silence encodes (the log-mel floor), to finite audio.
    let silence = model.encode(&audio_tensor(&[0.0; 2560])).unwrap();
    assert_eq!(silence.dims(), &[1, 8, 2]);
    let decoded = values(&model.decode(&silence).unwrap());
    assert!(decoded.iter().all(|v| v.is_finite()));
    // Codes out of range, too many codebooks, no frames: errors, not panics.
    let out_of_range = Tensor::from_vec(vec![1024u32, 0], (1, 1, 2), &Device::Cpu).unwrap();
    assert!(model.decode(&out_of_range).is_err());
    let nine = Tensor::zeros((1, 9, 2), candle_core::DType::U32, &Device::Cpu).unwrap();
    assert!(model.decode(&nine).is_err());
    let empty = Tensor::zeros((1, 8, 0), candle_core::DType::U32, &Device::Cpu).unwrap();
    assert!(model.decode(&empty).is_err());
    assert!(model
        .encode_with(&audio_tensor(&[0.1; 4000]), &EncodeOptions::new(Some(9)))
        .is_err());
}

#[test]
fn the_24_khz_layout_encodes_like_the_16_khz_one() {
    let Some(dir) = fixture_dir(FIXTURE) else {
        return;
    };
    let model = load(&dir.join("ttsd_v0"));
    assert_eq!(model.info().sample_rate, 24000);
    for (case, frames, ambiguous) in CASES {
        let input = samples(&dir, case);
        // At its own 16 kHz the encoder gives the reference's codes (the same weights).
        let want = npy_codes(&dir.join(format!("{case}.nq8.codes.npy")));
        let got = model.encode_input_rate(&input, 8).unwrap();
        for f in 0..*frames {
            let same = (0..8).all(|k| got[k][f] == want[k][f]);
            assert!(same || ambiguous.contains(&f), "{case}: frame {f}");
        }
        // Through the codec's 24 kHz rate: resampled to 16 kHz first, the same frame count.
        let at_24k = codec_core::audio::resample(&input, 16000, 24000).unwrap();
        let codes = model.encode(&audio_tensor(&at_24k)).unwrap();
        assert_eq!(codes.dims(), &[1, 8, *frames], "{case}");
        let audio = model.decode(&codes).unwrap();
        assert_eq!(audio.dims(), &[1, 1, frames * 1920]);
    }
}
