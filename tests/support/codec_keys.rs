//! The checkpoint keys and shapes of the published EnCodec, DAC and SNAC models, built from
//! their configs the way the reference packages lay out their `state_dict`s (original layouts:
//! `encodec`'s `weight_g`/`weight_v` or `conv.norm`, DAC's `weight_g`/`weight_v`, SNAC's
//! `parametrizations.weight.original{0,1}`; codebook statistics included). With these, benches
//! build full-size models with random weights without the fixtures.
//!
//! `tests/codec_keys_from_config.rs` checks every list against the reference's key manifests
//! (`../shared/fixtures/{encodec,dac,snac}/full-*-keys.json`).
#![allow(dead_code)]

use codec::models::dac::DacConfig;
use codec::models::encodec::EncodecConfig;
use codec::models::snac::SnacConfig;
use codec::nn::ConvNorm;

type Keys = Vec<(String, Vec<usize>)>;

fn push(keys: &mut Keys, name: String, shape: &[usize]) {
    keys.push((name, shape.to_vec()));
}

/// A weight-normed convolution at `prefix` in the old spelling (`weight_g`, `weight_v`), with
/// a bias. `g` is the magnitude's length (out channels; in channels for a transposed conv).
fn wn_conv(keys: &mut Keys, prefix: &str, weight: [usize; 3], g: usize, bias: usize) {
    push(keys, format!("{prefix}.bias"), &[bias]);
    push(keys, format!("{prefix}.weight_g"), &[g, 1, 1]);
    push(keys, format!("{prefix}.weight_v"), &weight);
}

/// The same in the `torch.nn.utils.parametrizations.weight_norm` spelling; no bias when
/// `bias` is `None`.
fn param_conv(keys: &mut Keys, prefix: &str, weight: [usize; 3], g: usize, bias: Option<usize>) {
    if let Some(b) = bias {
        push(keys, format!("{prefix}.bias"), &[b]);
    }
    push(
        keys,
        format!("{prefix}.parametrizations.weight.original0"),
        &[g, 1, 1],
    );
    push(
        keys,
        format!("{prefix}.parametrizations.weight.original1"),
        &weight,
    );
}

fn snake(keys: &mut Keys, prefix: &str, channels: usize) {
    push(keys, format!("{prefix}.alpha"), &[1, channels, 1]);
}

// ---------------------------------------------------------------------------------------------
// EnCodec (`encodec` package, `EncodecModel.state_dict()`).

/// An `SConv1d` / `SConvTranspose1d` at `prefix` (`{kind}.{kind}.*`, `kind` `conv` or `convtr`).
fn encodec_conv(
    keys: &mut Keys,
    cfg: &EncodecConfig,
    prefix: &str,
    transposed: bool,
    [in_c, out_c, k]: [usize; 3],
) {
    let kind = if transposed { "convtr" } else { "conv" };
    let p = format!("{prefix}.{kind}.{kind}");
    let weight = if transposed {
        [in_c, out_c, k]
    } else {
        [out_c, in_c, k]
    };
    let g = if transposed { in_c } else { out_c };
    match cfg.seanet.norm {
        ConvNorm::WeightNorm => wn_conv(keys, &p, weight, g, out_c),
        ConvNorm::TimeGroupNorm => {
            // A plain convolution and a GroupNorm over its output.
            push(keys, format!("{p}.weight"), &weight);
            push(keys, format!("{p}.bias"), &[out_c]);
            push(keys, format!("{prefix}.{kind}.norm.weight"), &[out_c]);
            push(keys, format!("{prefix}.{kind}.norm.bias"), &[out_c]);
        }
        ConvNorm::None => {
            push(keys, format!("{p}.weight"), &weight);
            push(keys, format!("{p}.bias"), &[out_c]);
        }
    }
}

