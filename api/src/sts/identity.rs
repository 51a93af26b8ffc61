//! Who a caller is in AWS's terms: the project's account, and the user as
//! an IAM user of that account, derived so nothing needs storing.

use sha2::{Digest, Sha256};

use crate::ec2::ids::account_id;

/// RFC 4648 base32: the upper-case letters and digits AWS's unique ids use.
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// How many characters follow the `AIDA` prefix of an IAM user's id.
const UNIQUE_LEN: usize = 17;

/// What GetCallerIdentity answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The project's 12-digit account id (the `ownerId` of its EC2 resources).
    pub account: String,
    /// `arn:aws:iam::<account>:user/<user>`.
    pub arn: String,
    /// `AIDA` and 17 upper-case letters and digits, as an IAM user's id.
    pub user_id: String,
}

impl Identity {
    /// The identity of `user` acting in `project_id`: the same pair always
    /// gives the same identity, whichever of its keys signed.
    pub fn of(project_id: &str, user: &str) -> Self {
        let account = account_id(project_id);
        Self {
            arn: format!("arn:aws:iam::{account}:user/{user}"),
            user_id: user_unique_id(project_id, user),
            account,
        }
    }
}

/// The IAM-style unique id of `user` in `project_id`. A user in two
/// projects is two IAM users of two accounts, as in AWS, so both go in.
fn user_unique_id(project_id: &str, user: &str) -> String {
    let mut hash = Sha256::new();
    for part in ["iam-user", project_id, user] {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    let digest = hash.finalize();
    // 17 characters of 5 bits each: the first 85 bits of the digest.
    let mut bits = u128::from_be_bytes(digest[..16].try_into().unwrap_or([0; 16]));
    let mut id = String::with_capacity(4 + UNIQUE_LEN);
    id.push_str("AIDA");
    for _ in 0..UNIQUE_LEN {
        id.push(char::from(ALPHABET[(bits >> 123) as usize]));
        bits <<= 5;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_user_and_project_always_give_the_same_identity() {
        let alice = Identity::of("acme", "alice");
        assert_eq!(alice, Identity::of("acme", "alice"));
        assert_eq!(alice.account, account_id("acme"));
        assert_eq!(
            alice.arn,
            format!("arn:aws:iam::{}:user/alice", alice.account)
        );
        assert_eq!(alice.user_id.len(), 21, "{}", alice.user_id);
        assert!(alice.user_id.starts_with("AIDA"), "{}", alice.user_id);
        assert!(
            alice.user_id[4..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
            "{}",
            alice.user_id
        );
    }

    #[test]
    fn another_user_or_project_is_another_identity() {
        let alice = Identity::of("acme", "alice");
        let bob = Identity::of("acme", "bob");
        let elsewhere = Identity::of("other", "alice");
        assert_eq!(alice.account, bob.account);
        assert_ne!(alice.user_id, bob.user_id);
        assert_ne!(alice.account, elsewhere.account);
        assert_ne!(alice.user_id, elsewhere.user_id);
        assert_ne!(alice.arn, elsewhere.arn);
    }
}
