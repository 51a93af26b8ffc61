//! The corpus replayed through each target, then mutated.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::mutate::{Rng, cases, guarded, mutate, seed};
use super::targets::{self, Seed};

/// A folder of the corpus and the check its files go through.
struct Target {
    folder: &'static str,
    check: fn(&[u8], &Seed),
}

fn seeds(folder: &str) -> Vec<Seed> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(folder);
    let mut found: Vec<Seed> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| Seed {
            name: e.file_name().to_string_lossy().into_owned(),
            bytes: std::fs::read(e.path()).expect("corpus file"),
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// Replays every seed, then `cases()` mutants; prints what it did.
fn run(target: &Target) {
    let started = Instant::now();
    let seeds = seeds(target.folder);
    assert!(
        seeds.len() >= 5,
        "{}: only {} seeds",
        target.folder,
        seeds.len()
    );
    let mut slowest = Duration::ZERO;
    for s in &seeds {
        let what = format!("{}/{}", target.folder, s.name);
        slowest = slowest.max(guarded(&what, &s.bytes, || (target.check)(&s.bytes, s)));
    }
    // Each target its own stream, so adding a seed elsewhere changes nothing here.
    let salt = target
        .folder
        .bytes()
        .fold(0u64, |h, b| h.rotate_left(8) ^ u64::from(b));
    let mut rng = Rng::new(seed() ^ salt);
    let others: Vec<Vec<u8>> = seeds.iter().map(|s| s.bytes.clone()).collect();
    let cases = cases();
    for case in 0..cases {
        let s = &seeds[case % seeds.len()];
        let input = mutate(&mut rng, &s.bytes, &others);
        let what = format!("{} case {case} (a mutant of {})", target.folder, s.name);
        slowest = slowest.max(guarded(&what, &input, || (target.check)(&input, s)));
    }
    println!(
        "fuzz {}: {} seeds and {cases} mutants in {:.2?}, slowest call {slowest:.2?}",
        target.folder,
        seeds.len(),
        started.elapsed()
    );
}

#[test]
fn query_parser_corpus_and_mutants() {
    run(&Target {
        folder: "query",
        check: targets::query,
    });
}

#[test]
fn signature_verifier_corpus_and_mutants() {
    run(&Target {
        folder: "sigv",
        check: targets::sigv,
    });
    let verified = targets::VERIFIED.load(std::sync::atomic::Ordering::Relaxed);
    println!("fuzz sigv: {verified} inputs verified (seeds included)");
    // Mutants that still verify reach the checks that matter most.
    if cases() >= 1000 {
        assert!(verified > 12, "no mutant verified ({verified} inputs did)");
    }
}

#[test]
fn xml_renderer_corpus_and_mutants() {
    run(&Target {
        folder: "xml",
        check: targets::xml,
    });
}

#[test]
fn rule_parser_corpus_and_mutants() {
    run(&Target {
        folder: "rules",
        check: targets::rules,
    });
}
