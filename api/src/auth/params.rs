//! Query-string and form decoding, and the RFC 3986 encoding both signature
//! versions sign with.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, percent_encode};

use crate::auth::AuthError;

/// Everything except RFC 3986 unreserved characters is escaped: the form AWS
/// signs, and what botocore's `quote(s, safe='-_.~')` produces.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// As [`UNRESERVED`] but keeping '/', like botocore's `quote(path, safe='/~')`.
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');

/// One decoded `name=value` pair; bytes, because a request may carry non-UTF-8.
pub(crate) type Pair = (Vec<u8>, Vec<u8>);

/// Splits `a=1&b=2` into decoded pairs, skipping empty pieces.
///
/// `plus_as_space` applies HTML-form rules, which is how Python's `urlencode`
/// (used by botocore for GET params and form bodies) writes spaces.
pub(crate) fn parse(raw: &[u8], plus_as_space: bool) -> Vec<Pair> {
    raw.split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let mut halves = piece.splitn(2, |&b| b == b'=');
            let name = halves.next().unwrap_or_default();
            let value = halves.next().unwrap_or_default();
            (decode(name, plus_as_space), decode(value, plus_as_space))
        })
        .collect()
}

fn decode(raw: &[u8], plus_as_space: bool) -> Vec<u8> {
    if plus_as_space && raw.contains(&b'+') {
        let spaced: Vec<u8> = raw
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        percent_decode(&spaced).collect()
    } else {
        // Invalid escapes such as "%zz" are kept literally rather than refused:
        // the signer saw the same bytes, so the signature still decides.
        percent_decode(raw).collect()
    }
}

/// RFC 3986 encoding of a query name or value.
pub(crate) fn encode(bytes: &[u8]) -> String {
    percent_encode(bytes, UNRESERVED).to_string()
}

/// RFC 3986 encoding of a path, keeping its separators.
pub(crate) fn encode_path(path: &str) -> String {
    percent_encode(path.as_bytes(), PATH).to_string()
}

/// The value of parameter `name` if it appears once.
///
/// A repeated auth parameter is refused: which copy counts would otherwise
/// depend on who reads the request.
pub(crate) fn single<'a>(pairs: &'a [Pair], name: &str) -> Result<Option<&'a str>, AuthError> {
    let mut found = pairs
        .iter()
        .filter(|(k, _)| k.as_slice() == name.as_bytes());
    let Some((_, value)) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() {
        return Err(AuthError::Incomplete(format!(
            "parameter {name} appears more than once"
        )));
    }
    std::str::from_utf8(value)
        .map(Some)
        .map_err(|_| AuthError::Incomplete(format!("parameter {name} is not valid UTF-8")))
}

/// Like [`single`], but the parameter must be there.
pub(crate) fn required<'a>(pairs: &'a [Pair], name: &str) -> Result<&'a str, AuthError> {
    single(pairs, name)?
        .ok_or_else(|| AuthError::Incomplete(format!("missing required parameter {name}")))
}

/// Values of header `name` (any case), in the order received.
pub(crate) fn header_values<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The value of header `name` if it appears once; a repeat is refused as for
/// parameters.
pub(crate) fn single_header<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> Result<Option<&'a str>, AuthError> {
    let mut found = header_values(headers, name);
    let first = found.next();
    if found.next().is_some() {
        return Err(AuthError::Incomplete(format!(
            "header {name} appears more than once"
        )));
    }
    Ok(first)
}

/// Client text quoted in an error, bounded and escaped so it cannot flood or
/// forge log lines.
pub(crate) fn shown(text: &str) -> String {
    let mut out: String = text.chars().take(64).flat_map(char::escape_debug).collect();
    if text.chars().nth(64).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_decodes_percent_and_optionally_plus() {
        let pairs = parse(b"a=b%20c&&d&e=f+g&h=%zz", true);
        assert_eq!(
            pairs,
            vec![
                (b"a".to_vec(), b"b c".to_vec()),
                (b"d".to_vec(), b"".to_vec()),
                (b"e".to_vec(), b"f g".to_vec()),
                (b"h".to_vec(), b"%zz".to_vec()),
            ]
        );
        assert_eq!(
            parse(b"e=f+g", false),
            vec![(b"e".to_vec(), b"f+g".to_vec())]
        );
    }

    #[test]
    fn encode_keeps_only_unreserved() {
        assert_eq!(encode(b"a b+c~d/e*"), "a%20b%2Bc~d%2Fe%2A");
        assert_eq!(encode_path("/a b/~x%"), "/a%20b/~x%25");
    }

    #[test]
    fn single_refuses_repeats() {
        let pairs = parse(b"a=1&a=2&b=3", false);
        assert!(matches!(single(&pairs, "a"), Err(AuthError::Incomplete(_))));
        assert_eq!(single(&pairs, "b"), Ok(Some("3")));
        assert_eq!(single(&pairs, "c"), Ok(None));
    }

    #[test]
    fn shown_bounds_and_escapes() {
        assert_eq!(shown("a\nb"), "a\\nb");
        assert_eq!(shown(&"x".repeat(100)).len(), 67);
    }
}
