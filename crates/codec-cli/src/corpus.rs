//! `codec encode` over many files: a folder (recursive), a glob, or a manifest, into mirrored
//! per-file outputs or tar shards.
//!
//! The model loads once; a reader thread decodes and resamples the next files while the model
//! encodes the current one. Outputs that exist and read back as this model's are kept (resume),
//! a file that fails is reported with its reason and the run goes on, and the exit status says
//! whether anything failed. Every output is written to a temporary file and renamed, so an
//! interrupted run leaves only whole files. `--shard I/N` gives job I of N its share of the same
//! sorted item list, so that N jobs write exactly the files one job would.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use codec_core::audio;
use codec_core::pipeline::{self, PreparedInput};
use codec_core::tokfile::TokenFile;
use codec_core::{Codec, EncodeOptions};
use indicatif::{ProgressBar, ProgressStyle};

use crate::commands::TokenFormat;

/// Extensions a folder or glob input takes as audio.
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "wav", "wave", "flac", "mp3", "ogg", "oga", "opus", "m4a", "mp4", "aac", "aif", "aiff", "caf",
    "mkv", "webm",
];

/// Files the reader thread may hold decoded ahead of the model.
const READ_AHEAD: usize = 4;

/// One input of a corpus run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Stable name: the path relative to the input folder without extension, or the
    /// manifest's id.
    pub id: String,
    pub path: PathBuf,
}

/// Where the items come from.
#[derive(Debug, Clone)]
pub enum Source {
    Folder(PathBuf),
    Glob(String),
    Manifest(PathBuf),
}

impl Source {
    /// A folder, a glob pattern, or (with `--manifest`) a manifest file.
    pub fn from_arg(input: &Path, manifest: bool) -> Option<Source> {
        let text = input.to_string_lossy();
        if manifest {
            Some(Source::Manifest(input.to_path_buf()))
        } else if input.is_dir() {
            Some(Source::Folder(input.to_path_buf()))
        } else if text.contains(['*', '?', '[']) && !input.exists() {
            Some(Source::Glob(text.into_owned()))
        } else {
            None
        }
    }

    /// The items, sorted by id (so every job of a `--shard` split sees the same list).
    pub fn items(&self) -> Result<Vec<Item>> {
        let mut items = match self {
            Source::Folder(dir) => folder_items(dir)?,
            Source::Glob(pattern) => glob_items(pattern)?,
            Source::Manifest(path) => manifest_items(path)?,
        };
        items.sort_by(|a, b| a.id.cmp(&b.id));
        let mut seen = BTreeSet::new();
        for item in &items {
            if !seen.insert(&item.id) {
                bail!(
                    "two inputs have the id '{}': ids name the outputs, so they must differ",
                    item.id
                );
            }
        }
        Ok(items)
    }
}

fn is_audio(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn id_of(relative: &Path) -> String {
    relative
        .with_extension("")
        .to_string_lossy()
        .replace('\\', "/")
}

fn folder_items(dir: &Path) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).with_context(|| format!("reading folder {}", d.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("reading folder {}", d.display()))?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else if is_audio(&path) {
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                items.push(Item {
                    id: id_of(rel),
                    path,
                });
            }
        }
    }
    Ok(items)
}

fn glob_items(pattern: &str) -> Result<Vec<Item>> {
    // Ids are relative to the pattern's fixed leading folders.
    let base: PathBuf = Path::new(pattern)
        .components()
        .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
        .collect();
    let paths = glob::glob(pattern).with_context(|| format!("bad glob pattern '{pattern}'"))?;
    let mut items = Vec::new();
    for path in paths {
        let path = path.context("reading a glob match")?;
        if path.is_file() {
            let rel = path.strip_prefix(&base).unwrap_or(&path);
            items.push(Item {
                id: id_of(rel),
                path,
            });
        }
    }
    Ok(items)
}

