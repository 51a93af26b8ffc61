//! An error with its causes on one line, for logs: errors print only their
//! own words, so a log line names the chain explicitly.

use std::error::Error;
use std::fmt;

/// Displays an error and each of its sources, joined by `: `.
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Chain;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the config")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_shown_once() {
        let e = Outer(std::io::Error::other("disk gone"));
        assert_eq!(Chain(&e).to_string(), "reading the config: disk gone");
    }
}
