//! The key lists that `tests/support/codec_keys.rs` builds from the published configs (used by
//! the benchmark to make full-size models without the fixtures) are exactly the reference's
//! key manifests in `../shared/fixtures/{encodec,dac,snac}`: same names, same shapes.

mod support;

use std::collections::BTreeMap;

use codec::models::dac::DacConfig;
use codec::models::encodec::EncodecConfig;
use codec::models::snac::SnacConfig;

use support::codec_keys::{dac_keys, encodec_keys, snac_keys};
use support::manifest::{manifest_or_skip, Keys};

fn check(family: &str, file: &str, built: Keys) {
    let Some(manifest) = manifest_or_skip(family, file) else {
        return;
    };
    let as_map = |keys: &Keys| -> BTreeMap<String, Vec<usize>> {
        let map: BTreeMap<_, _> = keys.iter().cloned().collect();
        assert_eq!(map.len(), keys.len(), "{family}/{file}: duplicate keys");
        map
    };
    let (want, got) = (as_map(&manifest.keys), as_map(&built));
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{family}/{file}: missing {missing:?}, extra {extra:?}"
    );
    for (k, shape) in &want {
        assert_eq!(&got[k], shape, "{family}/{file}: shape of {k}");
    }
}

#[test]
fn encodec_keys_match_the_manifests() {
    check(
        "encodec",
        "full-24khz-keys.json",
        encodec_keys(&EncodecConfig::encodec_24khz()),
    );
    check(
        "encodec",
        "full-48khz-keys.json",
        encodec_keys(&EncodecConfig::encodec_48khz()),
    );
}

#[test]
fn dac_keys_match_the_manifests() {
    check(
        "dac",
        "full-16khz-keys.json",
        dac_keys(&DacConfig::dac_16khz()),
    );
    check(
        "dac",
        "full-24khz-keys.json",
        dac_keys(&DacConfig::dac_24khz()),
    );
    check(
        "dac",
        "full-44khz-keys.json",
        dac_keys(&DacConfig::dac_44khz()),
    );
}

#[test]
fn snac_keys_match_the_manifests() {
    check(
        "snac",
        "full-24khz-keys.json",
        snac_keys(&SnacConfig::snac_24khz()),
    );
    check(
        "snac",
        "full-32khz-keys.json",
        snac_keys(&SnacConfig::snac_32khz()),
    );
    check(
        "snac",
        "full-44khz-keys.json",
        snac_keys(&SnacConfig::snac_44khz()),
    );
}
