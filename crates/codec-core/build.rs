//! Embeds every model card in this crate's `models/` folder (the repo's `models/` is a link to
//! it), so that adding a model is adding a file there. The folder is part of the crate, so a
//! packaged crate has its cards; a missing folder is a build error, never a build without cards.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let models = manifest.join("models");
    println!("cargo:rerun-if-changed={}", models.display());
    if !models.is_dir() {
        panic!(
            "{} is missing: the model cards are part of the crate and are compiled in",
            models.display()
        );
    }
    let mut cards: Vec<PathBuf> = std::fs::read_dir(&models)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect()
        })
        .unwrap_or_default();
    cards.sort();
    assert!(
        !cards.is_empty(),
        "no model cards (*.toml) in {}",
        models.display()
    );
    let mut out = String::from("/// Model cards compiled into the library: (file name, TOML text).\npub const BUILTIN_CARDS: &[(&str, &str)] = &[\n");
    for card in &cards {
        println!("cargo:rerun-if-changed={}", card.display());
        let name = card.file_name().unwrap().to_string_lossy();
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            card.canonicalize().unwrap().display().to_string()
        ));
    }
    out.push_str("];\n");

    // Weights shipped in the binary (the project's own model), unless the `embedded` feature is off.
    out.push_str("/// Weight files compiled into the library: (file name, bytes).\npub const EMBEDDED_WEIGHTS: &[(&str, &[u8])] = &[\n");
    if std::env::var_os("CARGO_FEATURE_EMBEDDED").is_some() {
        let mut weights: Vec<PathBuf> = std::fs::read_dir(&models)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
                    .collect()
            })
            .unwrap_or_default();
        weights.sort();
        for w in &weights {
            println!("cargo:rerun-if-changed={}", w.display());
            let name = w.file_name().unwrap().to_string_lossy();
            out.push_str(&format!(
                "    ({name:?}, include_bytes!({:?})),\n",
                w.canonicalize().unwrap().display().to_string()
            ));
        }
    }
    // Models whose published weights are several graph files keep them in a folder of their
    // own (models/lyra-v2/*.tflite), embedded as "folder/file".
    let mut folders: Vec<PathBuf> = std::fs::read_dir(&models)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    folders.sort();
    if std::env::var_os("CARGO_FEATURE_EMBEDDED").is_some() {
        for folder in &folders {
            println!("cargo:rerun-if-changed={}", folder.display());
            let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
                .map(|rd| {
                    rd.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|e| e == "tflite"))
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            let dir = folder.file_name().unwrap().to_string_lossy();
            for f in &files {
                println!("cargo:rerun-if-changed={}", f.display());
                let name = format!("{dir}/{}", f.file_name().unwrap().to_string_lossy());
                out.push_str(&format!(
                    "    ({name:?}, include_bytes!({:?})),\n",
                    f.canonicalize().unwrap().display().to_string()
                ));
            }
        }
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("builtin_cards.rs");
    std::fs::write(dest, out).unwrap();
}
