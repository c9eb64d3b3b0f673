//! The checkpoint keys and shapes of a WavTokenizer generator, built from its config the way
//! the reference implementation lays out its Lightning `state_dict` (weight-normed SEANet
//! convolutions as `weight_g` / `weight_v`, codebook statistics included). The SEANet decoder
//! and the training-only modules are left out: inference does not read them.
//!
//! `tests/wavtokenizer_full_keys.rs` checks this list against the reference's key manifests,
//! so that benches can build full-size models without the fixtures.
#![allow(dead_code)]

use codec::models::wavtokenizer::WavTokenizerConfig;

type Keys = Vec<(String, Vec<usize>)>;

fn push(keys: &mut Keys, name: String, shape: &[usize]) {
    keys.push((name, shape.to_vec()));
}

/// A weight-normed `SConv1d` at `prefix` (`prefix.conv.conv.{bias,weight_g,weight_v}`).
fn sconv(keys: &mut Keys, prefix: &str, in_c: usize, out_c: usize, kernel: usize) {
    let p = format!("{prefix}.conv.conv");
    push(keys, format!("{p}.bias"), &[out_c]);
    push(keys, format!("{p}.weight_g"), &[out_c, 1, 1]);
    push(keys, format!("{p}.weight_v"), &[out_c, in_c, kernel]);
}

/// A plain `nn.Conv1d` / `nn.Linear` / norm at `prefix`.
fn param(keys: &mut Keys, prefix: &str, weight: &[usize], bias: usize) {
    push(keys, format!("{prefix}.weight"), weight);
    push(keys, format!("{prefix}.bias"), &[bias]);
}

/// Every inference key of a WavTokenizer checkpoint for `cfg`, with its shape.
pub fn wavtokenizer_keys(cfg: &WavTokenizerConfig) -> Keys {
    let mut keys = Keys::new();

    // SEANet encoder (`feature_extractor.encodec.encoder.model.N`).
    let enc = &cfg.encoder;
    let m = "feature_extractor.encodec.encoder.model";
    let mut idx = 0;
    sconv(
        &mut keys,
        &format!("{m}.{idx}"),
        enc.channels,
        enc.n_filters,
        enc.kernel_size,
    );
    idx += 1;
    let mut mult = 1;
    for &ratio in enc.ratios.iter().rev() {
        let dim = mult * enc.n_filters;
        for _ in 0..enc.n_residual_layers {
            let hidden = dim / enc.compress;
            let p = format!("{m}.{idx}");
            sconv(
                &mut keys,
                &format!("{p}.block.1"),
                dim,
                hidden,
                enc.residual_kernel_size,
            );
            sconv(&mut keys, &format!("{p}.block.3"), hidden, dim, 1);
            if !enc.true_skip {
                sconv(&mut keys, &format!("{p}.shortcut"), dim, dim, 1);
            }
            idx += 1;
        }
        idx += 1; // ELU
        sconv(&mut keys, &format!("{m}.{idx}"), dim, 2 * dim, 2 * ratio);
        idx += 1;
        mult *= 2;
    }
    let dim = mult * enc.n_filters;
    if enc.lstm > 0 {
        let p = format!("{m}.{idx}.lstm");
        for l in 0..enc.lstm {
            push(&mut keys, format!("{p}.weight_ih_l{l}"), &[4 * dim, dim]);
            push(&mut keys, format!("{p}.weight_hh_l{l}"), &[4 * dim, dim]);
            push(&mut keys, format!("{p}.bias_ih_l{l}"), &[4 * dim]);
            push(&mut keys, format!("{p}.bias_hh_l{l}"), &[4 * dim]);
        }
        idx += 1;
    }
    idx += 1; // ELU
    sconv(
        &mut keys,
        &format!("{m}.{idx}"),
        dim,
        enc.dimension,
        enc.last_kernel_size,
    );

    // Quantizer, with the k-means/EMA statistics a checkpoint carries.
    for i in 0..cfg.num_quantizers {
        let p = format!("feature_extractor.encodec.quantizer.vq.layers.{i}._codebook");
        push(&mut keys, format!("{p}.inited"), &[1]);
        push(&mut keys, format!("{p}.cluster_size"), &[cfg.codebook_size]);
        push(
            &mut keys,
            format!("{p}.embed"),
            &[cfg.codebook_size, enc.dimension],
        );
        push(
            &mut keys,
            format!("{p}.embed_avg"),
            &[cfg.codebook_size, enc.dimension],
        );
    }

    // Vocos backbone.
    let bb = &cfg.backbone;
    let d = bb.dim;
    let norm = |keys: &mut Keys, p: &str| match bb.adanorm_num_embeddings {
        Some(n) => {
            push(keys, format!("{p}.scale.weight"), &[n, d]);
            push(keys, format!("{p}.shift.weight"), &[n, d]);
        }
        None => param(keys, p, &[d], d),
    };
    param(&mut keys, "backbone.embed", &[d, bb.input_channels, 7], d);
    norm(&mut keys, "backbone.norm");
    for i in 0..bb.num_layers {
        let p = format!("backbone.convnext.{i}");
        push(&mut keys, format!("{p}.gamma"), &[d]);
        param(&mut keys, &format!("{p}.dwconv"), &[d, 1, 7], d);
        norm(&mut keys, &format!("{p}.norm"));
        param(
            &mut keys,
            &format!("{p}.pwconv1"),
            &[bb.intermediate_dim, d],
            bb.intermediate_dim,
        );
        param(
            &mut keys,
            &format!("{p}.pwconv2"),
            &[d, bb.intermediate_dim],
            d,
        );
    }
    param(&mut keys, "backbone.final_layer_norm", &[d], d);
    if bb.pos_net {
        for i in [0, 1, 3, 4] {
            let p = format!("backbone.pos_net.{i}");
            param(&mut keys, &format!("{p}.norm1"), &[d], d);
            param(&mut keys, &format!("{p}.conv1"), &[d, d, 3], d);
            param(&mut keys, &format!("{p}.norm2"), &[d], d);
            param(&mut keys, &format!("{p}.conv2"), &[d, d, 3], d);
        }
        let p = "backbone.pos_net.2";
        param(&mut keys, &format!("{p}.norm"), &[d], d);
        for q in ["q", "k", "v", "proj_out"] {
            param(&mut keys, &format!("{p}.{q}"), &[d, d, 1], d);
        }
        param(&mut keys, "backbone.pos_net.5", &[d], d);
    }

    // iSTFT head.
    let h = &cfg.head;
    param(&mut keys, "head.out", &[h.n_fft + 2, h.dim], h.n_fft + 2);
    push(&mut keys, "head.istft.window".into(), &[h.n_fft]);
    keys
}
