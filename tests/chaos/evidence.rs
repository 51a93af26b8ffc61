//! For each instance a violation names: what the harness saw and did of
//! it, and the services' log lines about it, so a failure can be traced.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::invariants::Check;

/// At most this many instances are traced, and lines per instance.
const INSTANCES: usize = 12;
const LINES: usize = 10;

/// The trace of every instance the violations of `checks` name.
pub fn evidence(
    checks: &[Check],
    history: &BTreeMap<String, Vec<(f64, String)>>,
    files: &[(String, PathBuf)],
) -> String {
    let ids: BTreeSet<String> = checks
        .iter()
        .flat_map(|c| &c.violations)
        .flat_map(|v| instance_ids(v))
        .flat_map(|hex| {
            // A firewall chain names only the first 15 digits.
            let known: Vec<String> = history
                .keys()
                .filter(|id| id[2..].starts_with(&hex))
                .cloned()
                .collect();
            if known.is_empty() && hex.len() == 17 {
                vec![format!("i-{hex}")]
            } else {
                known
            }
        })
        .collect();
    let logs: Vec<(String, Vec<String>)> = files
        .iter()
        .map(|(name, path)| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            (name.clone(), text.lines().map(plain).collect())
        })
        .collect();
    let mut out = String::new();
    for id in ids.iter().take(INSTANCES) {
        let seen: Vec<String> = history
            .get(id)
            .map(|events| {
                events
                    .iter()
                    .map(|(at, event)| format!("{at:.1} s {event}"))
                    .collect()
            })
            .unwrap_or_default();
        out.push_str(&format!("{id}: seen {}\n", seen.join(", ")));
        // Services log the instance's UUID; its first 17 hex digits are the EC2 id's.
        let hex = &id[2..];
        let uuid_prefix = format!(
            "{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..]
        );
        let mut lines: Vec<String> = logs
            .iter()
            .flat_map(|(name, lines)| {
                lines
                    .iter()
                    .filter(|l| l.contains(id.as_str()) || l.contains(&uuid_prefix))
                    .filter(|l| !l.contains("status=200"))
                    .map(move |l| format!("    [{name}] {}", clip(l)))
            })
            .collect();
        let skip = lines.len().saturating_sub(LINES);
        for line in lines.drain(..).skip(skip) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    if ids.len() > INSTANCES {
        out.push_str(&format!("… and {} more instances\n", ids.len() - INSTANCES));
    }
    out
}

/// The hex digits of the instances named in `text`: `i-<17 hex>`,
/// `instance-<17 hex>` (a domain or folder), `stratus-inst-<15 hex>` (a chain).
fn instance_ids(text: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for prefix in ["i-", "instance-", "stratus-inst-"] {
        for (at, _) in text.match_indices(prefix) {
            let hex: String = text[at + prefix.len()..]
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect();
            if hex.len() == 17 || (prefix == "stratus-inst-" && hex.len() == 15) {
                ids.push(hex);
            }
        }
    }
    ids
}

/// A log line without its colour codes.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC '[' parameters, ended by a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn clip(line: &str) -> &str {
    match line.char_indices().nth(400) {
        Some((at, _)) => &line[..at],
        None => line,
    }
}
