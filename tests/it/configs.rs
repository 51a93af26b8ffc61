//! Every configuration file shipped under `deploy/` parses, with no unknown
//! keys, and the example documents every field stratus reads.

use std::path::{Path, PathBuf};

use stratus_tests::workspace_root;

fn toml_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read deploy/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            toml_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "toml") {
            found.push(path);
        }
    }
}

#[test]
fn every_config_under_deploy_parses() {
    let mut files = Vec::new();
    toml_files(&workspace_root().join("deploy"), &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("stratus.example.toml")),
        "deploy/stratus.example.toml is missing: {files:?}"
    );
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read config");
        if let Err(e) = stratus::config::parse(&text) {
            panic!("{}: {e}", file.display());
        }
    }
}

#[test]
fn the_example_sets_every_field_stratus_reads() {
    let text = std::fs::read_to_string(workspace_root().join("deploy/stratus.example.toml"))
        .expect("read example");
    let example: toml::Table = toml::from_str(&text).expect("example is TOML");
    let defaults = toml::Table::try_from(stratus::config::Config::default()).expect("serialize");
    for (section, fields) in &defaults {
        let Some(fields) = fields.as_table() else {
            continue;
        };
        let shipped = example
            .get(section)
            .and_then(|s| s.as_table())
            .unwrap_or_else(|| panic!("example lacks section [{section}]"));
        for field in fields.keys() {
            assert!(
                shipped.contains_key(field),
                "example lacks [{section}] {field}"
            );
        }
    }
}
