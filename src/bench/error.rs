//! The one error of every bench: which bench, the step that failed, and
//! the cause when there is one.

pub use crate::error::Cause;

/// A step of a benchmark failed.
#[derive(Debug, thiserror::Error)]
#[error("bench {bench}: {step}")]
pub struct BenchError {
    /// The benchmark (`rpc`, `spawn`, ...).
    pub bench: &'static str,
    /// What it was doing, or what went wrong.
    pub step: String,
    /// Why, when another error says so.
    #[source]
    pub source: Option<Cause>,
}

impl BenchError {
    /// A failure with no underlying error.
    pub fn new(bench: &'static str, step: impl Into<String>) -> Self {
        Self {
            bench,
            step: step.into(),
            source: None,
        }
    }

    /// Wraps the error of `step`, for `map_err`.
    pub fn step<E: Into<Cause>>(
        bench: &'static str,
        step: impl Into<String>,
    ) -> impl FnOnce(E) -> Self {
        let step = step.into();
        move |e| Self {
            bench,
            step,
            source: Some(e.into()),
        }
    }
}

/// Declares `fail(step)`, which wraps the error of `step` of the bench
/// named, for `map_err`.
macro_rules! bench_steps {
    ($bench:literal) => {
        fn fail<E: Into<$crate::bench::error::Cause>>(
            step: &str,
        ) -> impl FnOnce(E) -> $crate::bench::BenchError {
            $crate::bench::BenchError::step($bench, step)
        }
    };
}
pub(crate) use bench_steps;
