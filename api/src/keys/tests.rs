use rsa::pkcs8::EncodePublicKey as _;
use ssh_key::Mpint;

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
    assert_eq!(
        KeyError::Generate {
            step: "x",
            source: "x".into(),
        }
        .code(),
        "InternalError"
    );
}

/// A key `create` made, checked to be PEM of `kind`, with its private key
/// in a file of a folder that lives as long as the folder returned.
fn created(key_type: KeyType, name: &str, kind: &str) -> (NewKey, tempfile::TempDir, PathBuf) {
    let key = create(key_type, name).expect("create");
    let header = format!("-----BEGIN {kind}-----\n");
    assert!(key.private_key.starts_with(&header), "{header}");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = private_file(dir.path(), &key.private_key);
    (key, dir, path)
}

#[test]
fn created_rsa_is_pkcs1_pem_with_ec2s_sha1_fingerprint() {
    let (key, _dir, path) = created(KeyType::Rsa, "web key", "RSA PRIVATE KEY");
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
        key.public_openssh.starts_with("ssh-rsa AAAA") && key.public_openssh.ends_with(" web key")
    );
}

#[test]
fn created_ed25519_is_openssh_pem_with_padded_sha256_fingerprint() {
    let (key, _dir, path) = created(KeyType::Ed25519, "laptop", "OPENSSH PRIVATE KEY");
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
        let got =
            import(form, "n").unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(form)));
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
