//! Hostile input from a corpus (`tests/corpus/`, see its README): every
//! seed replayed through its target, then mutants of the seeds (bit flips,
//! truncation, splicing, inserted tokens), a bounded number per target set
//! by `STRATUS_FUZZ_CASES`. Each call must finish within 2 s without a
//! panic, and keep the target's promises (`targets.rs`).
//!
//! Why not cargo-fuzz: it needs a nightly toolchain and a crate of its own,
//! and this workspace builds on stable; these seeds would serve as its
//! corpus unchanged.

mod corpus;
mod mutate;
pub(crate) mod targets;
