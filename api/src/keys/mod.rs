//! EC2 key pairs as AWS makes them: CreateKeyPair's RSA and ED25519 keys,
//! ImportKeyPair's public keys, and the fingerprint EC2 reports for each.
//!
//! The fingerprints follow the EC2 User Guide, "Verify the fingerprint of your
//! key pair", whose openssl/ssh-keygen recipes the tests run:
//! - RSA made by CreateKeyPair: SHA-1 of the DER PKCS#8 private key;
//! - RSA given to ImportKeyPair: MD5 of the DER SubjectPublicKeyInfo;
//!   both as lowercase hex pairs joined by ':';
//! - ED25519 either way: SHA-256 of the SSH public key blob in base64 with its
//!   '=' padding and no "SHA256:" prefix. The guide warns that EC2 pads where
//!   ssh-keygen does not; eksctl (PR #5151) and amazon.aws (PR #2406) had to
//!   pad theirs to match what EC2 returns.

mod import;

pub use import::import;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand_core::OsRng;
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::EncodePrivateKey as _;
use sha1::{Digest as _, Sha1};
use ssh_key::public::{KeyData, RsaPublicKey as SshRsa};
use ssh_key::{Algorithm, HashAlg, PrivateKey, PublicKey};

/// CreateKeyPair makes "2048-bit RSA" keys, as EC2's API reference says.
const CREATE_RSA_BITS: usize = 2048;
/// The EC2 User Guide lists 1024, 2048 and 4096 as the lengths ImportKeyPair
/// supports; 1024 is also OpenSSH's own floor. Raise this to refuse weak keys.
const MIN_IMPORT_RSA_BITS: usize = 1024;
/// OpenSSH's ceiling (SSH_RSA_MAXIMUM_MODULUS_SIZE): a guest's sshd refuses
/// larger keys, and EC2 is known to take keys above the 4096 its guide lists.
const MAX_IMPORT_RSA_BITS: usize = 16384;

/// The key types CreateKeyPair offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// RSA: made at 2048 bits, imported at 1024 to 16384.
    Rsa,
    /// ED25519.
    Ed25519,
}

impl KeyType {
    /// Reads EC2's KeyType value ("rsa" or "ed25519").
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rsa" => Some(Self::Rsa),
            "ed25519" => Some(Self::Ed25519),
            _ => None,
        }
    }

    /// EC2's KeyType value for this type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa => "rsa",
            Self::Ed25519 => "ed25519",
        }
    }
}

/// A key pair made by CreateKeyPair: the private key goes to the user once and is never stored.
pub struct NewKey {
    /// The private key as EC2 returns it: PKCS#1 PEM for RSA, OpenSSH PEM for ED25519.
    pub private_key: String,
    /// The public key as one authorized_keys line, the key name as its comment.
    pub public_openssh: String,
    /// EC2's fingerprint of the key (see the module documentation).
    pub fingerprint: String,
}

/// A public key given to ImportKeyPair.
pub struct Imported {
    /// The key's type.
    pub key_type: KeyType,
    /// The public key as one authorized_keys line, the key name as its comment.
    pub public_openssh: String,
    /// EC2's fingerprint of the key (see the module documentation).
    pub fingerprint: String,
}

/// Why a key pair could not be made or imported.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The import material is not a public key in a format EC2 accepts.
    #[error("Key is not in valid OpenSSH public key format: {0}")]
    Invalid(String),
    /// The material is a key, but of a type or size EC2 does not accept.
    #[error("Key is not in valid OpenSSH public key format: {0}")]
    Unsupported(String),
    /// Making or encoding a new key failed: the server's fault, not the caller's.
    #[error("could not generate the key pair ({step})")]
    Generate {
        /// What was being done.
        step: &'static str,
        /// The key library's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl KeyError {
    /// The EC2 error code to answer with.
    pub fn code(&self) -> &'static str {
        match self {
            // EC2 answers InvalidKey.Format for bad material and refused types alike.
            Self::Invalid(_) | Self::Unsupported(_) => "InvalidKey.Format",
            Self::Generate { .. } => "InternalError",
        }
    }
}

/// Makes a new key pair as CreateKeyPair does; `name` becomes the OpenSSH comment.
pub fn create(key_type: KeyType, name: &str) -> Result<NewKey, KeyError> {
    match key_type {
        KeyType::Rsa => create_rsa(name),
        KeyType::Ed25519 => create_ed25519(name),
    }
}

fn create_rsa(name: &str) -> Result<NewKey, KeyError> {
    let private =
        RsaPrivateKey::new(&mut OsRng, CREATE_RSA_BITS).map_err(generate("make the RSA key"))?;
    // EC2 returns "an unencrypted PEM encoded PKCS#1 private key" for RSA.
    let pem = private
        .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .map_err(generate("encode the RSA key as PKCS#1"))?;
    let pkcs8 = private
        .to_pkcs8_der()
        .map_err(generate("encode the RSA key as PKCS#8"))?;
    let public = SshRsa::try_from(private.to_public_key())
        .map_err(generate("convert the RSA public key"))?;
    Ok(NewKey {
        private_key: pem.as_str().to_owned(),
        public_openssh: openssh(KeyData::Rsa(public), name)
            .map_err(generate("encode the RSA public key"))?,
        fingerprint: colon_hex(&Sha1::digest(pkcs8.as_bytes())),
    })
}

fn create_ed25519(name: &str) -> Result<NewKey, KeyError> {
    let mut private = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
        .map_err(generate("make the ED25519 key"))?;
    private.set_comment(comment(name));
    // EC2 returns ED25519 keys in OpenSSH's own format ("BEGIN OPENSSH PRIVATE KEY").
    let pem = private
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(generate("encode the ED25519 key"))?;
    let public = private.public_key();
    Ok(NewKey {
        private_key: pem.as_str().to_owned(),
        public_openssh: public
            .to_openssh()
            .map_err(generate("encode the ED25519 public key"))?,
        fingerprint: sha256_base64(public.key_data()),
    })
}

fn openssh(key_data: KeyData, name: &str) -> Result<String, ssh_key::Error> {
    PublicKey::new(key_data, comment(name)).to_openssh()
}

/// The key name as an OpenSSH comment. It lands in guests' authorized_keys,
/// so a control character (a newline above all) must never start a new entry.
fn comment(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect()
}

fn sha256_base64(key_data: &KeyData) -> String {
    B64.encode(key_data.fingerprint(HashAlg::Sha256).as_bytes())
}

fn colon_hex(digest: &[u8]) -> String {
    let pairs: Vec<String> = digest.iter().map(|b| format!("{b:02x}")).collect();
    pairs.join(":")
}

fn invalid(reason: impl Into<String>) -> KeyError {
    KeyError::Invalid(reason.into())
}

/// `Generate` for `step`, keeping the library's error as the cause.
fn generate<E: std::error::Error + Send + Sync + 'static>(
    step: &'static str,
) -> impl FnOnce(E) -> KeyError {
    move |e| KeyError::Generate {
        step,
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests;