fn encodec_lstm(keys: &mut Keys, prefix: &str, layers: usize, dim: usize) {
    for l in 0..layers {
        push(
            keys,
            format!("{prefix}.lstm.weight_ih_l{l}"),
            &[4 * dim, dim],
        );
        push(
            keys,
            format!("{prefix}.lstm.weight_hh_l{l}"),
            &[4 * dim, dim],
        );
        push(keys, format!("{prefix}.lstm.bias_ih_l{l}"), &[4 * dim]);
        push(keys, format!("{prefix}.lstm.bias_hh_l{l}"), &[4 * dim]);
    }
}

fn encodec_resblock(keys: &mut Keys, cfg: &EncodecConfig, prefix: &str, dim: usize) {
    let s = &cfg.seanet;
    let hidden = dim / s.compress;
    let p = |sub: &str| format!("{prefix}.{sub}");
    encodec_conv(
        keys,
        cfg,
        &p("block.1"),
        false,
        [dim, hidden, s.residual_kernel_size],
    );
    encodec_conv(keys, cfg, &p("block.3"), false, [hidden, dim, 1]);
    if !s.true_skip {
        encodec_conv(keys, cfg, &p("shortcut"), false, [dim, dim, 1]);
    }
}

/// Every key of an EnCodec checkpoint for `cfg` (encoder, quantizer with its statistics,
/// decoder), with its shape.
pub fn encodec_keys(cfg: &EncodecConfig) -> Keys {
    let s = &cfg.seanet;
    let mut keys = Keys::new();

    // Encoder: conv, then per ratio (reversed) residual blocks, ELU, downsampling conv; LSTM,
    // ELU, final conv.
    let m = "encoder.model";
    let mut idx = 0;
    encodec_conv(
        &mut keys,
        cfg,
        &format!("{m}.{idx}"),
        false,
        [s.channels, s.n_filters, s.kernel_size],
    );
    idx += 1;
    let mut mult = 1;
    for &ratio in s.ratios.iter().rev() {
        let dim = mult * s.n_filters;
        for _ in 0..s.n_residual_layers {
            encodec_resblock(&mut keys, cfg, &format!("{m}.{idx}"), dim);
            idx += 1;
        }
        idx += 1; // ELU
        encodec_conv(
            &mut keys,
            cfg,
            &format!("{m}.{idx}"),
            false,
            [dim, 2 * dim, 2 * ratio],
        );
        idx += 1;
        mult *= 2;
    }
    let top = mult * s.n_filters;
    if s.lstm > 0 {
        encodec_lstm(&mut keys, &format!("{m}.{idx}"), s.lstm, top);
        idx += 1;
    }
    idx += 1; // ELU
    encodec_conv(
        &mut keys,
        cfg,
        &format!("{m}.{idx}"),
        false,
        [top, s.dimension, s.last_kernel_size],
    );

    for i in 0..cfg.num_quantizers {
        let p = format!("quantizer.vq.layers.{i}._codebook");
        push(&mut keys, format!("{p}.inited"), &[1]);
        push(&mut keys, format!("{p}.cluster_size"), &[cfg.codebook_size]);
        push(
            &mut keys,
            format!("{p}.embed"),
            &[cfg.codebook_size, s.dimension],
        );
        push(
            &mut keys,
            format!("{p}.embed_avg"),
            &[cfg.codebook_size, s.dimension],
        );
    }

    // Decoder: conv, LSTM, then per ratio ELU, upsampling transposed conv, residual blocks;
    // ELU, final conv.
    let m = "decoder.model";
    let mut idx = 0;
    encodec_conv(
        &mut keys,
        cfg,
        &format!("{m}.{idx}"),
        false,
        [s.dimension, top, s.kernel_size],
    );
    idx += 1;
    if s.lstm > 0 {
        encodec_lstm(&mut keys, &format!("{m}.{idx}"), s.lstm, top);
        idx += 1;
    }
    let mut dim = top;
    for &ratio in &s.ratios {
        idx += 1; // ELU
        encodec_conv(
            &mut keys,
            cfg,
            &format!("{m}.{idx}"),
            true,
            [dim, dim / 2, 2 * ratio],
        );
        idx += 1;
        dim /= 2;
        for _ in 0..s.n_residual_layers {
            encodec_resblock(&mut keys, cfg, &format!("{m}.{idx}"), dim);
            idx += 1;
        }
    }
    idx += 1; // ELU
    encodec_conv(
        &mut keys,
        cfg,
        &format!("{m}.{idx}"),
        false,
        [dim, s.channels, s.last_kernel_size],
    );
    keys
}

