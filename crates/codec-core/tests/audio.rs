//! Audio front-end: reading every WAV flavour, errors for bad files, writing, resampling and
//! mono preparation. All inputs are generated here (with hound) in temporary folders; the real
//! files of `../shared/audio` (beside the repository) are used when present.

use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use codec_core::audio::{
    prepare_mono, read_audio, read_audio_from_bytes, resample, write_wav, AudioClip,
    WavSampleFormat,
};
use codec_core::Error;

fn wav_spec(channels: u16, rate: u32, bits: u16, float: bool) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    }
}

/// Write interleaved integer samples with hound.
fn write_int_wav(path: &Path, spec: hound::WavSpec, interleaved: &[i32]) {
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in interleaved {
        match spec.bits_per_sample {
            8 => w.write_sample(s as i8).unwrap(),
            16 => w.write_sample(s as i16).unwrap(),
            _ => w.write_sample(s).unwrap(),
        }
    }
    w.finalize().unwrap();
}

fn sine(freq: f64, rate: u32, len: usize, amplitude: f64) -> Vec<f32> {
    (0..len)
        .map(|i| (amplitude * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

/// Integer test values for a bit depth: both extremes, around zero, and a few in between.
fn int_values(bits: u16) -> Vec<i32> {
    let max = ((1i64 << (bits - 1)) - 1) as i32;
    let min = (-(1i64 << (bits - 1))) as i32;
    vec![
        min,
        min + 1,
        -12345 % max,
        -1,
        0,
        1,
        99 % max,
        max / 3,
        max - 1,
        max,
    ]
}

#[test]
fn integer_wavs_read_back_scaled_by_two_to_the_bits_minus_one() {
    let dir = tempfile::tempdir().unwrap();
    for bits in [8u16, 16, 24, 32] {
        let values = int_values(bits);
        let path = dir.path().join(format!("int{bits}.wav"));
        write_int_wav(&path, wav_spec(1, 16000, bits, false), &values);
        let clip = read_audio(&path).unwrap();
        assert_eq!(clip.sample_rate, 16000);
        assert_eq!(clip.num_channels(), 1);
        let scale = (1i64 << (bits - 1)) as f64;
        let expected: Vec<f32> = values
            .iter()
            .map(|&v| (f64::from(v) / scale) as f32)
            .collect();
        assert_eq!(clip.channels[0], expected, "{bits}-bit");
        assert_eq!(clip.channels[0][0], -1.0, "{bits}-bit minimum is -1");
    }
}

#[test]
fn sixteen_bit_is_exactly_int16_over_32768() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all16.wav");
    let values: Vec<i32> = (i16::MIN..=i16::MAX).map(i32::from).collect();
    write_int_wav(&path, wav_spec(1, 24000, 16, false), &values);
    let clip = read_audio(&path).unwrap();
    for (&v, &x) in values.iter().zip(&clip.channels[0]) {
        assert_eq!(x, v as f32 / 32768.0);
    }
}

#[test]
fn float32_wav_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("float.wav");
    let values = [0.0f32, -1.0, 1.0, 0.123_456_79, -0.5, 1.5, -1e-7];
    let mut w = hound::WavWriter::create(&path, wav_spec(1, 22050, 32, true)).unwrap();
    for &v in &values {
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
    let clip = read_audio(&path).unwrap();
    assert_eq!(clip.sample_rate, 22050);
    assert_eq!(clip.channels, vec![values.to_vec()]);
}

#[test]
fn multichannel_extensible_wav_is_deinterleaved() {
    // hound writes WAVE_FORMAT_EXTENSIBLE for more than two channels.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("three.wav");
    let frames = 50;
    let interleaved: Vec<i32> = (0..frames).flat_map(|i| [i * 1000, -i * 1000, 7]).collect();
    write_int_wav(&path, wav_spec(3, 48000, 24, false), &interleaved);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        u16::from_le_bytes([bytes[20], bytes[21]]),
        0xFFFE,
        "extensible"
    );
    let clip = read_audio(&path).unwrap();
    assert_eq!(clip.num_channels(), 3);
    assert_eq!(clip.num_frames(), frames as usize);
    let s = 1.0 / 8_388_608.0;
    for i in 0..frames as usize {
        assert_eq!(clip.channels[0][i], (i * 1000) as f32 * s);
        assert_eq!(clip.channels[1][i], -((i * 1000) as f32) * s);
        assert_eq!(clip.channels[2][i], 7.0 * s);
    }
}

/// A 64-bit float WAV (hound rejects its header) is read through the symphonia fallback.
#[test]
fn wav_that_hound_rejects_falls_back_to_symphonia() {
    let values = [0.25f64, -0.5, 0.75, -1.0];
    let mut bytes = Vec::new();
    let data_len = (values.len() * 8) as u32;
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(4 + 8 + 16 + 8 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    bytes.extend_from_slice(&1u16.to_le_bytes()); // channels
    bytes.extend_from_slice(&8000u32.to_le_bytes()); // rate
    bytes.extend_from_slice(&(8000u32 * 8).to_le_bytes()); // byte rate
    bytes.extend_from_slice(&8u16.to_le_bytes()); // block align
    bytes.extend_from_slice(&64u16.to_le_bytes()); // bits
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let clip = read_audio_from_bytes(bytes, Some("wav"), Path::new("f64.wav")).unwrap();
    assert_eq!(clip.sample_rate, 8000);
    assert_eq!(clip.channels, vec![vec![0.25f32, -0.5, 0.75, -1.0]]);
}

/// A WAV written to a pipe leaves 0xFFFFFFFF in its size fields: hound rejects it, the fallback
/// reads every sample present.
#[test]
fn streamed_wav_with_placeholder_sizes_reads_all_samples() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streamed.wav");
    let values: Vec<i32> = (0..1001).map(|i| i * 31 - 15000).collect();
    write_int_wav(&path, wav_spec(1, 16000, 16, false), &values);
    let mut bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[36..40], b"data");
    bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    bytes[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let clip = read_audio(&path).unwrap();
    let expected: Vec<f32> = values.iter().map(|&v| v as f32 / 32768.0).collect();
    assert_eq!(clip.channels, vec![expected]);
}

#[test]
fn stereo_input_is_mixed_to_mono_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stereo.wav");
    let interleaved = [1000, 3000, -2000, 2000, 32767, -32768];
    write_int_wav(&path, wav_spec(2, 24000, 16, false), &interleaved);
    let clip = read_audio(&path).unwrap();
    assert_eq!(clip.num_channels(), 2);
    assert_eq!(
        clip.channels[0],
        vec![1000.0 / 32768.0, -2000.0 / 32768.0, 32767.0 / 32768.0]
    );
    let prepared = prepare_mono(&clip, 24000).unwrap();
    assert_eq!(
        prepared.samples,
        vec![2000.0 / 32768.0, 0.0, -0.5 / 32768.0]
    );
    assert_eq!(prepared.sample_rate, 24000);
    assert_eq!(prepared.original_sample_rate, 24000);
    assert_eq!(prepared.original_length, 3);
    assert_eq!(prepared.notes.len(), 1);
    assert!(
        prepared.notes[0].contains("mixed 2 channels down to mono"),
        "{:?}",
        prepared.notes
    );
}

