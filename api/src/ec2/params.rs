//! EC2 Query parameters: `Name=value` pairs, numbered lists (`InstanceId.1`,
//! `InstanceId.2`), numbered structures (`Filter.1.Name`,
//! `Filter.1.Value.1`) and typed reads that fail with EC2's errors.

use std::collections::BTreeMap;

use super::error::Ec2Error;

/// Most members of one list a request may give.
const MAX_LIST: usize = 1000;

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
              &Filter.2.Name=tag%3AName&Filter.2.Value.1=web&Filter.1.Name=instance-state-name\
              &Filter.1.Value.2=stopped&Filter.1.Value.1=running&InstanceIdX=no",
        );
        assert_eq!(p.list("InstanceId").expect("list"), ["i-a", "i-b", "i-c"]);
        let filters = p.structs("Filter").expect("filters");
        assert_eq!(filters.len(), 2);
        assert_eq!(filters[0].get("Name"), Some("instance-state-name"));
        assert_eq!(
            filters[0].list("Value").expect("values"),
            ["running", "stopped"]
        );
        assert_eq!(filters[1].get("Name"), Some("tag:Name"));
    }

    #[test]
    fn typed_reads_fail_with_ec2_errors() {
        let p = Params::parse(b"MinCount=x&DryRun=yes&Empty=");
        assert_eq!(
            p.int("MinCount").expect_err("not a number").code,
            "InvalidParameterValue"
        );
        assert_eq!(
            p.flag("DryRun").expect_err("not a bool").code,
            "InvalidParameterValue"
        );
        assert_eq!(
            p.required("Empty").expect_err("empty").code,
            "MissingParameter"
        );
        assert_eq!(
            p.required("ImageId").expect_err("absent").code,
            "MissingParameter"
        );
        assert_eq!(p.int("MaxCount").expect("absent"), None);
    }
}
