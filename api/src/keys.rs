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

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use md5::Md5;
use rand_core::OsRng;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::der::{Decode as _, Document};
use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, SubjectPublicKeyInfoRef};
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use sha1::{Digest as _, Sha1};
use ssh_key::public::{KeyData, RsaPublicKey as SshRsa};
use ssh_key::{Algorithm, HashAlg, Mpint, PrivateKey, PublicKey};

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
    #[error("could not generate the key pair: {0}")]
    Generate(String),
}

impl KeyError {
    /// The EC2 error code to answer with.
    pub fn code(&self) -> &'static str {
        match self {
            // EC2 answers InvalidKey.Format for bad material and refused types alike.
            Self::Invalid(_) | Self::Unsupported(_) => "InvalidKey.Format",
            Self::Generate(_) => "InternalError",
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
    let private = RsaPrivateKey::new(&mut OsRng, CREATE_RSA_BITS).map_err(generate)?;
    // EC2 returns "an unencrypted PEM encoded PKCS#1 private key" for RSA.
    let pem = private
        .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .map_err(generate)?;
    let pkcs8 = private.to_pkcs8_der().map_err(generate)?;
    let public = SshRsa::try_from(private.to_public_key()).map_err(generate)?;
    Ok(NewKey {
        private_key: pem.as_str().to_owned(),
        public_openssh: openssh(KeyData::Rsa(public), name).map_err(generate)?,
        fingerprint: colon_hex(&Sha1::digest(pkcs8.as_bytes())),
    })
}

fn create_ed25519(name: &str) -> Result<NewKey, KeyError> {
    let mut private = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).map_err(generate)?;
    private.set_comment(comment(name));
    // EC2 returns ED25519 keys in OpenSSH's own format ("BEGIN OPENSSH PRIVATE KEY").
    let pem = private
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(generate)?;
    let public = private.public_key();
    Ok(NewKey {
        private_key: pem.as_str().to_owned(),
        public_openssh: public.to_openssh().map_err(generate)?,
        fingerprint: sha256_base64(public.key_data()),
    })
}

/// Reads a public key as ImportKeyPair gets it once PublicKeyMaterial is
/// base64-decoded: an OpenSSH line, an RFC 4716 block, or an RSA key as PEM or
/// base64 DER. `name` becomes the OpenSSH comment in place of the key's own.
pub fn import(material: &[u8], name: &str) -> Result<Imported, KeyError> {
    let key_data = parse_public(material)?;
    let (key_type, fingerprint) = match &key_data {
        KeyData::Ed25519(_) => (KeyType::Ed25519, sha256_base64(&key_data)),
        KeyData::Rsa(key) => {
            let spki = checked_rsa(key)?
                .to_public_key_der()
                .map_err(|err| invalid(format!("cannot encode the RSA key: {err}")))?;
            (KeyType::Rsa, colon_hex(&Md5::digest(spki.as_bytes())))
        }
        other => {
            return Err(KeyError::Unsupported(format!(
                "{} keys are not accepted, only RSA and ED25519",
                other.algorithm()
            )));
        }
    };
    let public_openssh =
        openssh(key_data, name).map_err(|err| invalid(format!("cannot encode the key: {err}")))?;
    Ok(Imported {
        key_type,
        public_openssh,
        fingerprint,
    })
}