/// One path per line, or TSV with a header that has `path` and `id` columns (`#` comments and
/// blank lines skipped). Relative paths are relative to the manifest's folder.
fn manifest_items(path: &Path) -> Result<Vec<Item>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading manifest {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .peekable();
    let columns = match lines.peek() {
        Some((_, header)) if header.contains('\t') => {
            let cols: Vec<&str> = header.split('\t').map(str::trim).collect();
            let find = |name: &str| cols.iter().position(|c| c.eq_ignore_ascii_case(name));
            let (Some(p), Some(i)) = (find("path"), find("id")) else {
                bail!(
                    "manifest {}: a TSV manifest needs a header with `id` and `path` columns (got {:?})",
                    path.display(),
                    cols
                );
            };
            lines.next();
            Some((p, i))
        }
        _ => None,
    };
    let mut items = Vec::new();
    for (n, line) in lines {
        let (id, file) = match columns {
            Some((p, i)) => {
                let fields: Vec<&str> = line.split('\t').collect();
                match (fields.get(i), fields.get(p)) {
                    (Some(id), Some(file)) if !id.is_empty() && !file.is_empty() => {
                        (id.to_string(), PathBuf::from(file))
                    }
                    _ => bail!(
                        "manifest {} line {}: needs an id and a path",
                        path.display(),
                        n + 1
                    ),
                }
            }
            None => {
                let file = PathBuf::from(line.trim());
                (id_of(&file), file)
            }
        };
        if id.split('/').any(|part| part == "..") || id.starts_with('/') {
            bail!(
                "manifest {} line {}: id '{id}' would write outside the output folder",
                path.display(),
                n + 1
            );
        }
        let file = if file.is_relative() {
            base.join(file)
        } else {
            file
        };
        items.push(Item {
            id: id.trim_start_matches("./").to_string(),
            path: file,
        });
    }
    Ok(items)
}

/// Job `index` of `count` (`--shard I/N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for ShardSpec {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (i, n) = s.split_once('/').ok_or("expected I/N, e.g. 0/4")?;
        let (index, count) = (
            i.trim().parse::<usize>().map_err(|e| format!("I: {e}"))?,
            n.trim().parse::<usize>().map_err(|e| format!("N: {e}"))?,
        );
        if count == 0 || index >= count {
            return Err(format!("need 0 <= I < N, got {index}/{count}"));
        }
        Ok(ShardSpec { index, count })
    }
}

/// What a corpus run writes.
#[derive(Debug, Clone, Copy)]
pub enum Layout {
    /// One file per input, mirroring the input tree.
    Mirror(TokenFormat),
    /// Tar shards of this many items (codes as `.npy` + metadata `.json` per item) with a
    /// JSONL index per shard.
    Shards(usize),
}

pub struct CorpusRun<'a> {
    pub source: Source,
    pub output: &'a Path,
    pub layout: Layout,
    pub shard: Option<ShardSpec>,
    pub options: EncodeOptions,
}

#[derive(Debug, Default)]
struct Tally {
    encoded: usize,
    skipped: usize,
    failed: Vec<(PathBuf, String)>,
    seconds: f64,
}

/// Encode a corpus; fails (after finishing every other file) if any file failed.
pub fn run(model: &dyn Codec, run: CorpusRun<'_>) -> Result<()> {
    let items = run.source.items()?;
    if items.is_empty() {
        bail!(
            "no audio files found in the input (extensions: {})",
            AUDIO_EXTENSIONS.join(", ")
        );
    }
    std::fs::create_dir_all(run.output)
        .with_context(|| format!("creating {}", run.output.display()))?;
    let started = Instant::now();
    let tally = match run.layout {
        Layout::Mirror(format) => mirror(model, &items, &run, format)?,
        Layout::Shards(size) => shards(model, &items, &run, size)?,
    };
    let wall = started.elapsed().as_secs_f64();
    eprintln!(
        "done: {} encoded, {} already done, {} failed; {:.2} h of audio in {:.0} s ({:.0}x real time)",
        tally.encoded,
        tally.skipped,
        tally.failed.len(),
        tally.seconds / 3600.0,
        wall,
        tally.seconds / wall.max(1e-9)
    );
    if !tally.failed.is_empty() {
        for (path, why) in &tally.failed {
            eprintln!("  failed: {}: {why}", path.display());
        }
        bail!(
            "{} of {} files failed (listed above)",
            tally.failed.len(),
            items.len()
        );
    }
    Ok(())
}

/// Item positions job `shard` takes: every N-th item (mirror) or every N-th shard.
fn mine(position: usize, shard: Option<ShardSpec>) -> bool {
    shard.is_none_or(|s| position % s.count == s.index)
}

