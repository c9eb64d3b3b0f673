//! Hostile inputs through the `codec` binary: sizes read from files, outputs that could destroy
//! data, broken pipes, streams, resources from arguments, and the messages for each. Every
//! failure must be a clean error (exit status 1, no panic) that says what is wrong.

mod common;

use common::*;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use codec_core::tokfile::TokenFile;

/// A WAV file's bytes with whatever header values a test wants (PCM 16-bit or float 32-bit).
fn wav_bytes(rate: u32, channels: u16, float: bool, samples: &[f32]) -> Vec<u8> {
    let (tag, bits): (u16, u16) = if float { (3, 32) } else { (1, 16) };
    let block = channels * bits / 8;
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|&s| {
            if float {
                s.to_le_bytes().to_vec()
            } else {
                ((s.clamp(-1.0, 1.0) * 32767.0) as i16)
                    .to_le_bytes()
                    .to_vec()
            }
        })
        .collect();
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&tag.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&rate.wrapping_mul(u32::from(block)).to_le_bytes());
    h.extend_from_slice(&block.to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&(data.len() as u32).to_le_bytes());
    h.extend_from_slice(&data);
    h
}

/// The Mimi test model of `../shared/fixtures/mimi` (a causal model, for `--stream`).
fn mimi() -> PathBuf {
    fixture_dir("mimi").expect("the mimi fixture (../shared/fixtures/mimi)")
}

fn tone(n: usize) -> Vec<f32> {
    (0..n).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect()
}

/// A real token file of the default model (1 s of a tone), and its path.
fn token_file(dir: &Path) -> (PathBuf, TokenFile) {
    let wav = dir.join("tone.wav");
    std::fs::write(&wav, wav_bytes(24_000, 1, false, &tone(24_000))).unwrap();
    let tok = dir.join("tone.tok");
    assert_ok(&codec(&[&"encode", &wav, &tok]));
    let t = TokenFile::read(&tok).unwrap();
    (tok, t)
}

fn write_tok(dir: &Path, name: &str, t: &TokenFile) -> PathBuf {
    let p = dir.join(name);
    t.write(&p).unwrap();
    p
}

#[test]
fn sizes_read_from_token_files_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = token_file(dir.path());
    let out = dir.path().join("out.wav");

    let mut t = good.clone();
    t.header.original_length = 1 << 62;
    let p = write_tok(dir.path(), "long.tok", &t);
    assert_fails_with(
        &codec(&[&"decode", &p, &out]),
        &["4611686018427387904 samples", "damaged or forged"],
    );

    let mut t = good.clone();
    t.header.original_length = 0;
    let p = write_tok(dir.path(), "zero.tok", &t);
    assert_fails_with(&codec(&[&"decode", &p, &out]), &["0 samples"]);

    for rate in [1u32, 4_294_967_291] {
        let mut t = good.clone();
        t.header.original_sample_rate = rate;
        let p = write_tok(dir.path(), "rate.tok", &t);
        assert_fails_with(
            &codec(&[&"decode", &"--original-rate", &p, &out]),
            &[&format!("{rate} Hz"), "outside the supported range"],
        );
    }

    // A 1 MB file of 1-bit codes would claim 8 million frames (10 GB of audio): codebooks
    // that are not the model's are refused before anything is sized.
    let mut t = good.clone();
    t.streams[0].codebook_size = 2;
    t.streams[0].codes = vec![1; 8_000_000];
    let p = write_tok(dir.path(), "tiny-codebook.tok", &t);
    assert!(std::fs::metadata(&p).unwrap().len() < 1_100_000);
    assert_fails_with(
        &codec(&[&"decode", &"--force", &p, &out]),
        &["2 entries", "has 16"],
    );
    assert!(!out.exists());
}

/// An `.npy` header with the given shape text and dtype, and `data` after it.
fn npy(dtype: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn sizes_read_from_npy_files_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.tok");
    let import = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        codec(&[&"import-codes", &"-m", &"tinycodec-24khz", &p, &out])
    };
    // Shape product wraps around u64.
    let o = import(
        "wrap.npy",
        &npy("<i8", "(4294967296, 4294967297)", &[0; 16]),
    );
    assert_fails_with(&o, &["needs more data"]);
    // A version-2 header claiming 4 GB in a 24-byte file.
    let mut v2 = b"\x93NUMPY\x02\x00\xf0\xff\xff\xff".to_vec();
    v2.extend_from_slice(&[b' '; 12]);
    assert_fails_with(
        &import("header.npy", &v2),
        &["header claims 4294967280 bytes"],
    );
    // An out-of-range u64 code is printed exactly, not rounded through f64.
    let o = import("big.npy", &npy("<u8", "(1, 1)", &u64::MAX.to_le_bytes()));
    assert_fails_with(&o, &["18446744073709551615"]);
    assert!(!out.exists());
}

