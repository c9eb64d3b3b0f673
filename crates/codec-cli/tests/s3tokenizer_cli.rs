//! End-to-end tests of the `codec` binary with the S3Tokenizer fixture
//! (`../shared/fixtures/s3tokenizer`: model.pt + the reference's config.json): codes as `.npy`
//! and `.tok` equal the reference's, decoding says it is not there (encode only). From ONNX
//! graphs (`tests/data/s3tokenizer`, laid out as the published ones): `--model FILE.onnx`, v1
//! included, `codec convert` of a graph, and the cards reaching their hub ONNX file.

mod common;

use common::*;

use codec_core::npy::read_npy;
use codec_core::tokfile::TokenFile;

#[test]
fn encode_gives_reference_codes_and_decode_says_encode_only() {
    let Some(dir) = fixture_dir("s3tokenizer") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for case in ["speech_a", "speech_b_odd"] {
        let wav = dir.join(format!("{case}.16k.wav"));
        let want = read_npy(&dir.join(format!("{case}.codes.npy"))).unwrap();
        let ambiguous = ambiguous_frames(&dir, case, "");
        let npy = tmp.path().join(format!("{case}.npy"));
        assert_ok(&codec(&[
            &"encode",
            &"--model",
            &dir,
            &"--format",
            &"npy",
            &wav,
            &npy,
        ]));
        let got = read_npy(&npy).unwrap();
        assert_eq!(got.shape, want.shape, "{case}");
        let differ: Vec<usize> = (0..want.values.len())
            .filter(|&t| got.values[t] != want.values[t] && !ambiguous.contains(&t))
            .collect();
        assert!(differ.is_empty(), "{case}: codes differ at {differ:?}");

        let tok = tmp.path().join(format!("{case}.tok"));
        assert_ok(&codec(&[&"encode", &"--model", &dir, &wav, &tok]));
        let t = TokenFile::read(&tok).unwrap();
        assert_eq!(t.streams.len(), 1);
        assert_eq!(
            (t.streams[0].codebook_size, t.streams[0].frame_rate),
            (6561, 25.0)
        );
        let codes: Vec<f64> = t.streams[0].codes.iter().map(|&c| c as f64).collect();
        assert_eq!(
            codes, got.values,
            "{case}: the token file holds the same codes"
        );

        let out = tmp.path().join(format!("{case}.wav"));
        let o = codec(&[&"decode", &"--model", &dir, &tok, &out]);
        assert_fails_with(&o, &["encode only", "CosyVoice"]);
        assert!(!out.exists(), "a refused decode writes nothing");
    }
}

fn onnx_data() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/s3tokenizer")
}

/// The reference's codes for a generated graph and clip, and the frames that are near-ties.
fn onnx_case(model: &str, case: &str) -> (Vec<f64>, Vec<usize>) {
    let text = std::fs::read_to_string(onnx_data().join("cases.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let c = &json["models"][model]["cases"][case];
    let ints = |v: &serde_json::Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    };
    (
        ints(&c["codes"]).into_iter().map(|x| x as f64).collect(),
        ints(&c["ambiguous_frames"])
            .into_iter()
            .map(|x| x as usize)
            .collect(),
    )
}

fn assert_codes(what: &str, got: &[f64], (want, ambiguous): &(Vec<f64>, Vec<usize>)) {
    assert_eq!(got.len(), want.len(), "{what}: code count");
    let differ: Vec<usize> = (0..want.len())
        .filter(|&t| got[t] != want[t] && !ambiguous.contains(&t))
        .collect();
    assert!(differ.is_empty(), "{what}: codes differ at {differ:?}");
}

#[test]
fn onnx_graphs_encode_and_convert() {
    let Some(dir) = fixture_dir("s3tokenizer") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let wav = dir.join("speech_b_odd.16k.wav");
    // The codes `codec encode --format npy` gives with `model`.
    let encode_npy = |model: &std::path::Path, name: &str| {
        let npy = tmp.path().join(format!("{name}.npy"));
        assert_ok(&codec(&[
            &"encode",
            &"--model",
            &model,
            &"--format",
            &"npy",
            &wav,
            &npy,
        ]));
        read_npy(&npy).unwrap().values
    };
    // v1 (50 Hz, its Conv node's stride) straight from the graph.
    let graph = onnx_data().join("v1.onnx");
    let got = encode_npy(&graph, "v1");
    assert_codes("v1.onnx", &got, &onnx_case("v1-50hz", "speech_b_odd"));
    let tok = tmp.path().join("v1.tok");
    assert_ok(&codec(&[&"encode", &"--model", &graph, &wav, &tok]));
    let t = TokenFile::read(&tok).unwrap();
    assert_eq!(
        (t.streams[0].codebook_size, t.streams[0].frame_rate),
        (512, 50.0)
    );
    // `codec convert` turns a v2 graph into safetensors that encode the same.
    let converted = tmp.path().join("v2.safetensors");
    assert_ok(&codec(&[
        &"convert",
        &onnx_data().join("v2.onnx"),
        &converted,
    ]));
    let got = encode_npy(&converted, "v2");
    assert_codes("converted v2", &got, &onnx_case("v2", "speech_b_odd"));
}

#[test]
fn the_cards_read_their_published_onnx_files() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("a.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for i in 0..16000 {
        w.write_sample(((i % 100) * 100) as i16).unwrap();
    }
    w.finalize().unwrap();
    let tok = tmp.path().join("a.tok");
    let run = |card: &str, hf_home: &std::path::Path| {
        codec_with_hub_cache(&[&"encode", &"--model", &card, &wav, &tok], hf_home)
    };
    // Offline with nothing cached: the error names the repo and the file.
    let empty = tmp.path().join("empty");
    let o = run("s3tokenizer-v2", &empty);
    assert_fails_with(
        &o,
        &["FunAudioLLM/CosyVoice2-0.5B", "speech_tokenizer_v2.onnx"],
    );
    let o = run("s3tokenizer-v1-25hz", &empty);
    assert_fails_with(
        &o,
        &[
            "FunAudioLLM/CosyVoice-300M-25Hz",
            "speech_tokenizer_v1.onnx",
        ],
    );
    // A cached file is read as an ONNX graph with the card's (published) architecture: the
    // small test graph stands in for it, so the load stops at its first misshaped weight.
    let cache = tmp.path().join("cache");
    hub_cache(
        &cache,
        "FunAudioLLM/CosyVoice2-0.5B",
        "speech_tokenizer_v2.onnx",
        &onnx_data().join("v2.onnx"),
    );
    let o = run("s3tokenizer-v2", &cache);
    assert_fails_with(&o, &["speech_tokenizer_v2.onnx", "encoder.conv1.weight"]);
}