#[test]
fn resampled_input_keeps_original_rate_and_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("16k.wav");
    let tone = sine(440.0, 16000, 16001, 0.5);
    let ints: Vec<i32> = tone.iter().map(|&x| (x * 32767.0).round() as i32).collect();
    write_int_wav(&path, wav_spec(1, 16000, 16, false), &ints);
    let clip = read_audio(&path).unwrap();
    let prepared = prepare_mono(&clip, 24000).unwrap();
    assert_eq!(prepared.sample_rate, 24000);
    assert_eq!(prepared.original_sample_rate, 16000);
    assert_eq!(prepared.original_length, 16001);
    assert_eq!(prepared.samples.len(), 24002); // round(16001 * 1.5 = 24001.5)
    assert!(prepared
        .notes
        .iter()
        .any(|n| n.contains("16000 Hz to 24000 Hz")));
    // And back: the original rate and length are restored.
    let back = resample(&prepared.samples, 24000, prepared.original_sample_rate).unwrap();
    assert_eq!(back.len(), 16001); // round(24002 / 1.5 = 16001.3)
    let err: f64 = back[200..15800]
        .iter()
        .zip(&clip.channels[0][200..15800])
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    let sig: f64 = clip.channels[0][200..15800]
        .iter()
        .map(|&x| f64::from(x).powi(2))
        .sum();
    assert!(10.0 * (sig / err).log10() > 40.0);
}