#[test]
fn sample_rates_read_from_audio_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    for rate in [1u32, 4_294_967_291] {
        let wav = dir.path().join("odd.wav");
        std::fs::write(&wav, wav_bytes(rate, 1, false, &tone(1000))).unwrap();
        let tok = dir.path().join("odd.tok");
        let o = codec(&[&"encode", &wav, &tok]);
        assert_fails_with(&o, &[&format!("{rate} Hz"), "outside the supported range"]);
        assert!(!stderr(&o).contains("shape"), "{}", stderr(&o));
        // Streams follow the same rule.
        let o = codec(&[&"encode", &"--stream", &"-m", &mimi(), &wav, &tok]);
        assert!(!o.status.success() && !stderr(&o).contains("panicked"));
    }
}

#[test]
fn an_output_that_is_an_input_is_refused_and_the_input_kept() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("in.wav");
    let bytes = wav_bytes(24_000, 1, false, &tone(24_000));
    std::fs::write(&wav, &bytes).unwrap();
    let same = dir.path().join(".").join("in.wav");
    assert_fails_with(&codec(&[&"encode", &wav, &same]), &["same file"]);
    assert_fails_with(
        &codec(&[&"encode", &"--stream", &"-m", &mimi(), &wav, &same]),
        &["same file"],
    );
    assert_eq!(std::fs::read(&wav).unwrap(), bytes);

    let (tok, _) = token_file(dir.path());
    let tok_bytes = std::fs::read(&tok).unwrap();
    assert_fails_with(&codec(&[&"decode", &tok, &tok]), &["same file"]);
    assert_fails_with(
        &codec(&[&"import-codes", &"-m", &"tinycodec-24khz", &tok, &tok]),
        &["same file"],
    );
    assert_fails_with(
        &codec(&[&"decode", &"--stream", &tok, &tok]),
        &["same file"],
    );
    assert_eq!(std::fs::read(&tok).unwrap(), tok_bytes);
}

#[test]
fn a_failed_run_leaves_an_existing_output_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (tok, _) = token_file(dir.path());
    let out = dir.path().join("out.wav");
    std::fs::write(&out, b"precious").unwrap();

    // A corrupted token file.
    let mut bytes = std::fs::read(&tok).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    let bad = dir.path().join("bad.tok");
    std::fs::write(&bad, &bytes).unwrap();
    assert_fails_with(&codec(&[&"decode", &bad, &out]), &["checksum"]);

    // A stream that stops mid-sample, and one whose frame is corrupted.
    let wav = dir.path().join("cut.wav");
    let mut w = wav_bytes(24_000, 1, false, &tone(48_000));
    w.truncate(w.len() - 1001);
    std::fs::write(&wav, &w).unwrap();
    assert_fails_with(
        &codec(&[&"encode", &"--stream", &"-m", &mimi(), &wav, &out]),
        &["truncated"],
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(names.is_empty(), "temporary files left: {names:?}");
}

#[cfg(unix)]
#[test]
fn a_full_disk_is_a_clear_error_and_keeps_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let (tok, _) = token_file(dir.path());
    let out = dir.path().join("out.wav");
    std::fs::write(&out, b"precious").unwrap();
    // A file size limit of 16 KiB stands in for a full disk (the 1 s decode is 48 KB); with
    // SIGXFSZ ignored the write fails with EFBIG, as a full disk fails with ENOSPC.
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 16; exec {} decode {} {}",
            env!("CARGO_BIN_EXE_codec"),
            tok.display(),
            out.display()
        ))
        .output()
        .unwrap();
    assert_fails_with(&o, &["out.wav", "too large"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[cfg(unix)]
#[test]
fn a_fifo_output_is_written_through_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let (tok, _) = token_file(dir.path());
    let fifo = dir.path().join("pipe.wav");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            std::fs::File::open(&fifo)
                .unwrap()
                .read_to_end(&mut bytes)
                .unwrap();
            bytes
        })
    };
    assert_ok(&codec(&[&"decode", &tok, &fifo]));
    let bytes = reader.join().unwrap();
    assert!(
        // One second at the default model's 16 kHz, 16-bit.
        bytes.starts_with(b"RIFF") && bytes.len() > 32_000,
        "{}",
        bytes.len()
    );
    let t = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(t.is_fifo(), "the FIFO was replaced");
}

