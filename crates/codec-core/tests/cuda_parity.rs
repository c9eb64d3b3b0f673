//! Every family on a CUDA GPU against the same model on the CPU, which the `*_parity` tests tie
//! to the reference implementations: codes (agreement stated; GPU float32 kernels round
//! differently, so codes may flip only where the CPU's two nearest entries nearly tie) and
//! decoded audio (SNR stated, >= 60 dB).
//!
//! Runs only where a CUDA device is present (a build with `--features cuda`, e.g.
//! `.ci/cuda-build`, on a machine with an NVIDIA GPU and driver); elsewhere it says so and
//! passes.

mod common;

use codec_core::audio::{prepare_mono, read_audio};
use codec_core::{load_model, CodeStreams, Device, ModelSpec, Tensor};
use common::{fixture_dir, snr_db};

fn cuda() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("SKIPPED: no CUDA device ({e})");
            None
        }
    }
}

fn to_device(codes: &CodeStreams, device: &Device) -> CodeStreams {
    CodeStreams {
        streams: codes
            .streams
            .iter()
            .map(|s| s.to_device(device).unwrap())
            .collect(),
        scales: codes.scales.as_ref().map(|s| s.to_device(device).unwrap()),
    }
}

fn flat_u32(t: &Tensor) -> Vec<u32> {
    t.to_device(&Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn flat_f32(t: &Tensor) -> Vec<f32> {
    t.to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(codec_core::DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Compare one model on the CPU and the GPU: code agreement and decoded SNR, printed and bounded.
fn compare(spec: &str, wav: &std::path::Path, gpu: &Device, deterministic_decode: bool) {
    let spec = ModelSpec::parse(spec).unwrap();
    let cpu_model = load_model(&spec, &Device::Cpu).unwrap();
    let gpu_model = load_model(&spec, gpu).unwrap();
    let info = cpu_model.info().clone();
    let clip = read_audio(wav).unwrap();
    let samples = prepare_mono(&clip, info.sample_rate).unwrap().samples;
    let n = samples.len();
    let audio = Tensor::from_vec(samples, (1, 1, n), &Device::Cpu).unwrap();
    let audio = if info.channels == 2 {
        Tensor::cat(&[&audio, &audio], 1).unwrap()
    } else {
        audio
    };

    let codes = match cpu_model.encode_with(&audio, &Default::default()) {
        Ok(codes) => {
            let on_gpu = gpu_model
                .encode_with(&audio.to_device(gpu).unwrap(), &Default::default())
                .unwrap();
            let (mut same, mut total) = (0usize, 0usize);
            for (a, b) in codes.streams.iter().zip(&on_gpu.streams) {
                let (a, b) = (flat_u32(a), flat_u32(b));
                assert_eq!(a.len(), b.len(), "{}: stream lengths", info.name);
                same += a.iter().zip(&b).filter(|(x, y)| x == y).count();
                total += a.len();
            }
            let agreement = same as f64 / total as f64;
            eprintln!(
                "{}: GPU codes equal the CPU's at {same} of {total} ({:.2} %)",
                info.name,
                100.0 * agreement
            );
            assert!(
                agreement >= 0.99,
                "{}: codes agree at {agreement}",
                info.name
            );
            codes
        }
        // Decode-only models (X-Codec2, NeuCodec here): codes spread over the codebook.
        Err(_) => {
            let frames = 100;
            let size = info.codebook_sizes[0];
            let codes: Vec<u32> = (0..frames as u32).map(|i| i * 7919 % size).collect();
            CodeStreams {
                streams: vec![Tensor::from_vec(codes, (1, frames), &Device::Cpu).unwrap()],
                scales: None,
            }
        }
    };
    if !deterministic_decode {
        eprintln!(
            "{}: decoder adds noise; decode compared by shape only",
            info.name
        );
    }
    let a = cpu_model.decode_streams(&codes).unwrap();
    let b = gpu_model.decode_streams(&to_device(&codes, gpu)).unwrap();
    assert_eq!(a.dims(), b.dims(), "{}: decoded shapes", info.name);
    if deterministic_decode {
        let snr = snr_db(&flat_f32(&a), &flat_f32(&b));
        eprintln!("{}: GPU audio vs CPU audio {snr:.1} dB", info.name);
        assert!(snr >= 60.0, "{}: {snr:.1} dB", info.name);
    }
}

#[test]
fn every_family_on_the_gpu_matches_the_cpu() {
    let Some(gpu) = cuda() else {
        return;
    };
    let jfk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/jfk.flac");
    compare("tinycodec-24khz", &jfk, &gpu, true);
    for (family, deterministic) in [
        ("wavtokenizer", true),
        ("encodec", true),
        ("dac", true),
        ("snac", false),
        ("mimi", true),
        ("xcodec2-decoder", true),
    ] {
        let Some(dir) = fixture_dir(family) else {
            continue;
        };
        let wav = dir.join("speech_a.wav");
        let wav = if wav.is_file() { wav } else { jfk.clone() };
        compare(&dir.display().to_string(), &wav, &gpu, deterministic);
    }
}
