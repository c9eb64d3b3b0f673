//! Encode an audio file to tokens and decode it back, through the library.
//!
//! ```text
//! cargo run --release --example encode_decode -- MODEL IN.wav OUT.wav
//! cargo run --release --example encode_decode -- ../shared/fixtures/wavtokenizer \
//!     ../shared/fixtures/wavtokenizer/speech_a.wav /tmp/rec.wav
//! ```

use codec::audio::{self, WavSampleFormat};
use codec::pipeline::{self, DecodeOptions};
use codec::{load_model, Device, ModelSpec};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, input, output] = args.as_slice() else {
        anyhow::bail!("usage: encode_decode MODEL IN_AUDIO OUT.wav");
    };
    let model = load_model(&ModelSpec::parse(model)?, &Device::Cpu)?;
    let clip = audio::read_audio(input)?;
    let encoded = pipeline::encode_audio(model.as_ref(), &clip)?;
    println!(
        "{} frames of {} codebook(s) at {} frames/s",
        encoded.num_frames(),
        encoded.tokens.streams.len(),
        model.info().frame_rate
    );
    let decoded =
        pipeline::decode_tokens(model.as_ref(), &encoded.tokens, &DecodeOptions::default())?;
    audio::write_wav(output, &decoded, WavSampleFormat::Pcm16)?;
    println!("wrote {output}");
    Ok(())
}