fn mirror(
    model: &dyn Codec,
    items: &[Item],
    run: &CorpusRun<'_>,
    format: TokenFormat,
) -> Result<Tally> {
    let ext = match format {
        TokenFormat::Tok => "tok",
        TokenFormat::Npy => "npy",
    };
    let out_path = |item: &Item| run.output.join(format!("{}.{ext}", item.id));
    let mut tally = Tally::default();
    let todo: Vec<&Item> = items
        .iter()
        .enumerate()
        .filter(|(i, _)| mine(*i, run.shard))
        .map(|(_, item)| item)
        .filter(|item| {
            let done = already_done(model, &out_path(item), format);
            tally.skipped += usize::from(done);
            !done
        })
        .collect();
    let progress = Progress::new(todo.len());
    for_each_prepared(model, &todo, |item, prepared| {
        let result = prepared.and_then(|input| {
            let seconds = input.original_length as f64 / f64::from(input.original_sample_rate);
            let encoded = pipeline::encode_prepared(model, input, &run.options)?;
            let path = out_path(item);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| codec_core::Error::io(parent, e))?;
            }
            match format {
                TokenFormat::Tok => encoded.tokens.write(&path)?,
                TokenFormat::Npy => {
                    codec_core::npy::write_codes_npy(&path, &codes_of(&encoded.tokens))?
                }
            }
            Ok(seconds)
        });
        tally.record(item, result, &progress);
    });
    progress.finish();
    Ok(tally)
}

fn codes_of(tokens: &TokenFile) -> Vec<Vec<u32>> {
    tokens.streams.iter().map(|s| s.codes.clone()).collect()
}

/// An output from an earlier run that reads back as this model's (resume).
fn already_done(model: &dyn Codec, path: &Path, format: TokenFormat) -> bool {
    match format {
        TokenFormat::Tok => {
            TokenFile::read(path).is_ok_and(|t| t.header.fingerprint == model.info().fingerprint)
        }
        TokenFormat::Npy => std::fs::read(path)
            .is_ok_and(|b| codec_core::npy::read_npy_bytes(&b, &path.to_string_lossy()).is_ok()),
    }
}

fn shards(model: &dyn Codec, items: &[Item], run: &CorpusRun<'_>, size: usize) -> Result<Tally> {
    let mut tally = Tally::default();
    let size = size.max(1);
    let groups: Vec<(usize, &[Item])> = items
        .chunks(size)
        .enumerate()
        .filter(|(k, _)| mine(*k, run.shard))
        .collect();
    let total: usize = groups.iter().map(|(_, g)| g.len()).sum();
    let progress = Progress::new(total);
    for (k, group) in groups {
        let tar_path = run.output.join(format!("shard-{k:06}.tar"));
        let index_path = run.output.join(format!("shard-{k:06}.jsonl"));
        if index_path.exists() && tar_path.exists() && shard_is_whole(&tar_path, group.len()) {
            tally.skipped += group.len();
            progress.skip(group.len());
            continue;
        }
        let mut tar = tar::Builder::new(Vec::new());
        let mut index = String::new();
        let refs: Vec<&Item> = group.iter().collect();
        for_each_prepared(model, &refs, |item, prepared| {
            let result = prepared.and_then(|input| {
                let seconds = input.original_length as f64 / f64::from(input.original_sample_rate);
                let encoded = pipeline::encode_prepared(model, input, &run.options)?;
                let t = &encoded.tokens;
                let meta = serde_json::json!({
                    "id": item.id,
                    "path": item.path.to_string_lossy(),
                    "duration": t.duration_seconds(),
                    "frames": t.num_frames(),
                    "codebooks": t.streams.len(),
                    "model": t.header.model,
                    "fingerprint": format!("{:016x}", t.header.fingerprint),
                    "sample_rate": t.header.sample_rate,
                    "frame_rate": t.header.frame_rate,
                    "original_sample_rate": t.header.original_sample_rate,
                    "original_length": t.header.original_length,
                });
                let npy = codec_core::npy::codes_npy_bytes(&codes_of(t))?;
                let key = item.id.replace('.', "_");
                append(&mut tar, &format!("{key}.codes.npy"), &npy)?;
                append(
                    &mut tar,
                    &format!("{key}.json"),
                    meta.to_string().as_bytes(),
                )?;
                index.push_str(&meta.to_string());
                index.push('\n');
                Ok(seconds)
            });
            tally.record(item, result, &progress);
        });
        let bytes = tar.into_inner().context("finishing a tar shard")?;
        codec_core::output::write_file(&tar_path, &bytes)?;
        // The index last: its presence says the shard is complete.
        codec_core::output::write_file(&index_path, index.as_bytes())?;
    }
    progress.finish();
    Ok(tally)
}

/// A tar entry with fixed metadata, so that shards are byte-identical across runs.
fn append(tar: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) -> codec_core::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    tar.append_data(&mut header, name, data)
        .map_err(|e| codec_core::Error::io(name, e))
}

/// A shard from an earlier run whose index lists every item (failed items are retried).
fn shard_is_whole(tar_path: &Path, items: usize) -> bool {
    let index = tar_path.with_extension("jsonl");
    std::fs::read_to_string(index).is_ok_and(|t| t.lines().count() == items)
}

