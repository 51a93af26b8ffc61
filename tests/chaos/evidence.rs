//! For each instance a violation names: what the harness saw and did of
//! it, and the services' log lines about it, so a failure can be traced.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::invariants::Check;
use crate::site::View;

/// At most this many instances are traced, log lines per instance, and
/// console lines.
const INSTANCES: usize = 12;
const LINES: usize = 14;
const CONSOLE_LINES: usize = 4;

/// The trace of every instance the violations of `checks` name.
pub fn evidence(
    checks: &[Check],
    history: &BTreeMap<String, Vec<(f64, String)>>,
    files: &[(String, PathBuf)],
    view: &View,
) -> String {
    let ids = named_instances(checks, history);
    let logs: Vec<(String, Vec<String>)> = files
        .iter()
        .map(|(name, path)| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            (
                name.clone(),
                text.lines().map(|l| short(&plain(l))).collect(),
            )
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
        let mut lines: Vec<(&str, String)> = logs
            .iter()
            .flat_map(|(name, lines)| {
                lines
                    .iter()
                    .filter(|l| l.contains(id.as_str()) || l.contains(&uuid_prefix))
                    .filter(|l| !l.contains("status=200"))
                    .map(move |l| {
                        let at = l.split_whitespace().next().unwrap_or_default();
                        (at, format!("    [{name}] {}", clip(l, 300)))
                    })
            })
            .collect();
        // One story across the services: by timestamp (RFC 3339 sorts as text).
        lines.sort_by(|a, b| a.0.cmp(b.0));
        let lines: Vec<String> = lines.into_iter().map(|(_, l)| l).collect();
        out.push_str(&head_and_tail(&lines));
        out.push_str(&guest_starts(view, id));
        out.push_str(&console(view, id));
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

/// The instances the violations of `checks` name (a chain names only the
/// first 15 digits: every instance seen whose id starts so).
fn named_instances(
    checks: &[Check],
    history: &BTreeMap<String, Vec<(f64, String)>>,
) -> BTreeSet<String> {
    checks
        .iter()
        .flat_map(|c| &c.violations)
        .flat_map(|v| instance_ids(v))
        .flat_map(|hex| {
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
        .collect()
}

/// The first and the last of `lines` (how it began, how it ended) when
/// there are more than [`LINES`].
fn head_and_tail(lines: &[String]) -> String {
    if lines.len() <= LINES {
        return lines.iter().map(|l| format!("{l}\n")).collect();
    }
    let half = LINES / 2;
    let (head, tail) = (&lines[..half], &lines[lines.len() - half..]);
    let mut out: String = head.iter().map(|l| format!("{l}\n")).collect();
    out.push_str(&format!("    … {} lines …\n", lines.len() - 2 * half));
    out.extend(tail.iter().map(|l| format!("{l}\n")));
    out
}

/// When libvirt started the guest: its QEMU log's "starting up" lines.
fn guest_starts(view: &View, id: &str) -> String {
    let log = view
        .libvirt_dir
        .join(format!("log/qemu/instance-{}.log", &id[2..]));
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("starting up"))
        .map(|l| format!("    [qemu log] {}\n", clip(l, 41)))
        .collect()
}

/// The last lines of the guest's console, where its boot (its DHCP lease,
/// its SSH server) shows, while its folder is there.
fn console(view: &View, id: &str) -> String {
    let path = view
        .compute_state
        .join("instances")
        .join(format!("instance-{}", &id[2..]))
        .join("console.log");
    let Ok(text) = std::fs::read_to_string(path) else {
        return String::new();
    };
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(CONSOLE_LINES)..]
        .iter()
        .map(|l| format!("    [console] {}\n", clip(l, 200)))
        .collect()
}

/// A log line without the spans before its target (`stratus_…`), which
/// repeat the instance and request ids and push the message out of sight.
fn short(line: &str) -> String {
    let head = line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    match line.find(" stratus_") {
        Some(at) => format!("{head}{}", &line[at..]),
        None => line.to_owned(),
    }
}

fn clip(line: &str, chars: usize) -> &str {
    match line.char_indices().nth(chars) {
        Some((at, _)) => &line[..at],
        None => line,
    }
}
