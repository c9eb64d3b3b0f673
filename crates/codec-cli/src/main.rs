//! `codec`: encode audio to discrete tokens and decode them back, with neural audio codecs.

mod commands;
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

    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        if n == 0 {
            eprintln!("error: --threads must be at least 1");
            return ExitCode::from(2);
        }
        // Must happen before the first tensor operation starts the thread pool.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    match commands::run(cli.command, &cli.device) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
