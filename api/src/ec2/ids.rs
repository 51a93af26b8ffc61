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

/// The first 16 bytes of SHA-256 over `parts` joined by NUL, as a number:
/// the seed of every id derived from a project or instance.
fn digest(parts: &[&str]) -> u128 {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hash.update([0u8]);
        }
        hash.update(part.as_bytes());
    }
    let bytes = hash.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&bytes[..16]);
    u128::from_be_bytes(first)
}

/// `prefix-` and 17 hex digits derived from `parts`: the same parts always
/// give the same id, so an id that is never stored can still be looked up.
fn derived(prefix: &str, parts: &[&str]) -> String {
    let n = digest(parts) & ((1u128 << 68) - 1);
    format!("{prefix}-{n:017x}")
}

/// A project's AWS-style account id: 12 digits, stable, the `Account` of
/// STS GetCallerIdentity and the `ownerId` of every EC2 response.
pub fn account_id(project_id: &str) -> String {
    format!("{:012}", digest(&["account", project_id]) % 1_000_000_000_000)
}

/// The id of a project's default VPC.
pub fn default_vpc_id(project_id: &str) -> String {
    derived("vpc", &["vpc", project_id])
}

/// The id of a project's default subnet in availability zone `zone`.
pub fn default_subnet_id(project_id: &str, zone: &str) -> String {
    derived("subnet", &["subnet", project_id, zone])
}

/// The id of an instance's primary network interface (from its UUID).
pub fn network_interface_id(instance_uuid: &str) -> String {
    derived("eni", &["eni", instance_uuid])
}

/// The id of that interface's attachment to its instance.
pub fn attachment_id(instance_uuid: &str) -> String {
    derived("eni-attach", &["eni-attach", instance_uuid])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_well_formed_and_distinct() {
        let account = account_id("acme");
        assert_eq!(account, account_id("acme"));
        assert_eq!(account.len(), 12);
        assert!(account.chars().all(|c| c.is_ascii_digit()), "{account}");
        assert_ne!(account, account_id("other"));
        let vpc = default_vpc_id("acme");
        assert!(is_id("vpc", &vpc) && vpc.len() == 21, "{vpc}");
        assert_eq!(vpc, default_vpc_id("acme"));
        assert_ne!(vpc, default_vpc_id("other"));
        let a = default_subnet_id("acme", "nova");
        assert!(is_id("subnet", &a), "{a}");
        assert_ne!(a, default_subnet_id("acme", "zone-b"));
        assert_ne!(a, default_subnet_id("other", "nova"));
        let eni = network_interface_id("3f2b0c1e-0000-4000-8000-000000000001");
        assert!(is_id("eni", &eni), "{eni}");
        assert!(is_id("eni-attach", &attachment_id("x")));
    }

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
