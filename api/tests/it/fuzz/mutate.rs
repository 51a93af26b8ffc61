//! Mutants of seed inputs: a reproducible xorshift stream, the number of
//! cases from the environment, and a clock and a panic guard on every call.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// Mutants per target unless `STRATUS_FUZZ_CASES` says otherwise: a few
/// seconds in CI; `STRATUS_FUZZ_CASES=200000` by hand.
const DEFAULT_CASES: usize = 3000;

/// The stream used unless `STRATUS_FUZZ_SEED` picks another.
const DEFAULT_SEED: u64 = 0x5eed_0f57_2a75_0001;

/// Longest mutant, so duplication cannot grow an input without bound.
pub const MAX_LEN: usize = 64 * 1024;

/// A call slower than this is a hang (or a blow-up), not a slow machine.
pub const LIMIT: Duration = Duration::from_secs(2);

/// How many mutants each target gets.
pub fn cases() -> usize {
    std::env::var("STRATUS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The first state of the mutation stream.
pub fn seed() -> u64 {
    std::env::var("STRATUS_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

/// xorshift64*: reproducible from its seed, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // splitmix64 first, so nearby seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that mean something to one of the targets.
const TOKENS: &[&[u8]] = &[
    b"&",
    b"=",
    b"%",
    b"%00",
    b"%ff",
    b"%2",
    b"+",
    b".",
    b".999999999",
    b".18446744073709551616",
    b".0",
    b"..",
    b"/",
    b"../",
    b"\r\n",
    b"\n",
    b"\n\n",
    b"<",
    b"]]>",
    b"&#0;",
    b"&amp;",
    b"\0",
    b"\xff",
    b"\xc3",
    b"\xef\xbf\xbf",
    b"AWS4-HMAC-SHA256 ",
    b"Signature=",
    b"Credential=",
    b"X-Amz-Expires=",
    b",",
    b";",
    b":",
    b" ",
    b"-1",
    b"65536",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b"null",
    b"1e999",
    b"Authorization: ",
    b"X-Amz-Date: ",
    b"Host: ",
    b"Timestamp=",
    b"Action=",
    b"Filter.1.Value.",
    b"*",
    b"?",
    b"\\",
];

/// Numbers that sit on an edge somewhere.
const NUMBERS: &[&[u8]] = &[
    b"0",
    b"-1",
    b"1",
    b"65535",
    b"65536",
    b"255",
    b"256",
    b"4294967296",
    b"18446744073709551616",
    b"999999999999999999999999",
    b"00000001",
];

/// One mutant of `seed`: one to eight random edits, `others` for splicing.
pub fn mutate(rng: &mut Rng, seed: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(8) {
        let len = out.len();
        let at = rng.below(len + 1);
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = rng.next() as u8;
            }
            2 => out.truncate(at),
            3 => {
                let end = (at + rng.below(16) + 1).min(len);
                out.drain(at..end);
            }
            4 => {
                // Now and then many copies: long runs find quadratic work.
                let end = (at + rng.below(32) + 1).min(len);
                let chunk = out[at..end].to_vec();
                let most = if rng.below(8) == 0 { 500 } else { 3 };
                let times = 1 + rng.below(most);
                let pos = rng.below(len + 1);
                let copies: Vec<u8> = chunk
                    .iter()
                    .copied()
                    .cycle()
                    .take(chunk.len() * times)
                    .collect();
                out.splice(pos..pos, copies);
            }
            5 if !others.is_empty() => {
                let other = &others[rng.below(others.len())];
                let from = rng.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            6 | 7 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
            _ => {
                // A run of digits becomes an edge number.
                if let Some(start) = out[at..].iter().position(u8::is_ascii_digit) {
                    let start = at + start;
                    let end = out[start..]
                        .iter()
                        .position(|b| !b.is_ascii_digit())
                        .map_or(out.len(), |n| start + n);
                    let number = NUMBERS[rng.below(NUMBERS.len())];
                    out.splice(start..end, number.iter().copied());
                }
            }
        }
        out.truncate(MAX_LEN);
    }
    out
}

/// Runs `check` on `input`, failing with the input (escaped, and written to
/// a file for the corpus) if it panics or takes longer than [`LIMIT`].
/// Returns how long it took.
pub fn guarded(what: &str, input: &[u8], check: impl FnOnce()) -> Duration {
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(check));
    let took = started.elapsed();
    if outcome.is_err() || took > LIMIT {
        let file = std::env::temp_dir().join(format!(
            "stratus-fuzz-{}.bin",
            what.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        ));
        let _ = std::fs::write(&file, input);
        let shown: String = String::from_utf8_lossy(&input[..input.len().min(2048)])
            .chars()
            .flat_map(char::escape_debug)
            .collect();
        let why = if outcome.is_err() {
            "panicked".to_owned()
        } else {
            format!("took {took:?} (limit {LIMIT:?})")
        };
        panic!(
            "{what} {why}; input ({} bytes) kept in {}:\n{shown}",
            input.len(),
            file.display()
        );
    }
    took
}
