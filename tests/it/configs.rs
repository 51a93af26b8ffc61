//! Every configuration file shipped under `deploy/` parses, with no unknown
//! keys, and the example documents every field stratus reads.

use std::path::{Path, PathBuf};

use stratus_test_support::workspace::root as workspace_root;

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

#[test]
fn the_distributed_guide_ships_what_it_names() {
    let root = stratus_test_support::workspace::root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let section = readme
        .split("## Running it distributed")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a distributed section");
    // Every shipped file the section names exists; the configurations
    // parse as stratus reads them and talk to RabbitMQ and PostgreSQL.
    for word in section.split(|c: char| c.is_whitespace() || c == '`' || c == '|') {
        if let Some(path) = word.strip_prefix("deploy/").map(|_| word) {
            if path.contains('*') {
                let dir = root.join(path.rsplit_once('/').map_or(path, |(d, _)| d));
                assert!(dir.is_dir(), "{path} named but its folder is missing");
            } else if path.ends_with('/') {
                assert!(root.join(path).is_dir(), "{path} named but missing");
            } else if path.contains('.') {
                assert!(root.join(path).is_file(), "{path} named but missing");
            }
        }
    }
    for name in ["control.toml", "compute.toml"] {
        let text =
            std::fs::read_to_string(root.join("deploy/distributed").join(name)).expect("config");
        let config = stratus::config::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            config.rpc.backend,
            stratus_rpc::config::Backend::Amqp,
            "{name}"
        );
        assert!(
            config.rpc.url.starts_with("amqp://stratus:"),
            "{name}: not the guest account"
        );
        if name == "control.toml" {
            for url in [&config.api.database_url, &config.network.database_url] {
                assert!(url.as_deref().is_some_and(|u| u.starts_with("postgres://")));
            }
        }
    }
    // Each unit runs a real subcommand with the documented config path.
    let units = std::fs::read_dir(root.join("deploy/systemd")).expect("units");
    let mut seen = Vec::new();
    for unit in units.filter_map(Result::ok) {
        let text = std::fs::read_to_string(unit.path()).expect("unit");
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .expect("an ExecStart line");
        let words: Vec<&str> = exec.split_whitespace().collect();
        assert_eq!(
            &words[..3],
            [
                "/usr/local/bin/stratus",
                "--config",
                "/etc/stratus/stratus.toml"
            ],
            "{exec}"
        );
        let service = words[3];
        let help = std::process::Command::new(stratus_test_support::workspace::stratus_bin())
            .args([service, "--help"])
            .output()
            .expect("stratus runs");
        assert!(
            help.status.success(),
            "{service} is not a stratus subcommand"
        );
        assert!(
            section.contains(&unit.file_name().to_string_lossy().into_owned()),
            "README does not name {:?}",
            unit.file_name()
        );
        seen.push(service.to_owned());
    }
    seen.sort();
    assert_eq!(seen, ["api", "compute", "network", "scheduler"]);
}
