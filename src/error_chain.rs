//! An error and its causes on one line, as the binary prints a failure.

/// A cause of any kind, kept for its chain.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// `e` then each of its causes, joined by `: `; a cause whose text the line
/// already holds is not repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the file")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn each_cause_is_printed_once_after_its_effect() {
        let e = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(error_chain(&e), "reading the file: disk on fire");
    }
}
