//! `Filter.N.Name` / `Filter.N.Value.M`: filters combine with AND, values
//! of one filter with OR; values may use `*` and `?` as EC2 allows.

use super::error::Ec2Error;
use super::params::{Params, shown};

/// One filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Its name (`instance-state-name`, `tag:Name`, …).
    pub name: String,
    /// Accepted values (patterns).
    pub values: Vec<String>,
}

/// Reads the request's filters; a name not in `known` (nor `tag:…`,
/// `tag-key`, `tag-value`) is refused, as EC2 refuses it.
pub fn parse(params: &Params, known: &[&str]) -> Result<Vec<Filter>, Ec2Error> {
    params
        .structs("Filter")?
        .into_iter()
        .map(|f| {
            let name = f.required("Name")?.to_owned();
            let tagged = name.starts_with("tag:") || name == "tag-key" || name == "tag-value";
            if !tagged && !known.contains(&name.as_str()) {
                return Err(Ec2Error::invalid(format!(
                    "The filter '{}' is invalid",
                    shown(&name)
                )));
            }
            Ok(Filter {
                values: f.list("Value")?,
                name,
            })
        })
        .collect()
}

/// Whether a resource passes every filter; `values` gives the resource's
/// values for a filter name, `tags` its tags.
pub fn matches(
    filters: &[Filter],
    tags: &[(String, String)],
    values: impl Fn(&str) -> Vec<String>,
) -> bool {
    filters.iter().all(|f| {
        let have: Vec<String> = if let Some(key) = f.name.strip_prefix("tag:") {
            tags.iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .collect()
        } else if f.name == "tag-key" {
            tags.iter().map(|(k, _)| k.clone()).collect()
        } else if f.name == "tag-value" {
            tags.iter().map(|(_, v)| v.clone()).collect()
        } else {
            values(&f.name)
        };
        f.values
            .iter()
            .any(|pattern| have.iter().any(|v| glob(pattern, v)))
    })
}

/// `*` matches any run, `?` one character; `\` escapes either.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative match with one backtrack point: linear-ish, no recursion, so
    // a hostile pattern cannot blow the stack.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let (lit, width) = match p.get(pi) {
            Some('\\') => (p.get(pi + 1).copied(), 2),
            Some(c) => (Some(*c), 1),
            None => (None, 0),
        };
        match (p.get(pi), lit) {
            (Some('*'), _) => {
                star = Some((pi, ti));
                pi += 1;
            }
            (Some('?'), _) => {
                pi += 1;
                ti += 1;
            }
            (Some(_), Some(c)) if c == t[ti] => {
                pi += width;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_ec2_filters_do() {
        assert!(glob("web-*", "web-01"));
        assert!(glob("*", ""));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob(r"100\*", "100*"));
        assert!(!glob(r"100\*", "1000"));
        assert!(glob("*-prod-*", "eu-prod-7"));
        assert!(!glob("exact", "exactly"));
        let long = "a".repeat(5000);
        assert!(!glob(&format!("{}b", "*a".repeat(50)), &long));
    }

    #[test]
    fn unknown_filter_names_are_refused_and_tags_filter() {
        let p = Params::parse(b"Filter.1.Name=color&Filter.1.Value.1=red");
        assert_eq!(
            parse(&p, &["instance-id"]).expect_err("unknown").code,
            "InvalidParameterValue"
        );
        let p = Params::parse(b"Filter.1.Name=tag:env&Filter.1.Value.1=prod&Filter.2.Name=instance-id&Filter.2.Value.1=i-1&Filter.2.Value.2=i-2");
        let f = parse(&p, &["instance-id"]).expect("filters");
        let tags = vec![("env".to_owned(), "prod".to_owned())];
        assert!(matches(&f, &tags, |_| vec!["i-2".into()]));
        assert!(!matches(&f, &tags, |_| vec!["i-3".into()]));
        assert!(!matches(&f, &[], |_| vec!["i-2".into()]));
    }
}
