//! The reference fixtures' key manifests (`full-*-keys.json`): every key of a published
//! checkpoint with its shape, the parameter count, and the config it was made from.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `(name, shape)` pairs.
pub type Keys = Vec<(String, Vec<usize>)>;

/// A parsed manifest.
pub struct Manifest {
    pub n_params: usize,
    pub keys: Keys,
    /// The `config` object, when the manifest has one.
    pub config: Option<serde_json::Value>,
}

/// `../shared/fixtures/{family}` beside the workspace.
pub fn fixtures_dir(family: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(family)
}

/// Read a key manifest, or say why it cannot be used.
pub fn read_manifest(path: &Path) -> Result<Manifest, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let n_params = doc["n_params"].as_u64().ok_or("manifest has no n_params")? as usize;
    let entries = doc["keys"].as_array().ok_or("manifest has no keys array")?;
    let keys = entries
        .iter()
        .map(|e| {
            let name = e[0].as_str().ok_or("key entry without a name")?.to_string();
            let shape = e[1]
                .as_array()
                .ok_or("key entry without a shape")?
                .iter()
                .map(|d| {
                    d.as_u64()
                        .map(|d| d as usize)
                        .ok_or("non-integer dimension")
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((name, shape))
        })
        .collect::<Result<Keys, &str>>()?;
    let config = doc.get("config").cloned();
    Ok(Manifest {
        n_params,
        keys,
        config,
    })
}

/// [`read_manifest`] of `fixtures_dir(family)/file`, or `None` with `SKIPPED: ...` printed when
/// the file is absent (a failure instead under `CODEC_REQUIRE_FIXTURES`, as `.ci/run` sets).
/// A manifest that is there but broken is always a failure.
pub fn manifest_or_skip(family: &str, file: &str) -> Option<Manifest> {
    let path = fixtures_dir(family).join(file);
    if !present_or_skip(&path) {
        return None;
    }
    match read_manifest(&path) {
        Ok(m) => Some(m),
        Err(reason) => panic!("{}: broken key manifest: {reason}", path.display()),
    }
}

/// Whether a fixture file is there; when it is not, prints `SKIPPED: ...` and returns false, or
/// fails under `CODEC_REQUIRE_FIXTURES` (as `.ci/run` sets).
pub fn present_or_skip(path: &Path) -> bool {
    if path.is_file() {
        return true;
    }
    if std::env::var_os("CODEC_REQUIRE_FIXTURES").is_some_and(|v| v != "0") {
        panic!(
            "{} is absent and CODEC_REQUIRE_FIXTURES is set",
            path.display()
        );
    }
    println!("SKIPPED: {} is absent", path.display());
    false
}
