//! The same Mimi weights in the Hugging Face transformers layout (kyutai/mimi's
//! `model.safetensors`) and in moshi's give identical codes and audio: the fixture's moshi
//! state dict is converted here the way transformers' `convert_mimi_checkpoint_to_pytorch.py`
//! does it (substring renames, `in_projs.0.weight` split into `q_proj`/`k_proj`/`v_proj` with the
//! queries and keys permuted for `rotate_half` RoPE), and the loader maps it back.

mod common;

use std::collections::HashMap;
use std::path::Path;

use codec_core::models::mimi::{self, Mimi, MimiConfig};
use codec_core::weights::StateDict;
use codec_core::{Codec, Device, EncodeOptions, Tensor};

/// transformers' `convert_list`, applied in order to every key containing the pattern.
const CONVERT: &[(&str, &str)] = &[
    ("conv.conv.conv", "conv"),
    ("convtr.convtr.convtr", "conv"),
    ("conv.conv", "conv"),
    ("convtr.convtr", "conv"),
    (
        "quantizer.rvq_first.vq",
        "quantizer.semantic_residual_vector_quantizer",
    ),
    (
        "quantizer.rvq_first",
        "quantizer.semantic_residual_vector_quantizer",
    ),
    (
        "quantizer.rvq_rest.vq",
        "quantizer.acoustic_residual_vector_quantizer",
    ),
    (
        "quantizer.rvq_rest",
        "quantizer.acoustic_residual_vector_quantizer",
    ),
    ("_codebook", "codebook"),
    ("_initialized", "initialized"),
    ("embedding_sum", "embed_sum"),
    ("encoder.model", "encoder.layers"),
    ("decoder.model", "decoder.layers"),
    ("encoder_transformer.transformer", "encoder_transformer"),
    ("decoder_transformer.transformer", "decoder_transformer"),
    ("linear1", "mlp.fc1"),
    ("linear2", "mlp.fc2"),
    ("self_attn.out_projs.0", "self_attn.o_proj"),
    ("norm1", "input_layernorm"),
    ("norm2", "post_attention_layernorm"),
    ("layer_scale_1", "self_attn_layer_scale"),
    ("layer_scale_2", "mlp_layer_scale"),
];

/// The script's `permute` for "sliced rotary": each head's rows from RoPE pairs to halves.
fn permute(w: &Tensor, heads: usize) -> Tensor {
    let (rows, cols) = w.dims2().unwrap();
    w.reshape((heads, rows / heads / 2, 2, cols))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((rows, cols))
        .unwrap()
}

fn to_transformers(state: &StateDict, heads: usize) -> StateDict {
    let mut tensors = HashMap::new();
    for (k, v) in &state.tensors {
        let mut name = k.clone();
        for (old, new) in CONVERT {
            if name.contains(old) {
                name = name.replace(old, new);
            }
        }
        if let Some(prefix) = name.strip_suffix("self_attn.in_projs.0.weight") {
            let d = v.dim(0).unwrap() / 3;
            let part = |i: usize| v.narrow(0, i * d, d).unwrap();
            tensors.insert(
                format!("{prefix}self_attn.q_proj.weight"),
                permute(&part(0), heads),
            );
            tensors.insert(
                format!("{prefix}self_attn.k_proj.weight"),
                permute(&part(1), heads),
            );
            tensors.insert(format!("{prefix}self_attn.v_proj.weight"), part(2));
        } else {
            tensors.insert(name, v.clone());
        }
    }
    StateDict {
        source: "fixture in the transformers layout".into(),
        tensors,
    }
}

fn read_wav_i16(path: &Path) -> Vec<f32> {
    let mut r = hound::WavReader::open(path).unwrap();
    r.samples::<i16>()
        .map(|s| s.unwrap() as f32 / 32768.0)
        .collect()
}

#[test]
fn both_layouts_give_the_same_codes_and_audio() {
    let Some(dir) = common::fixture_dir("mimi") else {
        return;
    };
    let json = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let cfg = MimiConfig::from_reference_json(&json, "config.json").unwrap();
    let moshi = StateDict::load(&dir.join("model.safetensors")).unwrap();
    let hf = to_transformers(&moshi, cfg.transformer.num_heads);
    assert!(mimi::is_hf_layout(&hf) && !mimi::is_hf_layout(&moshi));
    assert!(hf
        .tensors
        .keys()
        .any(|k| k.ends_with("self_attn.q_proj.weight")));
    assert!(hf
        .tensors
        .keys()
        .all(|k| !k.contains("_codebook") && !k.contains(".model.")));
    assert!(mimi::looks_like_mimi(&hf));

    let (a, unused_a) = Mimi::load(&cfg, moshi, "moshi", &Device::Cpu).unwrap();
    let (b, unused_b) = Mimi::load(&cfg, hf, "transformers", &Device::Cpu).unwrap();
    assert!(unused_a.is_empty() && unused_b.is_empty(), "{unused_b:?}");
    // The same weights: the same fingerprint.
    assert_eq!(a.info().fingerprint, b.info().fingerprint);

    let samples = read_wav_i16(&dir.join("speech_b_odd.wav"));
    let n = samples.len();
    let audio = Tensor::from_vec(samples, (1, 1, n), &Device::Cpu).unwrap();
    let opts = EncodeOptions::new(Some(8));
    let ca = a.encode_with(&audio, &opts).unwrap().stacked().unwrap();
    let cb = b.encode_with(&audio, &opts).unwrap().stacked().unwrap();
    let rows = |t: &Tensor| t.to_vec3::<u32>().unwrap();
    assert_eq!(rows(&ca), rows(&cb), "codes");
    let da = a
        .decode(&ca)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let db = b
        .decode(&ca)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(da, db, "audio");
    println!(
        "transformers layout: {} frames x 8 codes and {} samples identical",
        ca.dim(2).unwrap(),
        da.len()
    );
}