// ---------------------------------------------------------------------------------------------
// DAC (`descript-audio-codec`, `dac.model.DAC.state_dict()`).

/// A residual unit at `prefix`: Snake, conv k=7 (dilated), Snake, conv k=1. `depthwise`
/// (SNAC) makes the first conv grouped, one channel per group; `wn` picks the spelling.
fn residual_unit(keys: &mut Keys, prefix: &str, dim: usize, depthwise: bool, old_wn: bool) {
    snake(keys, &format!("{prefix}.block.0"), dim);
    let first_in = if depthwise { 1 } else { dim };
    let conv = |keys: &mut Keys, p: String, w: [usize; 3]| {
        if old_wn {
            wn_conv(keys, &p, w, w[0], w[0]);
        } else {
            param_conv(keys, &p, w, w[0], Some(w[0]));
        }
    };
    conv(keys, format!("{prefix}.block.1"), [dim, first_in, 7]);
    snake(keys, &format!("{prefix}.block.2"), dim);
    conv(keys, format!("{prefix}.block.3"), [dim, dim, 1]);
}

/// The factorized residual VQ shared by DAC and SNAC: `n` quantizers, projections to and from
/// `codebook_dim`.
fn factorized_vq(keys: &mut Keys, n: usize, latent: usize, size: usize, dim: usize, old_wn: bool) {
    for i in 0..n {
        let p = format!("quantizer.quantizers.{i}");
        for (name, w) in [
            ("in_proj", [dim, latent, 1]),
            ("out_proj", [latent, dim, 1]),
        ] {
            let p = format!("{p}.{name}");
            if old_wn {
                wn_conv(keys, &p, w, w[0], w[0]);
            } else {
                param_conv(keys, &p, w, w[0], Some(w[0]));
            }
        }
        push(keys, format!("{p}.codebook.weight"), &[size, dim]);
    }
}

/// Every key of a DAC checkpoint for `cfg`, with its shape.
pub fn dac_keys(cfg: &DacConfig) -> Keys {
    let mut keys = Keys::new();
    let mut d = cfg.encoder_dim;
    wn_conv(&mut keys, "encoder.block.0", [d, 1, 7], d, d);
    for (i, &stride) in cfg.encoder_rates.iter().enumerate() {
        let p = format!("encoder.block.{}", i + 1);
        for u in 0..3 {
            residual_unit(&mut keys, &format!("{p}.block.{u}"), d, false, true);
        }
        snake(&mut keys, &format!("{p}.block.3"), d);
        wn_conv(
            &mut keys,
            &format!("{p}.block.4"),
            [2 * d, d, 2 * stride],
            2 * d,
            2 * d,
        );
        d *= 2;
    }
    let n = cfg.encoder_rates.len();
    let latent = cfg.latent_dim();
    snake(&mut keys, &format!("encoder.block.{}", n + 1), d);
    wn_conv(
        &mut keys,
        &format!("encoder.block.{}", n + 2),
        [latent, d, 3],
        latent,
        latent,
    );

    factorized_vq(
        &mut keys,
        cfg.n_codebooks,
        latent,
        cfg.codebook_size,
        cfg.codebook_dim,
        true,
    );

    let mut c = cfg.decoder_dim;
    wn_conv(&mut keys, "decoder.model.0", [c, latent, 7], c, c);
    for (i, &stride) in cfg.decoder_rates.iter().enumerate() {
        let p = format!("decoder.model.{}", i + 1);
        let out = c / 2;
        snake(&mut keys, &format!("{p}.block.0"), c);
        wn_conv(
            &mut keys,
            &format!("{p}.block.1"),
            [c, out, 2 * stride],
            c,
            out,
        );
        for u in 0..3 {
            residual_unit(&mut keys, &format!("{p}.block.{}", u + 2), out, false, true);
        }
        c = out;
    }
    let n = cfg.decoder_rates.len();
    snake(&mut keys, &format!("decoder.model.{}", n + 1), c);
    wn_conv(
        &mut keys,
        &format!("decoder.model.{}", n + 2),
        [1, c, 7],
        1,
        1,
    );
    keys
}