impl Tally {
    fn record(&mut self, item: &Item, result: codec_core::Result<f64>, progress: &Progress) {
        match result {
            Ok(seconds) => {
                self.encoded += 1;
                self.seconds += seconds;
                progress.done(seconds);
            }
            Err(e) => {
                progress.println(&format!("failed: {}: {e}", item.path.display()));
                self.failed.push((item.path.clone(), e.to_string()));
                progress.done(0.0);
            }
        }
    }
}

/// Run `f` on each item with its audio decoded and prepared for the model on a reader thread,
/// up to [`READ_AHEAD`] files ahead of the model.
fn for_each_prepared(
    model: &dyn Codec,
    items: &[&Item],
    mut f: impl FnMut(&Item, codec_core::Result<PreparedInput>),
) {
    let info = model.info().clone();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel(READ_AHEAD);
        let paths: Vec<PathBuf> = items.iter().map(|i| i.path.clone()).collect();
        scope.spawn(move || {
            for path in paths {
                let prepared =
                    audio::read_audio(&path).and_then(|clip| PreparedInput::new(&info, &clip));
                if tx.send(prepared).is_err() {
                    return;
                }
            }
        });
        for (item, prepared) in items.iter().zip(rx) {
            f(item, prepared);
        }
    });
}

/// A bar on a terminal (files, hours of audio, speed, ETA); a plain line every 10 s otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    counts: std::cell::RefCell<Counts>,
}

struct Counts {
    files: usize,
    audio_seconds: f64,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} files  {msg}  ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            total,
            counts: std::cell::RefCell::new(Counts {
                files: 0,
                audio_seconds: 0.0,
                started: now,
                last_line: now,
            }),
        }
    }

    fn done(&self, seconds: f64) {
        let mut c = self.counts.borrow_mut();
        c.files += 1;
        c.audio_seconds += seconds;
        let elapsed = c.started.elapsed().as_secs_f64().max(1e-9);
        let msg = format!(
            "{:.2} h audio, {:.0}x real time",
            c.audio_seconds / 3600.0,
            c.audio_seconds / elapsed
        );
        match &self.bar {
            Some(bar) => {
                bar.set_message(msg);
                bar.inc(1);
            }
            None if c.last_line.elapsed() >= Duration::from_secs(10) || c.files == self.total => {
                eprintln!("progress: {}/{} files, {msg}", c.files, self.total);
                c.last_line = Instant::now();
            }
            None => {}
        }
    }

    fn skip(&self, n: usize) {
        self.counts.borrow_mut().files += n;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_specs_parse_and_split_every_item_once() {
        assert_eq!(
            "1/4".parse::<ShardSpec>(),
            Ok(ShardSpec { index: 1, count: 4 })
        );
        assert!("4/4".parse::<ShardSpec>().is_err());
        assert!("0/0".parse::<ShardSpec>().is_err());
        assert!("x".parse::<ShardSpec>().is_err());
        for n in 1..5 {
            for pos in 0..20 {
                let jobs = (0..n)
                    .filter(|&i| mine(pos, Some(ShardSpec { index: i, count: n })))
                    .count();
                assert_eq!(jobs, 1);
            }
        }
    }

    #[test]
    fn manifests_take_paths_or_id_path_tsv() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("list.txt");
        std::fs::write(&plain, "# corpus\nb/x.wav\n\na.flac\n").unwrap();
        let items = Source::Manifest(plain).items().unwrap();
        assert_eq!(
            items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["a", "b/x"]
        );
        assert_eq!(items[0].path, dir.path().join("a.flac"));

        let tsv = dir.path().join("list.tsv");
        std::fs::write(&tsv, "path\tid\tspeaker\n/abs/1.wav\tutt1\ts\n").unwrap();
        let items = Source::Manifest(tsv.clone()).items().unwrap();
        assert_eq!(
            items,
            vec![Item {
                id: "utt1".into(),
                path: "/abs/1.wav".into()
            }]
        );

        std::fs::write(&tsv, "path\tname\nx.wav\ta\n").unwrap();
        assert!(Source::Manifest(tsv.clone()).items().is_err());
        std::fs::write(&tsv, "id\tpath\n../up\tx.wav\n").unwrap();
        let e = Source::Manifest(tsv.clone())
            .items()
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside"), "{e}");
        std::fs::write(&tsv, "id\tpath\na\tx.wav\na\ty.wav\n").unwrap();
        let e = Source::Manifest(tsv).items().unwrap_err().to_string();
        assert!(e.contains("two inputs"), "{e}");
    }
}
