//! The reader against the published Lyra v2 files in `../shared/fixtures/lyra/` (the op
//! inventory their fixture README lists).

use std::collections::BTreeMap;
use std::path::PathBuf;

fn fixture(name: &str) -> Option<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/lyra")
        .join(name);
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(_) if std::env::var_os("CODEC_REQUIRE_FIXTURES").is_none() => {
            eprintln!("skipping: {} not found", path.display());
            None
        }
        Err(e) => panic!("{}: {e} (CODEC_REQUIRE_FIXTURES is set)", path.display()),
    }
}

fn inventory(m: &codec_tflite::Model, subgraph: usize) -> BTreeMap<String, usize> {
    let sg = &m.subgraphs[subgraph];
    let mut counts = BTreeMap::new();
    for op in &sg.ops {
        let int8 = op
            .outputs
            .first()
            .and_then(|&o| sg.tensor(o))
            .is_some_and(|t| t.dtype == codec_tflite::DType::I8);
        let key = if int8 {
            format!("{} int8", op.code)
        } else {
            op.code.clone()
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}

#[test]
fn encoder_ops_match_the_published_inventory() {
    let Some(bytes) = fixture("soundstream_encoder.tflite") else {
        return;
    };
    let m = codec_tflite::Model::parse(&bytes).unwrap();
    let inv = inventory(&m, 0);
    assert_eq!(inv["CONV_2D"], 16);
    assert_eq!(inv["CONV_2D int8"], 7);
    assert_eq!(inv["DEPTHWISE_CONV_2D"], 7);
    assert_eq!(inv["DEPTHWISE_CONV_2D int8"], 2);
    assert_eq!(inv["QUANTIZE int8"], 6);
    assert_eq!(inv["DEQUANTIZE"], 10);
    assert_eq!(
        m.signature("serving_default").unwrap().inputs[0].0,
        "input_audio"
    );
}

#[test]
fn generator_and_quantizer_parse() {
    let Some(gen) = fixture("lyragan.tflite") else {
        return;
    };
    let m = codec_tflite::Model::parse(&gen).unwrap();
    assert_eq!(
        inventory(&m, 0)["TRANSPOSE_CONV"] + inventory(&m, 0)["TRANSPOSE_CONV int8"],
        8
    );
    let Some(q) = fixture("quantizer.tflite") else {
        return;
    };
    let m = codec_tflite::Model::parse(&q).unwrap();
    assert!(m.signature("encode").is_some() && m.signature("decode").is_some());
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let Some(bytes) = fixture("quantizer.tflite") else {
        return;
    };
    for cut in (0..bytes.len()).step_by(997) {
        assert!(
            codec_tflite::Model::parse(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}
