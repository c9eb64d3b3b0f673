//! S3Tokenizer from ONNX graphs, and its v1 structure, against the reference (`s3tokenizer`
//! 0.3.0) on the graphs `tests/data/s3tokenizer/make_fixtures.py` writes: tiny v1 / v2 / v3
//! models laid out as the published `speech_tokenizer_v*.onnx` (the script checks that the
//! reference's own converters read back exactly the weights it wrote). For each: the state dict
//! read here has the converter's keys and shapes, the architecture the graph implies is the
//! reference's, and the codes of the `s3tokenizer` fixture's clips equal the reference's
//! (`init_from_onnx` then `quantize`) on every frame not listed as a near-tie, v1 at 50 and
//! 25 Hz and through its 33 s long path.

mod common;

use std::path::{Path, PathBuf};

use codec_core::models::s3tokenizer::{onnx, S3Tokenizer, S3TokenizerConfig, S3Variant};
use codec_core::weights::OnnxGraph;
use codec_core::{load_model, Codec, Device, ModelSpec, Tensor};

use common::fixture_dir;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/s3tokenizer")
}

fn cases() -> serde_json::Value {
    let text = std::fs::read_to_string(data_dir().join("cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn read_wav(path: &Path) -> Vec<f32> {
    let mut r = hound::WavReader::open(path).unwrap();
    r.samples::<i16>()
        .map(|s| s.unwrap() as f32 / 32768.0)
        .collect()
}

/// The clips the generator encoded: the fixture's two 16 kHz WAVs and 6 x (a + b).
fn clip(dir: &Path, case: &str) -> Vec<f32> {
    match case {
        "long_concat" => {
            let a = clip(dir, "speech_a");
            let b = clip(dir, "speech_b_odd");
            [a, b].concat().repeat(6)
        }
        name => read_wav(&dir.join(format!("{name}.16k.wav"))),
    }
}

fn codes_of(model: &dyn Codec, samples: &[f32]) -> Vec<u32> {
    let audio = Tensor::from_vec(samples.to_vec(), (1, 1, samples.len()), &Device::Cpu).unwrap();
    model
        .encode(&audio)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Codes equal the reference's on every frame but the listed near-ties; returns how many
/// frames were compared.
fn assert_codes(what: &str, got: &[u32], case: &serde_json::Value) -> usize {
    let want: Vec<u32> = case["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let ambiguous: Vec<usize> = case["ambiguous_frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(got.len(), want.len(), "{what}: code count");
    let wrong: Vec<usize> = (0..want.len())
        .filter(|i| got[*i] != want[*i] && !ambiguous.contains(i))
        .collect();
    assert!(wrong.is_empty(), "{what}: codes differ at frames {wrong:?}");
    want.len() - ambiguous.len()
}

fn reference_config(entry: &serde_json::Value) -> S3TokenizerConfig {
    let json = serde_json::json!({
        "name": entry["reference_name"],
        "config": entry["config"],
    });
    S3TokenizerConfig::from_reference_json(&json.to_string(), "cases.json").unwrap()
}

#[test]
fn graphs_read_as_the_reference_converters_read_them() {
    let cases = cases();
    for (name, entry) in cases["models"].as_object().unwrap() {
        let path = data_dir().join(entry["file"].as_str().unwrap());
        let graph = OnnxGraph::load(&path).unwrap();
        let (state, implied) = onnx::from_onnx(&graph)
            .expect("an S3Tokenizer graph")
            .unwrap();
        // Keys and shapes: what onnx2torch / onnx2torch_v3 returned.
        let mut got: Vec<(String, Vec<usize>)> = state
            .tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.dims().to_vec()))
            .collect();
        got.sort();
        let want: Vec<(String, Vec<usize>)> = entry["keys"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let dims = v.as_array().unwrap();
                (
                    k.clone(),
                    dims.iter().map(|d| d.as_u64().unwrap() as usize).collect(),
                )
            })
            .collect();
        assert_eq!(got, want, "{name}: keys and shapes");
        // The graph's architecture: v1's 50 Hz stride is in its Conv node; the 25 Hz model is
        // the same weights with the reference's other name.
        let config = reference_config(entry);
        if name == "v1-25hz" {
            assert_eq!(implied.conv1_stride, 1);
            assert_eq!(
                S3TokenizerConfig {
                    conv1_stride: 2,
                    ..implied
                },
                config,
                "{name}"
            );
        } else {
            assert_eq!(implied, config, "{name}: architecture from the graph");
        }
        let variant = if name.starts_with("v1") {
            S3Variant::V1
        } else {
            S3Variant::V2
        };
        assert_eq!(config.variant, variant, "{name}");
    }
}

#[test]
fn codes_equal_the_reference_from_the_onnx_files() {
    let Some(dir) = fixture_dir("s3tokenizer") else {
        return;
    };
    let cases = cases();
    for (name, entry) in cases["models"].as_object().unwrap() {
        let path = data_dir().join(entry["file"].as_str().unwrap());
        let graph = OnnxGraph::load(&path).unwrap();
        let (state, _) = onnx::from_onnx(&graph).unwrap().unwrap();
        let config = reference_config(entry);
        let (model, unused) = S3Tokenizer::load(&config, state, name, &Device::Cpu).unwrap();
        assert!(unused.is_empty(), "{name}: unused keys {unused:?}");
        assert_eq!(
            model.info().frame_rate,
            16000.0 / (160 * 2 * config.conv1_stride) as f64
        );
        for (case, want) in entry["cases"].as_object().unwrap() {
            let got = codes_of(&model, &clip(&dir, case));
            let n = assert_codes(&format!("{name} {case}"), &got, want);
            eprintln!("{name} {case}: {n} codes identical");
        }
    }
}

#[test]
fn onnx_files_load_as_models() {
    let Some(dir) = fixture_dir("s3tokenizer") else {
        return;
    };
    let cases = cases();
    // `--model FILE.onnx` with nothing beside it: the architecture is the graph's (v1 at the
    // 50 Hz stride its Conv node states).
    for name in ["v1-50hz", "v2", "v3"] {
        let entry = &cases["models"][name];
        let path = data_dir().join(entry["file"].as_str().unwrap());
        let model = load_model(&ModelSpec::LocalFile(path), &Device::Cpu).unwrap();
        let want = &entry["cases"]["speech_b_odd"];
        let got = codes_of(model.as_ref(), &clip(&dir, "speech_b_odd"));
        assert_codes(name, &got, want);
        assert_eq!(model.info().family, "s3tokenizer");
        let err =
            model.decode(&Tensor::zeros((1, 1, 4), codec_core::DType::U32, &Device::Cpu).unwrap());
        assert!(err.unwrap_err().to_string().contains("encode only"));
    }
}

#[test]
fn v1_state_dicts_need_their_stride_named() {
    let graph = OnnxGraph::load(&data_dir().join("v1.onnx")).unwrap();
    let (state, _) = onnx::from_onnx(&graph).unwrap().unwrap();
    let err = codec_core::models::s3tokenizer::infer_config(&state)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("25 Hz") && err.contains("s3tokenizer-v1-25hz"),
        "{err}"
    );
    // The graph's family is found without being named, and a graph of another kind is not
    // taken for S3Tokenizer's.
    assert_eq!(
        codec_core::models::onnx_inference_weights(&graph)
            .unwrap()
            .0,
        "s3tokenizer"
    );
}
