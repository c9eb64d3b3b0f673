//! Embeds every model card in the repo's `models/` folder, so that adding a model is adding
//! a file there.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let models = manifest.join("../../models");
    println!("cargo:rerun-if-changed={}", models.display());
    let mut cards: Vec<PathBuf> = std::fs::read_dir(&models)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect()
        })
        .unwrap_or_default();
    cards.sort();
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
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("builtin_cards.rs");
    std::fs::write(dest, out).unwrap();
}