/// SNR (dB) of `y` against an ideal sine at `freq` sampled at `rate`, skipping `margin` samples
/// at both ends, plus the normalised correlation.
fn sine_fit(y: &[f32], freq: f64, rate: u32, amplitude: f64, margin: usize) -> (f64, f64) {
    let (mut sig, mut err, mut dot, mut yy) = (0.0, 0.0, 0.0, 0.0);
    for (k, &v) in y.iter().enumerate().take(y.len() - margin).skip(margin) {
        let ideal = amplitude * (2.0 * PI * freq * k as f64 / f64::from(rate)).sin();
        let v = f64::from(v);
        sig += ideal * ideal;
        err += (v - ideal) * (v - ideal);
        dot += v * ideal;
        yy += v * v;
    }
    (10.0 * (sig / err).log10(), dot / (sig * yy).sqrt())
}

#[test]
fn resampled_sine_stays_an_aligned_sine() {
    for from in [44100u32, 16000, 48000, 22050, 8000] {
        let x = sine(1000.0, from, from as usize, 0.8); // one second
        let y = resample(&x, from, 24000).unwrap();
        assert_eq!(y.len(), 24000, "{from} Hz");
        let (snr, corr) = sine_fit(&y, 1000.0, 24000, 0.8, 500);
        assert!(snr > 40.0, "{from} -> 24000: SNR {snr:.1} dB");
        assert!(corr > 0.9999, "{from} -> 24000: correlation {corr}");
    }
    // Lengths round to nearest.
    assert_eq!(resample(&[0.0; 441], 44100, 24000).unwrap().len(), 240);
    assert_eq!(resample(&[0.0; 1001], 44100, 24000).unwrap().len(), 545); // 544.76
}

#[test]
fn downsampling_removes_content_above_the_new_nyquist() {
    // 10 kHz cannot be represented at 16 kHz: it must be filtered out, not aliased to 6 kHz.
    let x = sine(10_000.0, 44100, 44100, 0.8);
    let y = resample(&x, 44100, 16000).unwrap();
    let energy: f64 = y[1000..15000].iter().map(|&v| f64::from(v).powi(2)).sum();
    let input_energy = 0.32 * 14000.0;
    assert!(
        10.0 * (input_energy / energy).log10() > 60.0,
        "alias only {:.1} dB down",
        10.0 * (input_energy / energy).log10()
    );
}

#[test]
fn identity_resampling_returns_input_unchanged() {
    let x = sine(123.0, 24000, 1000, 0.3);
    assert_eq!(resample(&x, 24000, 24000).unwrap(), x);
}

#[test]
fn empty_wav_is_empty_audio() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.wav");
    write_int_wav(&path, wav_spec(1, 16000, 16, false), &[]);
    match read_audio(&path) {
        Err(Error::EmptyAudio { path: p }) => assert_eq!(p, path),
        other => panic!("expected EmptyAudio, got {other:?}"),
    }
}

fn expect_audio_read(result: codec_core::Result<AudioClip>, path: &Path) -> String {
    match result {
        Err(e @ Error::AudioRead { .. }) => {
            let Error::AudioRead { path: p, reason } = &e else {
                unreachable!()
            };
            assert_eq!(p, path);
            assert!(e.to_string().contains(&path.display().to_string()));
            reason.clone()
        }
        Ok(clip) => panic!(
            "expected AudioRead for {}, got {} frames of {} channels at {} Hz",
            path.display(),
            clip.num_frames(),
            clip.num_channels(),
            clip.sample_rate
        ),
        Err(other) => panic!("expected AudioRead for {}, got {other:?}", path.display()),
    }
}

