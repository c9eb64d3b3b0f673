//! `codec`: encode audio to discrete tokens and decode them back, with neural audio codecs.

mod commands;
mod corpus;
mod device;
mod progress;
mod stream;

use std::process::ExitCode;

use clap::Parser;

/// Neural audio codec: audio files to discrete tokens and back.
#[derive(Parser, Debug)]
#[command(name = "codec", version, about, long_about = None)]
struct Cli {
    /// Worker threads for tensor math (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,

    /// Device to run on: cpu, cuda or metal (cuda and metal need the matching cargo feature).
    #[arg(long, global = true, default_value = "cpu")]
    device: String,

    /// Set a model-specific option, NAME=VALUE (repeatable), e.g. `--set decoder_noise=false`
    /// for SNAC's reproducible decoding; an unknown NAME lists the model's options.
    #[arg(long = "set", global = true, value_name = "NAME=VALUE")]
    options: Vec<String>,

    #[command(subcommand)]
    command: commands::Command,
}

/// The most worker threads `--threads` accepts: far more than any machine has cores, and few
/// enough that the thread pool can always be started.
const MAX_THREADS: usize = 256;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        if n == 0 || n > MAX_THREADS {
            eprintln!("error: --threads must be between 1 and {MAX_THREADS} (got {n})");
            return ExitCode::from(2);
        }
        // Must happen before the first tensor operation starts the thread pool.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let settings = commands::LoadSettings {
        device: cli.device,
        options: cli.options,
    };
    match commands::run(cli.command, &settings) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`codec models | head`): stop quietly, as Unix
        // tools do, with the status a SIGPIPE death would give.
        Err(e) if is_broken_pipe(&e) => ExitCode::from(141),
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(hint) = hint_for(&e) {
                eprintln!("  {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// What the user can do about a library error, in terms of this command's options.
fn hint_for(e: &anyhow::Error) -> Option<&'static str> {
    e.chain()
        .find_map(|cause| match cause.downcast_ref::<codec_core::Error>()? {
            codec_core::Error::ModelMismatch { .. } => {
                Some("pass --force to decode anyway, or --model to name the model it was made with")
            }
            codec_core::Error::TokenStream(codec_core::TokenFileError::NotAStream { hint })
                if !hint.is_empty() =>
            {
                Some("decode it without --stream")
            }
            codec_core::Error::Download { .. } => {
                Some("or pass --model DIR with a folder holding the model's files")
            }
            _ => None,
        })
}

/// Whether an error comes from writing to a pipe whose reader has closed it.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        let io = cause.downcast_ref::<std::io::Error>().or_else(|| {
            match cause.downcast_ref::<codec_core::Error>() {
                Some(codec_core::Error::Io { cause, .. }) => Some(cause),
                _ => None,
            }
        });
        io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
