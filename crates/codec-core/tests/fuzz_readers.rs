//! Property-based fuzzing of every reader of untrusted bytes: token files, token streams,
//! `.npy` arrays, WAV files and WAV/PCM stream headers, safetensors and PyTorch checkpoints.
//!
//! Each property starts from a valid file and mutates it (bit flips, overwritten fields with
//! extreme values, truncation, insertions), so that the mutations reach past the magic bytes;
//! checksummed formats also get their checksums fixed, so the parser behind them is exercised.
//! The property: the reader returns `Ok` or `Err`, never panics (a panic fails the test, and
//! proptest keeps the input in `proptest-regressions/` as a regression case). The number of
//! cases per run is bounded (`PROPTEST_CASES` overrides it) so CI stays fast.

use std::io::Cursor;

use codec_core::audio::stream::{PcmStreamReader, RawPcm};
use codec_core::audio::{read_audio_from_bytes, write_wav, AudioClip, WavSampleFormat};
use codec_core::npy::read_npy_bytes;
use codec_core::tokfile::{CodebookCodes, TokenFile, TokenHeader};
use codec_core::tokstream::{StreamHeader, TokenStreamReader, TokenStreamWriter};
use codec_core::weights::StateDict;
use proptest::prelude::*;

/// One mutation of a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    /// Overwrite 8 bytes with a value (little-endian): sizes and counts become extreme.
    Put {
        at: usize,
        value: u64,
    },
    Truncate {
        len: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let extreme = prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::from(u32::MAX)),
        Just(u64::MAX),
        Just(1 << 62),
        Just(0x7fff_ffff),
        any::<u64>(),
    ];
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), extreme).prop_map(|(at, value)| Mutation::Put { at, value }),
        any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
    ]
}

fn apply(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in mutations {
        if b.is_empty() {
            break;
        }
        match m {
            Mutation::Flip { at, bit } => {
                let i = at % b.len();
                b[i] ^= 1 << bit;
            }
            Mutation::Put { at, value } => {
                let i = at % b.len();
                for (k, byte) in value.to_le_bytes().iter().enumerate() {
                    if let Some(x) = b.get_mut(i + k) {
                        *x = *byte;
                    }
                }
            }
            Mutation::Truncate { len } => b.truncate(len % (b.len() + 1)),
            Mutation::Insert { at, bytes } => {
                let i = at % (b.len() + 1);
                b.splice(i..i, bytes.iter().copied());
            }
        }
    }
    b
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..4)
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        ..ProptestConfig::default()
    }
}

fn token_file_bytes() -> Vec<u8> {
    TokenFile {
        header: TokenHeader {
            model: "m".into(),
            fingerprint: 7,
            sample_rate: 24_000,
            frame_rate: 75.0,
            original_sample_rate: 44_100,
            original_length: 4_000,
            channels: 1,
        },
        streams: vec![
            CodebookCodes {
                codebook_size: 1024,
                frame_rate: 75.0,
                codes: (0..13).map(|i| i * 77 % 1024).collect(),
            },
            CodebookCodes {
                codebook_size: 4096,
                frame_rate: 150.0,
                codes: (0..26).map(|i| i * 301 % 4096).collect(),
            },
        ],
        scales: vec![0.5],
    }
    .to_bytes()
    .unwrap()
}

/// Recompute a token file's two CRCs (prelude and whole file), so a mutation reaches the body.
fn fix_token_file_crcs(b: &mut [u8]) {
    if b.len() >= 28 {
        let crc = crc32fast::hash(&b[..20]);
        b[20..24].copy_from_slice(&crc.to_le_bytes());
        let n = b.len() - 4;
        let crc = crc32fast::hash(&b[..n]);
        b[n..].copy_from_slice(&crc.to_le_bytes());
    }
}

fn token_stream_bytes() -> Vec<u8> {
    let header = StreamHeader {
        model: "m".into(),
        fingerprint: 7,
        sample_rate: 24_000,
        frame_rate: 12.5,
        channels: 1,
        codebook_sizes: vec![2048, 2048, 70_000],
    };
    let mut w = TokenStreamWriter::new(Vec::new(), header).unwrap();
    for f in 0..5u32 {
        w.write_frame(&[f, 2047 - f, 69_999 - f]).unwrap();
    }
    w.into_inner()
}

fn wav_seed(format: WavSampleFormat, channels: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.wav");
    let samples: Vec<f32> = (0..300).map(|i| (i as f32 * 0.1).sin() * 0.4).collect();
    let clip = AudioClip {
        sample_rate: 16_000,
        channels: vec![samples; channels],
    };
    write_wav(&path, &clip, format).unwrap();
    std::fs::read(path).unwrap()
}