fn parse_public(material: &[u8]) -> Result<KeyData, KeyError> {
    // DER is binary: a client may have base64-encoded the DER itself only once.
    if material.first() == Some(&0x30) {
        return rsa_from_der(material);
    }
    let text = std::str::from_utf8(material)
        .map_err(|_| invalid("the key is neither text nor DER"))?
        .trim();
    let first_line = text.lines().next().unwrap_or_default();
    if text.is_empty() {
        Err(invalid("the key is empty"))
    } else if first_line.trim() == "---- BEGIN SSH2 PUBLIC KEY ----" {
        from_rfc4716(text)
    } else if first_line.starts_with("-----BEGIN ") && first_line.contains("PRIVATE KEY") {
        Err(invalid("this is a private key; import only the public key"))
    } else if first_line.starts_with("-----BEGIN ") {
        let (label, der) =
            Document::from_pem(text).map_err(|err| invalid(format!("bad PEM: {err}")))?;
        match label {
            "PUBLIC KEY" | "RSA PUBLIC KEY" => rsa_from_der(der.as_bytes()),
            other => Err(invalid(format!("unexpected PEM block {other:?}"))),
        }
    } else if first_line
        .split_whitespace()
        .next()
        .is_some_and(|t| t.contains('-'))
    {
        // An algorithm name such as "ssh-rsa": '-' is never in base64.
        if text.lines().count() != 1 {
            return Err(invalid("expected one key on one line"));
        }
        PublicKey::from_openssh(text)
            .map(|key| key.key_data().clone())
            .map_err(|err| invalid(format!("bad OpenSSH public key: {err}")))
    } else {
        // Bare base64, maybe wrapped: EC2's "base64 encoded DER", or an SSH blob sent alike.
        let b64: String = text.split_whitespace().collect();
        let bytes = B64
            .decode(b64)
            .map_err(|err| invalid(format!("bad base64: {err}")))?;
        match bytes.first() {
            Some(0x30) => rsa_from_der(&bytes),
            _ => ssh_blob(&bytes),
        }
    }
}

/// Reads RFC 4716's "SSH2 public key" block, whose body is the SSH blob in base64.
fn from_rfc4716(text: &str) -> Result<KeyData, KeyError> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let [_begin, inner @ .., end] = lines.as_slice() else {
        return Err(invalid("truncated SSH2 public key block"));
    };
    if *end != "---- END SSH2 PUBLIC KEY ----" {
        return Err(invalid("SSH2 public key block has no END line"));
    }
    let mut body = String::new();
    let mut continued = false;
    for line in inner {
        // Headers are "Tag: value" and go on past a trailing '\'; base64 has no ':'.
        if continued || line.contains(':') {
            continued = line.ends_with('\\');
        } else {
            body.push_str(line);
        }
    }
    let bytes = B64
        .decode(body)
        .map_err(|err| invalid(format!("bad base64: {err}")))?;
    ssh_blob(&bytes)
}

fn ssh_blob(bytes: &[u8]) -> Result<KeyData, KeyError> {
    PublicKey::from_bytes(bytes)
        .map(|key| key.key_data().clone())
        .map_err(|err| invalid(format!("bad SSH public key: {err}")))
}

/// Reads an RSA key as DER SubjectPublicKeyInfo or as PKCS#1 RSAPublicKey.
fn rsa_from_der(der: &[u8]) -> Result<KeyData, KeyError> {
    let key = match SubjectPublicKeyInfoRef::from_der(der) {
        Ok(spki) if spki.algorithm.oid != rsa::pkcs1::ALGORITHM_OID => {
            return Err(KeyError::Unsupported(
                "only RSA keys are accepted as DER".into(),
            ));
        }
        Ok(spki) => spki
            .subject_public_key
            .as_bytes()
            .ok_or(rsa::pkcs1::der::Tag::BitString.value_error())
            .and_then(rsa::pkcs1::RsaPublicKey::from_der),
        Err(_) => rsa::pkcs1::RsaPublicKey::from_der(der),
    }
    .map_err(|err| invalid(format!("bad DER RSA public key: {err}")))?;
    let mpint =
        |bytes: &[u8]| Mpint::from_positive_bytes(bytes).map_err(|_| invalid("bad RSA number"));
    Ok(KeyData::Rsa(SshRsa {
        e: mpint(key.public_exponent.as_bytes())?,
        n: mpint(key.modulus.as_bytes())?,
    }))
}

