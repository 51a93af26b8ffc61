//! ImportKeyPair's side: reading a public key in any format EC2 accepts
//! and checking its type and size.

use base64::Engine as _;
use md5::Md5;
use rsa::pkcs8::der::{Decode as _, Document};
use rsa::pkcs8::{EncodePublicKey as _, SubjectPublicKeyInfoRef};
use rsa::{BigUint, RsaPublicKey};
use sha1::Digest as _;
use ssh_key::public::{KeyData, RsaPublicKey as SshRsa};
use ssh_key::{Mpint, PublicKey};

use super::{
    B64, Imported, KeyError, KeyType, MAX_IMPORT_RSA_BITS, MIN_IMPORT_RSA_BITS, colon_hex, invalid,
    openssh, sha256_base64,
};

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
