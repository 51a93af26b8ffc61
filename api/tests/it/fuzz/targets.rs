//! What each target must do with any input: finish, never panic, and keep
//! its promises (well-formed output, agreement between readers, round trips).

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use stratus_api::auth::replay::ReplayGuard;
use stratus_api::auth::{AuthError, SignedRequest, claim, verify};
use stratus_api::ec2::error::Ec2Error;
use stratus_api::ec2::filters;
use stratus_api::ec2::params::Params;
use stratus_api::ec2::xml::Xml;
use stratus_rpc::wire::firewall::{IngressRule, RuleSpec, SecurityGroupUpdate, Source};

use crate::xml_doc;

/// A corpus file.
pub struct Seed {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Numbered lists a handler may read, at most.
const MAX_LIST: usize = 1000;

/// The query parser: the loose reader (`Params::parse`), typed reads of
/// every name the input mentions, filters, and the strict reader, which
/// must agree with the loose one whenever it accepts.
pub fn query(input: &[u8], _: &Seed) {
    let loose = Params::parse(input);
    let mut names = BTreeSet::new();
    for (name, _) in form_urlencoded::parse(input).take(256) {
        let mut prefix = String::new();
        for part in name.split('.') {
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(part);
            names.insert(prefix.clone());
        }
    }
    for name in names.iter().take(128) {
        let _ = (loose.get(name), loose.int(name), loose.flag(name));
        if let Ok(values) = loose.list(name) {
            assert!(values.len() <= MAX_LIST, "{name}: {} values", values.len());
        }
        if let Ok(structs) = loose.structs(name) {
            assert!(structs.len() <= MAX_LIST);
            for s in structs.iter().take(16) {
                let _ = (s.get("Name"), s.list("Value"), s.structs("Tag"));
            }
        }
    }
    let _ = filters::parse(&loose, &["instance-id", "instance-state-name"]);
    let strict = Params::from_request(input, None);
    match &strict {
        Ok(strict) => assert_eq!(strict, &loose, "the readers disagree"),
        Err(e) => assert_eq!(e.code, "InvalidParameterValue", "{e}"),
    }
    // Query or body: the same text, the same answer.
    let as_body = Params::from_request(b"", Some(input));
    assert_eq!(strict.is_ok(), as_body.is_ok());
}

/// The request time of the botocore vectors, 2026-11-22T12:34:56Z.
const VECTORS_NOW: u64 = 1_795_350_896;
const WINDOW: Duration = Duration::from_secs(300);

/// The access key and secret the vectors were signed with.
fn vector_keys() -> &'static (String, String) {
    static KEYS: OnceLock<(String, String)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/sigv_vectors.json"
        ))
        .expect("tests/data/sigv_vectors.json");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("vectors JSON");
        let get = |k: &str| doc[k].as_str().expect("a string").to_owned();
        (get("access_key"), get("secret_key"))
    })
}

/// A raw HTTP/1.1 request split the way a server hands it over; anything
/// missing is empty.
#[derive(Clone)]
pub struct Raw {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn parse(input: &[u8]) -> Self {
        let split = input
            .windows(2)
            .position(|w| w == b"\n\n")
            .map_or((input, &b""[..]), |i| (&input[..i], &input[i + 2..]));
        let head = String::from_utf8_lossy(split.0);
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let request_line = lines.next().unwrap_or_default();
        let (method, rest) = request_line.split_once(' ').unwrap_or((request_line, ""));
        // The target may hold spaces; the protocol name is the last word.
        let target = rest.rsplit_once(' ').map_or(rest, |(t, _)| t);
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_owned(), v.strip_prefix(' ').unwrap_or(v).to_owned()))
            .collect();
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body: split.1.to_vec(),
        }
    }

    pub fn request(&self) -> SignedRequest<'_> {
        SignedRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }

    /// The Signature of the Authorization header, in lower case.
    fn header_signature(&self) -> Option<String> {
        let (_, value) = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))?;
        let (_, signature) = value.rsplit_once("Signature=")?;
        Some(signature.trim().to_ascii_lowercase())
    }
}

/// The body each header-signed seed carries, by its signature: a mutant
/// that verifies may have spliced in another seed's headers, and must then
/// carry that seed's body.
fn signed_bodies() -> &'static HashMap<String, Vec<u8>> {
    static BODIES: OnceLock<HashMap<String, Vec<u8>>> = OnceLock::new();
    BODIES.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/sigv");
        std::fs::read_dir(dir)
            .expect("the sigv corpus")
            .flatten()
            .filter_map(|e| {
                let raw = Raw::parse(&std::fs::read(e.path()).ok()?);
                Some((raw.header_signature()?, raw.body))
            })
            .collect()
    })
}

/// How many inputs [`sigv`] saw verify: the checks below a good signature
/// run only for those.
pub static VERIFIED: AtomicUsize = AtomicUsize::new(0);