#[test]
fn broken_pipes_end_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (tok, _) = token_file(dir.path());
    for args in [
        vec!["models".to_string()],
        vec!["info".into(), tok.display().to_string()],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_codec"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read a little, then hang up, as `| head -c 10` does.
        let mut out = child.stdout.take().unwrap();
        let mut first = [0u8; 10];
        let _ = out.read(&mut first);
        drop(out);
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.is_empty(), "{args:?}: {err}");
        assert!(
            matches!(o.status.code(), Some(0) | Some(141)),
            "{args:?}: {:?}",
            o.status
        );
    }
}

#[test]
fn streams_refuse_what_batch_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.stream");
    let nan = dir.path().join("nan.wav");
    std::fs::write(&nan, wav_bytes(24_000, 1, true, &[f32::NAN; 4000])).unwrap();
    assert_fails_with(
        &codec(&[&"encode", &"--stream", &"-m", &mimi(), &nan, &out]),
        &["not a finite number"],
    );
    let batch = codec(&[&"encode", &nan, &dir.path().join("nan.tok")]);
    assert_fails_with(&batch, &["not a finite number"]);
    assert!(!out.exists());
}

#[test]
fn resources_from_arguments_are_bounded() {
    let o = codec(&[&"--threads", &"5000", &"models"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("between 1 and 256"), "{}", stderr(&o));
    #[cfg(unix)]
    {
        let dir = tempfile::tempdir().unwrap();
        let start = std::time::Instant::now();
        let o = codec(&[&"encode", &"/dev/zero", &dir.path().join("z.tok")]);
        assert_fails_with(&o, &["/dev/zero", "device"]);
        assert!(
            start.elapsed().as_secs() < 10,
            "read /dev/zero for {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn token_stream_messages_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("in.wav");
    std::fs::write(&wav, wav_bytes(24_000, 1, false, &tone(24_000))).unwrap();
    let stream = dir.path().join("a.stream");
    assert_ok(&codec(&[
        &"encode",
        &"--stream",
        &"-m",
        &mimi(),
        &"--codebooks",
        &"8",
        &wav,
        &stream,
    ]));
    let mut bytes = std::fs::read(&stream).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 1; // inside the last frame
    let bad = dir.path().join("bad.stream");
    std::fs::write(&bad, &bytes).unwrap();
    let out = dir.path().join("out.wav");
    let o = codec(&[&"decode", &"--stream", &"-m", &mimi(), &bad, &out]);
    assert_fails_with(&o, &["token stream: frame", "checksum"]);
    assert!(!stderr(&o).contains("header"), "{}", stderr(&o));
    assert!(!out.exists());

    // Decoding with another model names the stream, and the CLI says what to do.
    let o = codec(&[
        &"decode",
        &"--stream",
        &"-m",
        &"tinycodec-24khz",
        &stream,
        &out,
    ]);
    assert_fails_with(&o, &["the token stream was made by model", "--force"]);
}

/// One Ogg page (CRC filled in).
fn ogg_page(header_type: u8, granule: u64, serial: u32, seq: u32, packet: &[u8]) -> Vec<u8> {
    let mut p = b"OggS\x00".to_vec();
    p.push(header_type);
    p.extend_from_slice(&granule.to_le_bytes());
    p.extend_from_slice(&serial.to_le_bytes());
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend_from_slice(&[0; 4]);
    let mut lacing = vec![255u8; packet.len() / 255];
    lacing.push((packet.len() % 255) as u8);
    p.push(lacing.len() as u8);
    p.extend_from_slice(&lacing);
    p.extend_from_slice(packet);
    // Ogg's CRC-32: polynomial 0x04c11db7, no reflection, initial 0.
    let mut crc = 0u32;
    for &b in &p {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    p[22..26].copy_from_slice(&crc.to_le_bytes());
    p
}

#[test]
fn opus_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut head = b"OpusHead\x01\x01".to_vec();
    head.extend_from_slice(&312u16.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&[0, 0, 0]);
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&4u32.to_le_bytes());
    tags.extend_from_slice(b"test");
    tags.extend_from_slice(&0u32.to_le_bytes());
    let mut file = ogg_page(2, 0, 7, 0, &head);
    file.extend(ogg_page(0, 0, 7, 1, &tags));
    file.extend(ogg_page(4, 960, 7, 2, &[0xfc, 0xff, 0xfe]));
    let p = dir.path().join("speech.opus");
    std::fs::write(&p, &file).unwrap();
    let o = codec(&[&"encode", &p, &dir.path().join("x.tok")]);
    assert_fails_with(&o, &["Opus", "convert"]);
}

#[test]
fn stdin_and_long_pipes_are_bounded_too() {
    // Audio through a pipe is read up to the input limit and decoded like a file.
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_codec"))
        .args(["encode", "/dev/stdin"])
        .arg(dir.path().join("p.tok"))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&wav_bytes(24_000, 1, false, &tone(24_000)))
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_ok(&o);
}