fn npy_seed() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.npy");
    codec_core::npy::write_codes_npy(&path, &[vec![1, 2, 3], vec![4, 5, 6]]).unwrap();
    std::fs::read(path).unwrap()
}

fn safetensors_seed() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.safetensors");
    let mut tensors = std::collections::HashMap::new();
    let dev = codec_core::Device::Cpu;
    tensors.insert(
        "a.weight".to_string(),
        codec_core::Tensor::arange(0f32, 12.0, &dev)
            .unwrap()
            .reshape((3, 4))
            .unwrap(),
    );
    tensors.insert(
        "b".to_string(),
        codec_core::Tensor::ones(5, codec_core::DType::F16, &dev).unwrap(),
    );
    codec_core::weights::convert_to_safetensors(&tensors, &path).unwrap();
    std::fs::read(path).unwrap()
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn token_file_reader_never_panics(m in mutations(), fix in any::<bool>()) {
        let mut b = apply(&token_file_bytes(), &m);
        if fix {
            fix_token_file_crcs(&mut b);
        }
        let _ = TokenFile::from_bytes(&b);
    }

    #[test]
    fn token_stream_reader_never_panics(m in mutations()) {
        let b = apply(&token_stream_bytes(), &m);
        if let Ok(mut r) = TokenStreamReader::new(Cursor::new(b)) {
            for _ in 0..64 {
                match r.next_frame() {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
    }

    #[test]
    fn npy_reader_never_panics(m in mutations()) {
        let b = apply(&npy_seed(), &m);
        let _ = read_npy_bytes(&b, "fuzz.npy");
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn wav_reader_never_panics(
        m in mutations(),
        float in any::<bool>(),
        stereo in any::<bool>(),
    ) {
        let format = if float { WavSampleFormat::Float32 } else { WavSampleFormat::Pcm16 };
        let b = apply(&wav_seed(format, 1 + stereo as usize), &m);
        let _ = read_audio_from_bytes(b, Some("wav"), std::path::Path::new("fuzz.wav"));
    }

    #[test]
    fn wav_stream_reader_never_panics(m in mutations(), float in any::<bool>()) {
        let format = if float { WavSampleFormat::Float32 } else { WavSampleFormat::Pcm16 };
        let b = apply(&wav_seed(format, 2), &m);
        let raw = RawPcm { sample_rate: 16_000, channels: 1 };
        if let Ok(mut r) = PcmStreamReader::new(Cursor::new(b), raw) {
            for _ in 0..64 {
                match r.read_mono() {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
    }

    #[test]
    fn safetensors_reader_never_panics(m in mutations()) {
        let b = apply(&safetensors_seed(), &m);
        let _ = StateDict::from_safetensors_bytes(&b, "fuzz.safetensors");
    }
}

/// The small S3Tokenizer v2 graph of `tests/data/s3tokenizer`, laid out as the published one.
fn onnx_seed() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/s3tokenizer/v2.onnx");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn onnx_reader_and_s3tokenizer_mapping_never_panic(m in mutations()) {
        let b = apply(&onnx_seed(), &m);
        if let Ok(graph) = codec_core::weights::OnnxGraph::from_bytes(b, "fuzz.onnx") {
            let _ = codec_core::models::s3tokenizer::onnx::from_onnx(&graph);
        }
    }
}

/// A real PyTorch zip checkpoint from the fixtures, mutated: each case writes a temporary
/// file (the reader takes a path), so fewer cases.
fn checkpoint_seed() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/dac/weights.pth");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (the dac fixture)", path.display()))
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn checkpoint_reader_never_panics(m in mutations()) {
        let seed = checkpoint_seed();
        // Keep the mutations near the zip's directory and the pickle (its start and end),
        // where the structure is, rather than in tensor data.
        let m: Vec<Mutation> = m
            .into_iter()
            .map(|x| match x {
                Mutation::Flip { at, bit } => Mutation::Flip { at: near_structure(at, seed.len()), bit },
                Mutation::Put { at, value } => Mutation::Put { at: near_structure(at, seed.len()), value },
                other => other,
            })
            .collect();
        let b = apply(&seed, &m);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.pth");
        std::fs::write(&path, &b).unwrap();
        let _ = StateDict::load(&path);
    }
}

/// An offset within the first or last 4 KiB of a file of `len` bytes.
fn near_structure(at: usize, len: usize) -> usize {
    let window = 4096.min(len);
    if at.is_multiple_of(2) {
        at % window
    } else {
        len - 1 - at % window
    }
}