#[test]
fn non_audio_files_are_audio_read_errors() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["notes.wav", "notes.mp3", "notes.flac", "notes.ogg", "notes"] {
        let path = dir.path().join(name);
        std::fs::write(&path, "This is a text file, not audio.\nSecond line.\n").unwrap();
        let reason = expect_audio_read(read_audio(&path), &path);
        assert!(reason.contains("not a recognised audio file"), "{reason}");
        assert!(reason.contains("text file"), "{reason}");
    }
    // Binary junk and a zero-byte file.
    let path = dir.path().join("junk.wav");
    std::fs::write(
        &path,
        (0..4096u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    expect_audio_read(read_audio(&path), &path);
    let path = dir.path().join("zero.wav");
    std::fs::write(&path, b"").unwrap();
    let reason = expect_audio_read(read_audio(&path), &path);
    assert!(reason.contains("empty"), "{reason}");
    // A RIFF/WAVE header with nothing usable after it.
    let path = dir.path().join("header-only.wav");
    std::fs::write(&path, b"RIFF\x04\x00\x00\x00WAVE").unwrap();
    expect_audio_read(read_audio(&path), &path);
}

/// Decision: a WAV file whose data chunk is cut short is an error (not shorter audio), like a
/// truncated compressed stream.
#[test]
fn truncated_wav_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.wav");
    let values: Vec<i32> = (0..2000).map(|i| (i * 13) % 30000 - 15000).collect();
    write_int_wav(&full, wav_spec(2, 16000, 16, false), &values);
    let bytes = std::fs::read(&full).unwrap();
    for cut in [44 + 2000, 44 + 2001, 44 + 1, 45] {
        let path = dir.path().join(format!("cut{cut}.wav"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let reason = expect_audio_read(read_audio(&path), &path);
        assert!(reason.contains("truncated"), "cut at {cut}: {reason}");
    }
    // Cut inside the header.
    let path = dir.path().join("cut30.wav");
    std::fs::write(&path, &bytes[..30]).unwrap();
    expect_audio_read(read_audio(&path), &path);
}

#[test]
fn missing_file_is_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("does-not-exist.wav");
    match read_audio(&path) {
        Err(Error::Io { path: p, cause }) => {
            assert_eq!(p, path);
            assert_eq!(cause.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn non_finite_float_samples_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.wav");
    let mut w = hound::WavWriter::create(&path, wav_spec(1, 16000, 32, true)).unwrap();
    for v in [0.0f32, f32::NAN, 0.5] {
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
    let reason = expect_audio_read(read_audio(&path), &path);
    assert!(reason.contains("finite"), "{reason}");
}

#[test]
fn read_from_bytes_matches_read_from_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wav");
    write_int_wav(&path, wav_spec(1, 16000, 16, false), &[1, 2, 3, -4]);
    let bytes = std::fs::read(&path).unwrap();
    let from_bytes = read_audio_from_bytes(bytes, None, Path::new("memory")).unwrap();
    assert_eq!(from_bytes, read_audio(&path).unwrap());
    let err = read_audio_from_bytes(b"nope".to_vec(), Some("wav"), Path::new("memory.wav"));
    expect_audio_read(err, Path::new("memory.wav"));
}

#[test]
fn write_wav_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let clip = AudioClip {
        sample_rate: 24000,
        channels: vec![
            vec![0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 0.25 / 32767.0],
            vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
        ],
    };
    let f32_path = dir.path().join("f32.wav");
    write_wav(&f32_path, &clip, WavSampleFormat::Float32).unwrap();
    assert_eq!(read_audio(&f32_path).unwrap(), clip);

    let pcm_path = dir.path().join("pcm16.wav");
    write_wav(&pcm_path, &clip, WavSampleFormat::Pcm16).unwrap();
    let mut reader = hound::WavReader::open(&pcm_path).unwrap();
    assert_eq!(reader.spec(), wav_spec(2, 24000, 16, false));
    let ints: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let left: Vec<i16> = ints.iter().step_by(2).copied().collect();
    assert_eq!(
        left,
        vec![0, 16384, -16384, 32767, -32767, 32767, -32767, 0]
    );
    let back = read_audio(&pcm_path).unwrap();
    for (c, channel) in clip.channels.iter().enumerate() {
        for (&a, &b) in channel.iter().zip(&back.channels[c]) {
            assert!(
                (a.clamp(-1.0, 1.0) - b).abs() <= 1.0 / 32767.0,
                "{a} vs {b}"
            );
        }
    }
}

#[test]
fn write_wav_errors() {
    let dir = tempfile::tempdir().unwrap();
    let clip = AudioClip::mono(16000, vec![0.0; 10]);
    let path = dir.path().join("no-such-folder").join("out.wav");
    match write_wav(&path, &clip, WavSampleFormat::Pcm16) {
        Err(e @ Error::Io { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("no-such-folder"), "{msg}");
            assert!(msg.contains("does not exist"), "{msg}");
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(!path.parent().unwrap().exists());

    let out = dir.path().join("out.wav");
    for bad in [
        AudioClip::mono(0, vec![0.0]),
        AudioClip {
            sample_rate: 16000,
            channels: vec![],
        },
        AudioClip {
            sample_rate: 16000,
            channels: vec![vec![0.0; 3], vec![0.0; 2]],
        },
        AudioClip::mono(16000, vec![0.0, f32::INFINITY]),
    ] {
        assert!(
            matches!(
                write_wav(&out, &bad, WavSampleFormat::Float32),
                Err(Error::InvalidAudio(_))
            ),
            "{bad:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Real recordings (../shared/audio beside the repository), when present.

fn shared_audio() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/audio");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: no real audio folder at {} (shared/audio beside the repository)",
            dir.display()
        );
        None
    }
}

fn audio_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                extension(&p).as_str(),
                "wav" | "flac" | "mp3" | "ogg" | "m4a" | "aac" | "opus" | "webm" | "aiff"
            ) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn extension(p: &Path) -> String {
    p.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_lowercase()
}

/// Rate, channels and duration per file name from `eval/manifest.tsv`.
fn manifest(dir: &Path) -> std::collections::HashMap<String, (u32, usize, f64)> {
    let text = std::fs::read_to_string(dir.join("eval/manifest.tsv")).unwrap_or_default();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(f), Some(r), Some(c), Some(d)) = (
        col("file"),
        col("sample_rate"),
        col("channels"),
        col("duration_s"),
    ) else {
        return Default::default();
    };
    lines
        .filter_map(|l| {
            let v: Vec<&str> = l.split('\t').collect();
            Some((
                v.get(f)?.to_string(),
                (
                    v.get(r)?.parse().ok()?,
                    v.get(c)?.parse().ok()?,
                    v.get(d)?.parse().ok()?,
                ),
            ))
        })
        .collect()
}

/// Read one file, check it is sane and agrees with the manifest when listed there.
fn check_real_file(path: &Path, manifest: &std::collections::HashMap<String, (u32, usize, f64)>) {
    let clip = read_audio(path).unwrap_or_else(|e| panic!("{e}"));
    assert!(clip.sample_rate > 0 && clip.num_channels() > 0 && clip.num_frames() > 0);
    clip.validate().unwrap();
    let peak = clip
        .channels
        .iter()
        .flatten()
        .fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(peak > 0.0 && peak < 4.0, "{}: peak {peak}", path.display());
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    if let Some(&(rate, channels, duration)) = manifest.get(&name) {
        assert_eq!(clip.sample_rate, rate, "{name}");
        assert_eq!(clip.num_channels(), channels, "{name}");
        assert!(
            (clip.duration_seconds() - duration).abs() < 0.06,
            "{name}: {} s, manifest says {duration} s",
            clip.duration_seconds()
        );
    }
}

#[test]
fn reads_one_real_file_of_each_extension() {
    let Some(dir) = shared_audio() else { return };
    let manifest = manifest(&dir);
    let mut by_ext = std::collections::BTreeMap::new();
    for p in audio_files(&dir) {
        by_ext.entry(extension(&p)).or_insert(p);
    }
    assert!(!by_ext.is_empty(), "no audio files under {}", dir.display());
    for (ext, path) in &by_ext {
        check_real_file(path, &manifest);
        eprintln!("read .{ext}: {}", path.display());
    }
}

/// Every real file (a few hundred; slow in debug builds): `cargo test --test audio -- --ignored`.
#[test]
#[ignore]
fn reads_every_real_file() {
    let Some(dir) = shared_audio() else { return };
    let manifest = manifest(&dir);
    for path in audio_files(&dir) {
        check_real_file(&path, &manifest);
    }
}

/// Compressed files cut in the middle, or with a stretch of their middle zeroed, are errors
/// naming the file, not shorter audio.
#[test]
fn truncated_or_corrupt_real_compressed_files_are_errors() {
    let Some(dir) = shared_audio() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for path in audio_files(&dir) {
        let ext = extension(&path);
        if ext == "wav" || !seen.insert(ext.clone()) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let cut = tmp.path().join(format!("cut.{ext}"));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let reason = expect_audio_read(read_audio(&cut), &cut);
        eprintln!(".{ext} cut in half: {reason}");

        let mut corrupt = bytes.clone();
        let mid = corrupt.len() / 2;
        let end = (mid + 2000).min(corrupt.len());
        corrupt[mid..end].fill(0);
        let damaged = tmp.path().join(format!("corrupt.{ext}"));
        std::fs::write(&damaged, &corrupt).unwrap();
        let reason = expect_audio_read(read_audio(&damaged), &damaged);
        eprintln!(".{ext} with 2000 bytes zeroed: {reason}");
    }
}