// ---------------------------------------------------------------------------------------------
// SNAC (`snac` package, `SNAC.state_dict()`).

/// `LocalMHA` at `prefix`: LayerNorm, fused QKV and output projections (no bias), rotary
/// `inv_freq` buffer (64-dim heads, so 32 values).
fn local_mha(keys: &mut Keys, prefix: &str, dim: usize) {
    push(keys, format!("{prefix}.norm.weight"), &[dim]);
    push(keys, format!("{prefix}.norm.bias"), &[dim]);
    push(keys, format!("{prefix}.to_qkv.weight"), &[3 * dim, dim]);
    push(keys, format!("{prefix}.rel_pos.inv_freq"), &[32]);
    push(keys, format!("{prefix}.to_out.weight"), &[dim, dim]);
}

/// Every key of a SNAC checkpoint for `cfg`, with its shape.
pub fn snac_keys(cfg: &SnacConfig) -> Keys {
    let mut keys = Keys::new();
    let dw = cfg.depthwise;
    let mut d = cfg.encoder_dim;
    let mut idx = 0;
    param_conv(&mut keys, "encoder.block.0", [d, 1, 7], d, Some(d));
    idx += 1;
    for &stride in &cfg.encoder_rates {
        let p = format!("encoder.block.{idx}");
        for u in 0..3 {
            residual_unit(&mut keys, &format!("{p}.block.{u}"), d, dw, false);
        }
        snake(&mut keys, &format!("{p}.block.3"), d);
        param_conv(
            &mut keys,
            &format!("{p}.block.4"),
            [2 * d, d, 2 * stride],
            2 * d,
            Some(2 * d),
        );
        d *= 2;
        idx += 1;
    }
    if cfg.attn_window_size.is_some() {
        local_mha(&mut keys, &format!("encoder.block.{idx}"), d);
        idx += 1;
    }
    let first_in = if dw { 1 } else { d };
    param_conv(
        &mut keys,
        &format!("encoder.block.{idx}"),
        [d, first_in, 7],
        d,
        Some(d),
    );

    let latent = cfg.latent_dim();
    factorized_vq(
        &mut keys,
        cfg.vq_strides.len(),
        latent,
        cfg.codebook_size,
        cfg.codebook_dim,
        false,
    );

    let mut idx = 0;
    let c = cfg.decoder_dim;
    if dw {
        param_conv(
            &mut keys,
            "decoder.model.0",
            [latent, 1, 7],
            latent,
            Some(latent),
        );
        param_conv(&mut keys, "decoder.model.1", [c, latent, 1], c, Some(c));
        idx += 2;
    } else {
        param_conv(&mut keys, "decoder.model.0", [c, latent, 7], c, Some(c));
        idx += 1;
    }
    if cfg.attn_window_size.is_some() {
        local_mha(&mut keys, &format!("decoder.model.{idx}"), c);
        idx += 1;
    }
    let mut ch = c;
    for &stride in &cfg.decoder_rates {
        let p = format!("decoder.model.{idx}");
        let out = ch / 2;
        snake(&mut keys, &format!("{p}.block.0"), ch);
        param_conv(
            &mut keys,
            &format!("{p}.block.1"),
            [ch, out, 2 * stride],
            ch,
            Some(out),
        );
        if cfg.noise {
            param_conv(
                &mut keys,
                &format!("{p}.block.2.linear"),
                [out, out, 1],
                out,
                None,
            );
        }
        for u in 0..3 {
            residual_unit(&mut keys, &format!("{p}.block.{}", u + 3), out, dw, false);
        }
        ch = out;
        idx += 1;
    }
    snake(&mut keys, &format!("decoder.model.{idx}"), ch);
    param_conv(
        &mut keys,
        &format!("decoder.model.{}", idx + 1),
        [1, ch, 7],
        1,
        Some(1),
    );
    keys
}
