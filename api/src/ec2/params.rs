//! EC2 Query parameters: `Name=value` pairs, numbered lists (`InstanceId.1`,
//! `InstanceId.2`), numbered structures (`Filter.1.Name`,
//! `Filter.1.Value.1`) and typed reads that fail with EC2's errors.

use std::collections::BTreeMap;

use super::error::Ec2Error;

/// Most members of one list a request may give.
const MAX_LIST: usize = 1000;

/// Most `name=value` pairs one request may carry, query and body together.
/// Each pair costs memory several times its length, and parsing happens
/// before the signature is checked; real requests stay far below this
/// (a full DescribeInstances by id is 1,000).
pub const MAX_PARAMS: usize = 10_000;

/// The parameters of one request (or one numbered structure in it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// Parameters from form-encoded text (a query string or a POST body).
    /// A name given twice keeps its last value, as EC2 does.
    pub fn parse(form: &[u8]) -> Self {
        Self {
            values: form_urlencoded::parse(form)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// Adds the pairs of `form` (body over query when both give a name).
    pub fn merge(&mut self, other: Params) {
        self.values.extend(other.values);
    }

    /// The parameters of a request: its query string, and its form body when
    /// there is one (a POST). Refuses what no honest client sends and what
    /// could not come back unchanged: more than [`MAX_PARAMS`] pairs, text
    /// that is not UTF-8, characters XML cannot carry (NUL and the other C0
    /// controls but tab, CR and LF; U+FFFE, U+FFFF), and a name given twice
    /// with different values.
    ///
    /// Why repeats are refused: SigV4 sorts query parameters before signing
    /// and SigV2 sorts every parameter, wherever it was sent, so which copy
    /// comes last (the one [`Params::parse`] keeps) is not covered by the
    /// signature, and anyone relaying the request could swap them.
    pub fn from_request(query: &[u8], body: Option<&[u8]>) -> Result<Self, Ec2Error> {
        check_count(query, body)?;
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        for form in std::iter::once(query).chain(body) {
            for piece in form.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
                let mut halves = piece.splitn(2, |&b| b == b'=');
                let name = strict(halves.next().unwrap_or_default(), None)?;
                let value = strict(halves.next().unwrap_or_default(), Some(&name))?;
                match values.get(&name) {
                    Some(earlier) if *earlier != value => {
                        return Err(Ec2Error::invalid(format!(
                            "The parameter {} is given more than once, with different values.",
                            shown(&name)
                        )));
                    }
                    Some(_) => {}
                    None => {
                        values.insert(name, value);
                    }
                }
            }
        }
        Ok(Self { values })
    }

    /// A value, if given (an empty value counts as given).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A value that must be there and not empty.
    pub fn required(&self, name: &str) -> Result<&str, Ec2Error> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(Ec2Error::missing(name)),
        }
    }

    /// An integer, if given.
    pub fn int(&self, name: &str) -> Result<Option<i64>, Ec2Error> {
        self.get(name)
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    Ec2Error::invalid(format!(
                        "Value ({}) for parameter {name} is invalid. Expected an integer.",
                        shown(v)
                    ))
                })
            })
            .transpose()
    }

    /// A boolean (`true`/`false`), false when not given.
    pub fn flag(&self, name: &str) -> Result<bool, Ec2Error> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(Ec2Error::invalid(format!(
                "Value for parameter {name} is invalid. Expected true or false."
            ))),
        }
    }

    /// The parameters' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// The values of `prefix.1`, `prefix.2`, … in numeric order.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, Ec2Error> {
        let mut found: Vec<(u64, String)> = Vec::new();
        let dotted = format!("{prefix}.");
        for (key, value) in self.values.range(dotted.clone()..) {
            let Some(rest) = key.strip_prefix(&dotted) else {
                break;
            };
            if let Ok(n) = rest.parse::<u64>() {
                found.push((n, value.clone()));
            }
        }
        if found.len() > MAX_LIST {
            return Err(Ec2Error::invalid(format!(
                "Too many {prefix} values (at most {MAX_LIST})."
            )));
        }
        found.sort_by_key(|(n, _)| *n);
        Ok(found.into_iter().map(|(_, v)| v).collect())
    }

    /// The structures `prefix.N.*`, each as its own parameters, in numeric order.
    pub fn structs(&self, prefix: &str) -> Result<Vec<Params>, Ec2Error> {
        let mut found: BTreeMap<u64, Params> = BTreeMap::new();
        let dotted = format!("{prefix}.");
        for (key, value) in self.values.range(dotted.clone()..) {
            let Some(rest) = key.strip_prefix(&dotted) else {
                break;
            };
            let Some((n, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            found
                .entry(n)
                .or_default()
                .values
                .insert(field.to_owned(), value.clone());
        }
        if found.len() > MAX_LIST {
            return Err(Ec2Error::invalid(format!(
                "Too many {prefix} entries (at most {MAX_LIST})."
            )));
        }
        Ok(found.into_values().collect())
    }
}

/// Refuses a request with more than [`MAX_PARAMS`] pairs, counted without
/// decoding: cheap enough to run before anything else reads the request.
pub fn check_count(query: &[u8], body: Option<&[u8]>) -> Result<(), Ec2Error> {
    let pieces = |form: &[u8]| form.split(|&b| b == b'&').filter(|p| !p.is_empty()).count();
    let count = pieces(query) + body.map_or(0, pieces);
    if count > MAX_PARAMS {
        return Err(Ec2Error::invalid(format!(
            "The request carries {count} parameters; at most {MAX_PARAMS} are accepted."
        )));
    }
    Ok(())
}

/// One form-encoded name (`of` is None) or value of parameter `of`, decoded
/// as HTML forms are ('+' is a space), refused unless it is UTF-8 that XML
/// can carry.
fn strict(raw: &[u8], of: Option<&str>) -> Result<String, Ec2Error> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let decoded: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    let what = |text: &str| match of {
        Some(name) => format!("The value of parameter {}", shown(name)),
        None => format!("The parameter name {}", shown(text)),
    };
    let text = String::from_utf8(decoded).map_err(|e| {
        let lossy = String::from_utf8_lossy(e.as_bytes());
        Ec2Error::invalid(format!("{} is not valid UTF-8.", what(&lossy)))
    })?;
    let unfit = |c: char| {
        (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{FFFE}' || c == '\u{FFFF}'
    };
    if let Some(c) = text.chars().find(|&c| unfit(c)) {
        return Err(Ec2Error::invalid(format!(
            "{} holds the character U+{:04X}, which is not accepted.",
            what(&text),
            u32::from(c)
        )));
    }
    Ok(text)
}

/// A value as it may appear in a message: short, one line.
pub fn shown(value: &str) -> String {
    let mut s: String = value.chars().filter(|c| !c.is_control()).take(64).collect();
    if value.chars().count() > 64 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_structures_come_back_in_numeric_order() {
        let p = Params::parse(
            b"Action=DescribeInstances&InstanceId.10=i-c&InstanceId.2=i-b&InstanceId.1=i-a\
              &Filter.2.Name=tag%3AName&Filter.2.Value.1=web&Filter.1.Name=instance-type\
              &Filter.1.Value.2=m1.small&Filter.1.Value.1=m1.large&InstanceIdX=no",
        );
        assert_eq!(p.list("InstanceId").expect("list"), ["i-a", "i-b", "i-c"]);
        let filters = p.structs("Filter").expect("filters");
        assert_eq!(filters.len(), 2);
        assert_eq!(filters[0].get("Name"), Some("instance-type"));
        assert_eq!(
            filters[0].list("Value").expect("values"),
            ["m1.large", "m1.small"]
        );
        assert_eq!(filters[1].get("Name"), Some("tag:Name"));
    }

    #[test]
    fn requests_with_conflicting_repeats_or_too_many_pairs_are_refused() {
        let p = Params::from_request(b"Action=X&A=1", Some(b"B=2&A=1")).expect("same value");
        assert_eq!((p.get("A"), p.get("B")), (Some("1"), Some("2")));
        for (query, body) in [
            (&b"A=1&A=2"[..], None),
            (b"A=1", Some(&b"A=2"[..])),
            (b"", Some(&b"A=%31&A=1+"[..])),
        ] {
            let e = Params::from_request(query, body).expect_err("conflict");
            assert_eq!(e.code, "InvalidParameterValue");
            assert!(e.message.contains("parameter A"), "{}", e.message);
        }
        for (form, what) in [
            (&b"KeyName=a%00b"[..], "U+0000"),
            (b"GroupDescription=%1b%5B2J", "U+001B"),
            (b"Tag.1.Value=%EF%BF%BF", "U+FFFF"),
            (b"Description=%ff", "UTF-8"),
            (b"%c3%28=x", "parameter name"),
        ] {
            let e = Params::from_request(b"", Some(form)).expect_err("refused");
            assert!(e.message.contains(what), "{}", e.message);
        }
        let kept = Params::from_request(b"D=a%09b%0D%0Ac+d%2B%E2%9C%93", None).expect("fine");
        assert_eq!(kept.get("D"), Some("a\tb\r\nc d+\u{2713}"));
        let many = "a=b&".repeat(MAX_PARAMS);
        assert!(Params::from_request(many.as_bytes(), None).is_ok());
        let e = Params::from_request(many.as_bytes(), Some(b"c=d")).expect_err("too many");
        assert!(e.message.contains("10001 parameters"), "{}", e.message);
    }

    #[test]
    fn typed_reads_fail_with_ec2_errors() {
        let p = Params::parse(b"MinCount=x&DryRun=yes&Empty=");
        let codes = [
            p.int("MinCount").err(),
            p.flag("DryRun").err(),
            p.required("Empty").err(),
            p.required("ImageId").err(),
        ]
        .map(|e| e.map(|e| e.code));
        let (invalid, missing) = (Some("InvalidParameterValue"), Some("MissingParameter"));
        assert_eq!(codes, [invalid, invalid, missing, missing]);
        assert_eq!(p.int("MaxCount").expect("absent"), None);
    }
}
