//! Fetching files from the Hugging Face hub through `hf-hub` and its cache.

use std::path::PathBuf;

use crate::{Error, Result};

/// The file in the local hub cache (`HF_HOME`, default `~/.cache/huggingface/hub`), if present.
pub fn cached_file(repo: &str, revision: Option<&str>, file: &str) -> Option<PathBuf> {
    #[cfg(feature = "hub")]
    {
        let repo = hf_hub::Repo::with_revision(
            repo.to_string(),
            hf_hub::RepoType::Model,
            revision.unwrap_or("main").to_string(),
        );
        hf_hub::Cache::from_env().repo(repo).get(file)
    }
    #[cfg(not(feature = "hub"))]
    {
        let _ = (repo, revision, file);
        None
    }
}

/// The file from the cache, or downloaded (with a progress bar) into it.
///
/// Offline (no network, or `HF_HUB_OFFLINE=1`), the error names the repo and the file and says
/// how to supply it locally.
pub fn fetch_file(repo: &str, revision: Option<&str>, file: &str) -> Result<PathBuf> {
    if let Some(path) = cached_file(repo, revision, file) {
        return Ok(path);
    }
    let fail = |reason: String| Error::Download {
        repo: repo.to_string(),
        file: file.to_string(),
        reason,
    };
    if std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        return Err(fail(
            "HF_HUB_OFFLINE is set and the file is not in the cache".into(),
        ));
    }
    #[cfg(feature = "hub")]
    {
        let api = hf_hub::api::sync::ApiBuilder::from_env()
            .with_progress(true)
            .build()
            .map_err(|e| fail(format!("cannot set up the hub client: {e}")))?;
        let repo_ref = hf_hub::Repo::with_revision(
            repo.to_string(),
            hf_hub::RepoType::Model,
            revision.unwrap_or("main").to_string(),
        );
        api.repo(repo_ref)
            .get(file)
            .map_err(|e| fail(format!("download failed ({e})")))
    }
    #[cfg(not(feature = "hub"))]
    {
        Err(fail(
            "this build has no hub support (feature `hub` is off)".into(),
        ))
    }
}