/// Turns an SSH RSA key into RustCrypto's, holding it to the sizes import allows.
fn checked_rsa(key: &SshRsa) -> Result<RsaPublicKey, KeyError> {
    let n = BigUint::try_from(&key.n).map_err(|_| invalid("RSA modulus is not positive"))?;
    let e = BigUint::try_from(&key.e).map_err(|_| invalid("RSA exponent is not positive"))?;
    let bits = n.bits();
    if !(MIN_IMPORT_RSA_BITS..=MAX_IMPORT_RSA_BITS).contains(&bits) {
        return Err(KeyError::Unsupported(format!(
            "RSA keys must have {MIN_IMPORT_RSA_BITS} to {MAX_IMPORT_RSA_BITS} bits, not {bits}"
        )));
    }
    RsaPublicKey::new_with_max_size(n, e, MAX_IMPORT_RSA_BITS)
        .map_err(|err| invalid(format!("bad RSA key: {err}")))
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

fn generate(err: impl std::fmt::Display) -> KeyError {
    KeyError::Generate(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Runs a shell pipeline; fails the test unless every stage succeeds.
    fn sh(cmd: &str) -> String {
        let out = Command::new("bash")
            .args(["-o", "pipefail", "-c", cmd])
            .output()
            .expect("bash runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{cmd}: {stderr}");
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    /// The digest from openssl's "(stdin)= ab:cd" or "MD5(stdin)= ab:cd".
    fn openssl_digest(out: &str) -> String {
        out.rsplit("= ").next().expect("digest").to_owned()
    }

    /// ssh-keygen -l's "SHA256:xyz" as EC2 shows it: no prefix, '=' padded.
    fn ec2_sha256(keygen_l: &str) -> String {
        let field = keygen_l.split_whitespace().nth(1).expect("fingerprint");
        format!("{}=", field.strip_prefix("SHA256:").expect("SHA256 prefix"))
    }

    /// The "type base64" part of an OpenSSH line, without the comment.
    fn key_part(line: &str) -> String {
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn private_file(dir: &Path, pem: &str) -> PathBuf {
        let path = dir.join("key");
        std::fs::write(&path, pem).expect("write key");
        // ssh-keygen refuses a private key others can read.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    }

    fn keygen(dir: &Path, args: &str) -> (PathBuf, String) {
        // One file per key type and size: ssh-keygen will not overwrite without asking.
        let path = dir.join(args.replace([' ', '-'], ""));
        sh(&format!(
            "ssh-keygen -q {args} -N '' -C orig -f {}",
            path.display()
        ));
        let public = std::fs::read_to_string(path.with_extension("pub")).expect("read .pub");
        (path, public)
    }

    fn refused(material: &[u8]) -> KeyError {
        match import(material, "k") {
            Ok(key) => panic!(
                "accepted {:?} as {}",
                String::from_utf8_lossy(material),
                key.public_openssh
            ),
            Err(err) => {
                assert_eq!(err.code(), "InvalidKey.Format", "{err}");
                err
            }
        }
    }

    #[test]
    fn key_types_read_and_write_ec2_values() {
        for t in [KeyType::Rsa, KeyType::Ed25519] {
            assert_eq!(KeyType::parse(t.as_str()), Some(t));
        }
        assert_eq!(KeyType::parse("RSA"), None);
        assert_eq!(KeyType::parse("dsa"), None);
        assert_eq!(KeyError::Generate("x".into()).code(), "InternalError");
    }

    #[test]
    fn created_rsa_is_pkcs1_pem_with_ec2s_sha1_fingerprint() {
        let key = create(KeyType::Rsa, "web key").expect("create");
        assert!(
            key.private_key
                .starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = private_file(dir.path(), &key.private_key);
        let p = path.display();
        sh(&format!("openssl rsa -in {p} -check -noout"));
        let bits = sh(&format!("openssl rsa -in {p} -text -noout | head -1"));
        assert!(bits.contains("2048 bit"), "{bits}");
        let aws = sh(&format!(
            "openssl pkcs8 -in {p} -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c"
        ));
        assert_eq!(key.fingerprint, openssl_digest(&aws));
        assert_eq!(key.fingerprint.len(), 20 * 3 - 1);
        assert_eq!(
            key_part(&sh(&format!("ssh-keygen -y -f {p}"))),
            key_part(&key.public_openssh)
        );
        assert!(
            key.public_openssh.starts_with("ssh-rsa AAAA")
                && key.public_openssh.ends_with(" web key")
        );
    }

    #[test]
    fn created_ed25519_is_openssh_pem_with_padded_sha256_fingerprint() {
        let key = create(KeyType::Ed25519, "laptop").expect("create");
        assert!(
            key.private_key
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = private_file(dir.path(), &key.private_key);
        let p = path.display();
        assert_eq!(sh(&format!("ssh-keygen -y -f {p}")), key.public_openssh);
        assert_eq!(key.public_openssh.split_whitespace().nth(2), Some("laptop"));
        let expected = ec2_sha256(&sh(&format!("ssh-keygen -l -E sha256 -f {p}")));
        assert_eq!(key.fingerprint, expected);
        assert!(key.fingerprint.len() == 44 && key.fingerprint.ends_with('='));
        // The guide: an ED25519 key keeps its fingerprint when re-imported.
        let again = import(key.public_openssh.as_bytes(), "laptop").expect("import");
        assert_eq!(
            (again.key_type, again.fingerprint),
            (KeyType::Ed25519, key.fingerprint)
        );
    }

    #[test]
    fn imported_rsa_has_ec2s_md5_fingerprint_at_every_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        for bits in [1024, 2048, 3072, 4096] {
            let (path, public) = keygen(dir.path(), &format!("-t rsa -b {bits}"));
            let key = import(public.as_bytes(), "imported").expect("import");
            let aws = sh(&format!(
                "ssh-keygen -e -m PKCS8 -f {}.pub | openssl pkey -pubin -outform DER | openssl md5 -c",
                path.display()
            ));
            assert_eq!(key.fingerprint, openssl_digest(&aws), "{bits} bits");
            assert_eq!(key.key_type, KeyType::Rsa);
            assert_eq!(
                key.public_openssh,
                format!("{} imported", key_part(&public))
            );
        }
    }

    #[test]
    fn every_rsa_format_ec2_takes_gives_the_same_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, public) = keygen(dir.path(), "-t rsa -b 2048");
        let pub_path = format!("{}.pub", path.display());
        let want = import(public.as_bytes(), "n").expect("openssh");
        let spki_pem = sh(&format!("ssh-keygen -e -m PKCS8 -f {pub_path}"));
        let spki_b64: String = spki_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let forms = [
            format!("\r\n  {}  \r\n", public.trim()),
            sh(&format!("ssh-keygen -e -f {pub_path}")), // RFC 4716
            sh(&format!("ssh-keygen -e -m PEM -f {pub_path}")), // PKCS#1 PEM
            spki_pem.clone(),
            spki_b64.clone(),
            spki_pem
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<Vec<_>>()
                .join("\n"),
        ];
        for form in forms
            .iter()
            .map(String::as_bytes)
            .chain([&B64.decode(&spki_b64).expect("der")[..]])
        {
            let got = import(form, "n")
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(form)));
            assert_eq!(
                (got.fingerprint, got.public_openssh),
                (want.fingerprint.clone(), want.public_openssh.clone())
            );
        }
    }

    #[test]
    fn imported_ed25519_has_padded_sha256_fingerprint_in_both_ssh_formats() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, public) = keygen(dir.path(), "-t ed25519");
        let pub_path = format!("{}.pub", path.display());
        let expected = ec2_sha256(&sh(&format!("ssh-keygen -l -E sha256 -f {pub_path}")));
        let rfc4716 = sh(&format!("ssh-keygen -e -f {pub_path}"));
        let odd_comment = format!("{} my PRIVATE KEY -----BEGIN", key_part(&public));
        for form in [format!("\n{public}\n\n"), rfc4716, odd_comment] {
            let key = import(form.as_bytes(), "mine").expect("import");
            assert_eq!(key.key_type, KeyType::Ed25519);
            assert_eq!(key.fingerprint, expected);
            assert_eq!(key.public_openssh, format!("{} mine", key_part(&public)));
        }
    }

    #[test]
    fn a_name_cannot_add_a_line_to_authorized_keys() {
        let evil = "x\nssh-ed25519 AAAAattacker\r";
        let made = create(KeyType::Ed25519, evil).expect("create");
        let imported = import(made.public_openssh.as_bytes(), evil).expect("import");
        for line in [made.public_openssh, imported.public_openssh] {
            assert!(!line.contains(['\n', '\r']), "{line:?}");
        }
    }

    #[test]
    fn other_types_and_small_rsa_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ecdsa, ecdsa_pub) = keygen(dir.path(), "-t ecdsa");
        assert!(matches!(
            refused(ecdsa_pub.as_bytes()),
            KeyError::Unsupported(_)
        ));
        let ec_pem = sh(&format!(
            "ssh-keygen -e -m PKCS8 -f {}.pub",
            ecdsa.display()
        ));
        assert!(matches!(
            refused(ec_pem.as_bytes()),
            KeyError::Unsupported(_)
        ));
        // Built here: newer OpenSSH cannot make DSA keys. Decoding ignores the math.
        let n = |b: u8| Mpint::from_positive_bytes(&[b; 128]).expect("mpint");
        let dsa = ssh_key::public::DsaPublicKey {
            p: n(0x7f),
            q: n(0x11),
            g: n(0x22),
            y: n(0x33),
        };
        let dsa_line = PublicKey::new(KeyData::Dsa(dsa), "d")
            .to_openssh()
            .expect("dsa");
        assert!(dsa_line.starts_with("ssh-dss "));
        assert!(matches!(
            refused(dsa_line.as_bytes()),
            KeyError::Unsupported(_)
        ));
        let small = RsaPrivateKey::new(&mut OsRng, 768)
            .expect("768-bit key")
            .to_public_key();
        let small_ssh =
            openssh(KeyData::Rsa(SshRsa::try_from(&small).expect("ssh")), "s").expect("line");
        assert!(matches!(
            refused(small_ssh.as_bytes()),
            KeyError::Unsupported(_)
        ));
        let small_pem = small
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .expect("pem");
        assert!(matches!(
            refused(small_pem.as_bytes()),
            KeyError::Unsupported(_)
        ));
    }

    #[test]
    fn garbage_is_invalid_key_format() {
        let made = create(KeyType::Ed25519, "g").expect("create");
        let line = made.public_openssh.clone();
        let b64 = line.split_whitespace().nth(1).expect("base64");
        let truncated = format!("ssh-ed25519 {}", &b64[..b64.len() / 2]);
        let huge_len = format!(
            "ssh-rsa {}",
            B64.encode(b"\0\0\0\x07ssh-rsa\xff\xff\xff\xff")
        );
        let rfc4716 = "---- BEGIN SSH2 PUBLIC KEY ----\nAAAAC3NzaC1lZDI1NTE5\n";
        let cases: Vec<&[u8]> = vec![
            b"",
            b" \n\t ",
            b"\xff\xfe\x00garbage",
            b"\x30\x03\x02\x01\x00",
            b"ssh-rsa",
            b"ssh-rsa AAAA",
            b"ssh-ed25519 !!!not-base64!!!",
            b"AAAA",
            b"hello world",
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
            rfc4716.as_bytes(),
            truncated.as_bytes(),
            huge_len.as_bytes(),
            made.private_key.as_bytes(),
        ];
        for case in cases {
            refused(case);
        }
        for bad in [format!("{line}\n{line}"), format!("no-pty {line}")] {
            refused(bad.as_bytes());
        }
        // A tiny xorshift: random bytes, reproducibly, and no extra dependency.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..512 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()[0]
                })
                .collect();
            refused(&bytes);
        }
        // Every prefix of a real key either parses or is refused; none panics.
        for end in 0..line.len() {
            if let Err(err) = import(&line.as_bytes()[..end], "p") {
                assert_eq!(err.code(), "InvalidKey.Format");
            }
        }
    }
}
