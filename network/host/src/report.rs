//! An error as one line of text, for readers who get text rather than the
//! error (an instance's state reason, an RPC error's message): the error,
//! then each cause not already in it.

/// `e` and its causes, joined by `": "`; a cause whose text an outer
/// error already printed is not repeated.
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
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("repeats: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn each_cause_is_printed_once() {
        let io = || std::io::Error::other("disk full");
        assert_eq!(error_chain(&Outer(io())), "outer: disk full");
        assert_eq!(error_chain(&Repeats(io())), "repeats: disk full");
    }
}
