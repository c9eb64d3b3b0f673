//! Writing output files without destroying anything.
//!
//! Every file the library writes goes through [`OutputFile`]: the bytes go to a temporary file
//! in the destination's folder, which replaces the destination only when [`OutputFile::commit`]
//! is called after the last byte is written. A run that fails part-way (bad input, a full disk,
//! an interrupted stream) leaves an existing file as it was and no partial file behind.
//!
//! A destination that is not a regular file — a FIFO, a character device such as `/dev/null`,
//! a socket — is written to in place (renaming over it would replace the device with a file).
//! [`ensure_distinct`] refuses an output that is the same file as an input before anything is
//! opened for writing.
//!
//! ```
//! use std::io::Write;
//! use codec_core::output::OutputFile;
//! # fn main() -> codec_core::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("out.bin");
//! std::fs::write(&path, b"old").unwrap();
//! let mut out = OutputFile::create(&path)?;
//! out.write_all(b"new contents").unwrap();
//! drop(out); // not committed: the old file is untouched
//! assert_eq!(std::fs::read(&path).unwrap(), b"old");
//!
//! let mut out = OutputFile::create(&path)?;
//! out.write_all(b"new contents").unwrap();
//! out.commit()?;
//! assert_eq!(std::fs::read(&path).unwrap(), b"new contents");
//! # Ok(()) }
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// An output file that replaces its destination only on [`commit`](Self::commit).
#[derive(Debug)]
pub struct OutputFile {
    /// The path the caller asked for (used in errors).
    path: PathBuf,
    writer: BufWriter<File>,
    /// The temporary file to rename over the destination; `None` when writing in place.
    staged: Option<tempfile::TempPath>,
    /// Where the temporary file goes (the destination with symlinks resolved).
    target: PathBuf,
}

impl OutputFile {
    /// Prepare to write `path`. Nothing at `path` changes until [`commit`](Self::commit).
    ///
    /// Errors: the path is a folder, its folder does not exist or is not writable.
    pub fn create(path: &Path) -> Result<Self> {
        let io_err = |e: io::Error| Error::io(path, e);
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                return Err(io_err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "is a folder, not a file",
                )))
            }
            Ok(meta) if !meta.is_file() => {
                // A FIFO or a device: write through it, never replace it.
                let file = OpenOptions::new().write(true).open(path).map_err(io_err)?;
                return Ok(Self {
                    path: path.to_path_buf(),
                    writer: BufWriter::new(file),
                    staged: None,
                    target: path.to_path_buf(),
                });
            }
            _ => {}
        }
        // A symlink to a file: replace the file it points to, not the link.
        let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let folder = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !folder.is_dir() {
            return Err(io_err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("folder {} does not exist", folder.display()),
            )));
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            // As a plain create would: 0666 less the umask (tempfile's default is 0600).
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let temp = builder.tempfile_in(&folder).map_err(io_err)?;
        let (file, temp_path) = temp.into_parts();
        Ok(Self {
            path: path.to_path_buf(),
            writer: BufWriter::new(file),
            staged: Some(temp_path),
            target,
        })
    }

    /// The path this output was created for.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the destination is written in place (a FIFO or a device) rather than replaced.
    pub fn is_in_place(&self) -> bool {
        self.staged.is_none()
    }

    /// Flush everything, make it durable, and put it at the destination.
    pub fn commit(self) -> Result<()> {
        let path = self.path;
        let io_err = |e: io::Error| Error::io(&path, e);
        let file = self
            .writer
            .into_inner()
            .map_err(|e| io_err(e.into_error()))?;
        if let Some(staged) = self.staged {
            file.sync_all().map_err(io_err)?;
            drop(file);
            staged.persist(&self.target).map_err(|e| io_err(e.error))?;
        }
        Ok(())
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl Seek for OutputFile {
    /// Seeking works on the temporary file; a FIFO or device refuses it.
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.writer.seek(pos)
    }
}

/// Write `bytes` to `path` through an [`OutputFile`].
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut out = OutputFile::create(path)?;
    out.write_all(bytes).map_err(|e| Error::io(path, e))?;
    out.commit()
}

/// Refuse an output that is the same file as an input (the same inode, whatever the spelling
/// of the paths), before anything is opened for writing. `-` (standard input/output) and
/// paths that do not exist yet never clash.
pub fn ensure_distinct(input: &Path, output: &Path) -> Result<()> {
    if input.as_os_str() == "-" || output.as_os_str() == "-" {
        return Ok(());
    }
    let (Ok(a), Ok(b)) = (std::fs::metadata(input), std::fs::metadata(output)) else {
        return Ok(());
    };
    let same = {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            a.dev() == b.dev() && a.ino() == b.ino()
        }
        #[cfg(not(unix))]
        {
            let _ = (a, b);
            std::fs::canonicalize(input).ok() == std::fs::canonicalize(output).ok()
        }
    };
    if same && b.is_file() {
        return Err(Error::SameFile {
            input: input.to_path_buf(),
            output: output.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_output_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let mut out = OutputFile::create(&path).unwrap();
        out.write_all(b"partial").unwrap();
        drop(out);
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn commit_replaces_and_keeps_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.tok");
        std::fs::write(&real, b"old").unwrap();
        let link = dir.path().join("link.tok");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&real, &link).unwrap();
        #[cfg(not(unix))]
        std::fs::copy(&real, &link).unwrap();
        write_file(&link, b"new").unwrap();
        #[cfg(unix)]
        {
            assert!(std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink());
            assert_eq!(std::fs::read(&real).unwrap(), b"new");
        }
        assert_eq!(std::fs::read(&link).unwrap(), b"new");
    }

    #[test]
    fn folders_and_missing_parents_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = OutputFile::create(dir.path()).unwrap_err().to_string();
        assert!(e.contains("folder"), "{e}");
        let e = OutputFile::create(&dir.path().join("no/such/x.wav"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_written_in_place() {
        let out = OutputFile::create(Path::new("/dev/null")).unwrap();
        assert!(out.is_in_place());
        out.commit().unwrap();
        assert!(Path::new("/dev/null").exists());
    }

    #[test]
    fn same_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.wav");
        std::fs::write(&a, b"x").unwrap();
        let spelled = dir.path().join(".").join("a.wav");
        assert!(matches!(
            ensure_distinct(&a, &spelled),
            Err(Error::SameFile { .. })
        ));
        ensure_distinct(&a, &dir.path().join("b.wav")).unwrap();
        ensure_distinct(Path::new("-"), &a).unwrap();
    }
}