/// The verifiers and the replay guard: what verifies names a key, is
/// accepted by the guard once and refused the second time, and (signed in
/// the header) carries the body its signature was made over byte for byte,
/// since SigV4 hashes the body as sent.
pub fn sigv(input: &[u8], seed: &Seed) {
    let (access_key, secret) = vector_keys();
    let raw = Raw::parse(input);
    let request = raw.request();
    let claimed = claim(&request);
    let now = UNIX_EPOCH + Duration::from_secs(VECTORS_NOW);
    let verified = verify(&request, secret, now, WINDOW);
    // Garbage verified a second later and with another secret: no panic either.
    let _ = verify(&request, "other", now + Duration::from_secs(1), WINDOW);
    if input == seed.bytes.as_slice() {
        let expect_ok = seed.name.starts_with("ok-");
        assert_eq!(verified.is_ok(), expect_ok, "{}: {verified:?}", seed.name);
    }
    let Ok(()) = verified else { return };
    VERIFIED.fetch_add(1, Ordering::Relaxed);
    // SigV4 does not sign the key id (only the scope after it), so a mutant
    // may name another key and still verify with this secret; the server
    // looks the secret up by that id, so it would not.
    assert!(claimed.is_ok(), "verified but names no key: {claimed:?}");
    let unsigned_payload = raw.headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("x-amz-content-sha256") && v.trim() == "UNSIGNED-PAYLOAD"
    });
    if unsigned_payload {
        // The body is not signed then, so there must not be one.
        assert!(raw.body.is_empty(), "an unsigned body was accepted");
    } else if let Some(signature) = raw.header_signature() {
        let signed = signed_bodies()
            .get(&signature)
            .unwrap_or_else(|| panic!("a signature no seed carries verified: {signature}"));
        assert_eq!(&raw.body, signed, "a changed body still verified");
    }
    let guard = ReplayGuard::with_limits(WINDOW, Duration::ZERO, 4);
    let at = Instant::now();
    assert_eq!(guard.admit(&request, access_key, at), Ok(()));
    assert!(matches!(
        guard.admit(&request, access_key, at + Duration::from_secs(1)),
        Err(AuthError::Replayed(_))
    ));
}

/// What a parser reads back from rendered `text`: itself, with the
/// characters XML cannot carry replaced.
fn expected(text: &str) -> String {
    text.chars()
        .map(|c| if xml_doc::xml_char(c) { c } else { '\u{FFFD}' })
        .collect()
}

/// The XML renderer: every way a response carries client text gives a
/// well-formed document from which a parser reads the text back exactly.
pub fn xml(input: &[u8], _: &Seed) {
    let text = String::from_utf8_lossy(input);
    let want = expected(&text);
    let mut x = Xml::response("DescribeTags", "req-1");
    x.text("value", &text)
        .opt("description", Some(&text))
        .list("tagSet", [text.as_ref(), "plain"], |x, t| {
            x.text("key", t);
        })
        .open("raw")
        .out_text(&text)
        .close("raw")
        .value("count", text.len());
    let doc = x.finish("DescribeTags");
    let elements = xml_doc::read(&doc).unwrap_or_else(|e| panic!("{e}: {doc:?}"));
    let texts = |name: &str| -> Vec<&str> {
        elements
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
            .collect()
    };
    for name in ["value", "description", "raw"] {
        assert_eq!(texts(name), [want.as_str()], "<{name}> in {doc:?}");
    }
    assert_eq!(texts("key"), [want.as_str(), "plain"]);
    assert_eq!(texts("requestId"), ["req-1"]);

    let error = Ec2Error::invalid(text.as_ref()).to_xml("req-2");
    let texts = xml_doc::texts(&error, "Message");
    assert_eq!(texts, [want], "{error:?}");
}

/// The security-group rule parser, from the JSON the wire carries: what it
/// accepts round-trips through its spec and through JSON, and a source
/// network can only come out as digits, dots and a slash.
pub fn rules(input: &[u8], _: &Seed) {
    if let Ok(spec) = serde_json::from_slice::<RuleSpec>(input) {
        match IngressRule::try_from(spec) {
            Ok(rule) => round_trip(&rule),
            Err(e) => assert!(e.to_string().len() < 512, "an unbounded message: {e}"),
        }
    }
    if let Ok(rule) = serde_json::from_slice::<IngressRule>(input) {
        round_trip(&rule);
    }
    if let Ok(update) = serde_json::from_slice::<SecurityGroupUpdate>(input) {
        let json = serde_json::to_string(&update).expect("encode");
        let again: SecurityGroupUpdate = serde_json::from_str(&json).expect("decode own JSON");
        assert_eq!(again, update);
        update.rules.iter().for_each(round_trip);
    }
}

fn round_trip(rule: &IngressRule) {
    let spec = RuleSpec::from(rule.clone());
    let again = IngressRule::try_from(spec.clone()).expect("a rule's own spec parses");
    assert_eq!(&again, rule);
    let json = serde_json::to_string(rule).expect("encode");
    let decoded: IngressRule = serde_json::from_str(&json).expect("decode own JSON");
    assert_eq!(&decoded, rule);
    if let Source::Cidr(_) = rule.source {
        let cidr = spec.cidr.expect("a CIDR source has a CIDR");
        assert!(
            cidr.chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == '/'),
            "{cidr:?} would reach iptables"
        );
    }
}
