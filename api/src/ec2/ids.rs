//! EC2-style ids: a prefix and 17 lowercase hex digits.

/// A new random id with `prefix` (`r`, `sg`, `ami`, `key`, …).
pub fn new_id(prefix: &str) -> String {
    let n = fastrand::u128(..) & ((1u128 << 68) - 1);
    format!("{prefix}-{n:017x}")
}

/// Whether `id` is `prefix-` followed by 8 to 17 lowercase hex digits.
pub fn is_id(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            (8..=17).contains(&hex.len())
                && hex
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_well_formed() {
        for prefix in ["r", "sg", "ami", "key"] {
            let id = new_id(prefix);
            assert!(is_id(prefix, &id), "{id}");
            assert_eq!(id.len(), prefix.len() + 18);
        }
        assert!(!is_id("ami", "ami-XYZ00000"));
        assert!(!is_id("ami", "aki-0123456789abcdef0"));
        assert!(!is_id("ami", "ami-../../etc"));
    }
}
