//! Identifier newtypes that validate on parse, so raw strings do not cross
//! module boundaries.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A string that failed to parse as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {why}")]
pub struct InvalidId {
    /// The kind of identifier.
    pub what: &'static str,
    /// The value given, cut to 80 characters.
    pub value: String,
    /// Which rule it broke.
    pub why: &'static str,
}

fn invalid(what: &'static str, value: &str, why: &'static str) -> InvalidId {
    InvalidId {
        what,
        value: value.chars().take(80).collect(),
        why,
    }
}

/// Checks a name made of ASCII letters, digits, `-`, `_` and `.`, at most `max` long.
fn check_name(what: &'static str, s: &str, max: usize) -> Result<(), InvalidId> {
    if s.is_empty() {
        return Err(invalid(what, s, "empty"));
    }
    if s.len() > max {
        return Err(invalid(what, s, "too long"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(invalid(
            what,
            s,
            "only letters, digits, '-', '_' and '.' are allowed",
        ));
    }
    Ok(())
}

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The identifier as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                check_name($what, s, $max)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<Self, InvalidId> {
                check_name($what, &s, $max)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_id!(
    /// A compute host's name, as used in `compute.<host>` routing keys.
    HostName, "host name", 64
);
name_id!(
    /// A project (tenant) id.
    ProjectId, "project id", 64
);
name_id!(
    /// A user id.
    UserId, "user id", 64
);

/// The canonical id of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(pub uuid::Uuid);

impl InstanceId {
    /// A new random id.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl Default for InstanceId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for InstanceId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        uuid::Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| invalid("instance id", s, "not a UUID"))
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl InstanceId {
    /// The EC2 id: `i-` and the first 17 hex digits of the UUID.
    pub fn ec2_id(&self) -> String {
        let hex = self.0.simple().to_string();
        format!("i-{}", &hex[..17])
    }

    /// The instance's MAC address: `02` (locally administered, unicast) and
    /// 40 random bits of the UUID, so a retried build gets the same one and
    /// the api describing the interface agrees without storing it. Guests on
    /// one bridge are pinned to their MACs and two alike would take each
    /// other's frames (24 bits collided about once in 500 full networks of
    /// 250 guests).
    pub fn mac(&self) -> MacAddress {
        let b = self.0.as_bytes();
        MacAddress(format!(
            "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[11], b[12], b[13], b[14], b[15]
        ))
    }
}

/// An Ethernet MAC address in `aa:bb:cc:dd:ee:ff` form (lowercase).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddress(String);

impl MacAddress {
    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for MacAddress {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        let octets: Vec<&str> = s.split(':').collect();
        let valid = octets.len() == 6
            && octets
                .iter()
                .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()));
        if !valid {
            return Err(invalid(
                "MAC address",
                s,
                "not six ':'-separated hex octets",
            ));
        }
        Ok(Self(s.to_ascii_lowercase()))
    }
}

impl TryFrom<String> for MacAddress {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, InvalidId> {
        s.parse()
    }
}

impl From<MacAddress> for String {
    fn from(mac: MacAddress) -> String {
        mac.0
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A security group id: `sg-` and 8 to 17 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecurityGroupId(String);

impl SecurityGroupId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex digits after `sg-`.
    pub fn hex(&self) -> &str {
        &self.0[3..]
    }
}

impl FromStr for SecurityGroupId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        let hex = s
            .strip_prefix("sg-")
            .ok_or_else(|| invalid("security group id", s, "must start with sg-"))?;
        if !(8..=17).contains(&hex.len())
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid(
                "security group id",
                s,
                "sg- must be followed by 8 to 17 lowercase hex digits",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for SecurityGroupId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, InvalidId> {
        s.parse()
    }
}

impl From<SecurityGroupId> for String {
    fn from(id: SecurityGroupId) -> String {
        id.0
    }
}

impl fmt::Display for SecurityGroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_name_rejects_routing_wildcards_and_spaces() {
        for bad in ["", "a b", "node#1", "node*", &"x".repeat(65)] {
            assert!(bad.parse::<HostName>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            "node-1.rack2".parse::<HostName>().map(|h| h.to_string()),
            Ok("node-1.rack2".into())
        );
    }

    #[test]
    fn an_instance_mac_is_stable_local_unicast_and_valid() {
        let id: InstanceId = "3f2b0c1e-0000-4000-8000-0000000a0b0c"
            .parse()
            .expect("uuid");
        let mac = id.mac();
        assert_eq!(mac.as_str(), "02:00:00:0a:0b:0c");
        assert_eq!(mac.as_str().parse::<MacAddress>(), Ok(mac.clone()));
        assert_eq!(id.mac(), mac);
    }

    #[test]
    fn mac_and_group_ids_validate() {
        assert_eq!(
            "02:16:3E:00:00:01"
                .parse::<MacAddress>()
                .map(|m| m.to_string()),
            Ok("02:16:3e:00:00:01".into())
        );
        for bad in [
            "02:16:3e:00:00",
            "02:16:3e:00:00:0g",
            "02-16-3e-00-00-01",
            "",
        ] {
            assert!(bad.parse::<MacAddress>().is_err(), "{bad:?}");
        }
        assert!("sg-0123456789abcdef0".parse::<SecurityGroupId>().is_ok());
        for bad in [
            "sg-",
            "sg-XYZ12345",
            "default",
            "sg-../../etc",
            "sg-0123456789abcdef01",
        ] {
            assert!(bad.parse::<SecurityGroupId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ec2_ids_are_i_and_17_hex_digits() {
        let id = InstanceId::new().ec2_id();
        assert_eq!(id.len(), 19);
        assert!(id.starts_with("i-") && id[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn ids_refuse_invalid_values_when_deserialized() {
        assert!(serde_json::from_str::<ProjectId>("\"../etc\"").is_err());
        assert!(serde_json::from_str::<InstanceId>("\"not-a-uuid\"").is_err());
    }
}
