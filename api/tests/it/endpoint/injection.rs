//! Hostile text in every name and value a user gives the endpoint: XML and
//! shell metacharacters, path traversal, NUL bytes, huge sizes. Every answer
//! is well-formed XML, every value comes back exactly or is refused with
//! `InvalidParameterValue`, what reaches the scheduler is the value as
//! given, and nothing lands outside the test's state and image folders.
//!
//! The shell payloads `touch` a marker rather than reboot or delete: if one
//! ever ran, the test sees a file instead of a wrecked machine.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{Answer, Endpoint};

/// The hostile values; the shell payloads name markers under `marks`.
fn hostile(marks: &Path) -> Vec<String> {
    let m = |name: &str| marks.join(name).display().to_string();
    vec![
        r#"<b class="x">&amp;'quoted'</b>"#.into(),
        "]]>".into(),
        "<![CDATA[<injected/>]]>".into(),
        "</keyName><injected>yes</injected><keyName>".into(),
        r#"<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>&e;"#.into(),
        "&#0;&#x1;&lt;&bogus;".into(),
        format!("$(touch {})", m("dollar")),
        format!("`touch {}`", m("backtick")),
        format!(";touch {};", m("semicolon")),
        format!("| touch {}", m("pipe")),
        format!("&& touch {} &", m("and")),
        format!("'; touch {}; '", m("quote")),
        "../../stratus-hostile".into(),
        "../../../../../../../../tmp/stratus-hostile".into(),
        "/etc/passwd".into(),
        "..\\..\\stratus-hostile".into(),
        "%00%2e%2e%2f+".into(),
        "{{7*7}} ${HOME} %s%n".into(),
        "' OR '1'='1' --".into(),
        "a\tb".into(),
        "a\r\nb".into(),
        "ключ ✓ \u{202e}evil".into(),
        " spaced ".into(),
    ]
}

/// Printable ASCII, as EC2 takes key names.
fn printable_ascii(v: &str) -> bool {
    v.chars().all(|c| c.is_ascii() && !c.is_ascii_control())
}

fn no_controls(v: &str) -> bool {
    !v.chars().any(char::is_control)
}

/// Panics unless every file under the test's folder is in the api's state
/// folder or the image folder, and no marker or traversal target exists.
fn nothing_escaped(endpoint: &Endpoint) {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else {
                found.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(endpoint.root.path(), &mut files);
    let stray: Vec<&PathBuf> = files
        .iter()
        .filter(|f| !f.starts_with(&endpoint.state) && !f.starts_with(&endpoint.images))
        .collect();
    assert!(
        stray.is_empty(),
        "files outside the state folder: {stray:?}"
    );
    for target in [
        endpoint.state.join("../../stratus-hostile"),
        PathBuf::from("../../stratus-hostile"),
        PathBuf::from("/tmp/stratus-hostile"),
    ] {
        assert!(!target.exists(), "{} exists", target.display());
    }
}

#[tokio::test]
async fn key_names_come_back_exactly_or_are_refused() {
    let endpoint = Endpoint::start().await;
    for name in hostile(endpoint.root.path()) {
        let made = endpoint
            .call(
                "CreateKeyPair",
                &[("KeyName", &name), ("KeyType", "ed25519")],
            )
            .await;
        let Some(made) = made.accepted_if(printable_ascii(&name)) else {
            continue;
        };
        assert_eq!(made.texts("keyName"), [name.as_str()]);
        assert_eq!(made.texts("keyMaterial").len(), 1);
        let listed = endpoint
            .call("DescribeKeyPairs", &[("KeyName.1", &name)])
            .await
            .ok();
        assert_eq!(listed.texts("keyName"), [name.as_str()], "{}", listed.body);
        endpoint
            .call("DeleteKeyPair", &[("KeyName", &name)])
            .await
            .ok();
    }
    nothing_escaped(&endpoint);
}

/// Creates group `name` described by `description`, which must be accepted
/// if `accepted` holds and refused if not; if accepted, what
/// DescribeSecurityGroups answers for `name`.
async fn group_round_trip(
    endpoint: &Endpoint,
    name: &str,
    description: &str,
    accepted: bool,
) -> Option<Answer> {
    let made = endpoint
        .call(
            "CreateSecurityGroup",
            &[("GroupName", name), ("GroupDescription", description)],
        )
        .await;
    made.accepted_if(accepted)?;
    Some(
        endpoint
            .call("DescribeSecurityGroups", &[("GroupName.1", name)])
            .await
            .ok(),
    )
}

#[tokio::test]
async fn group_names_and_descriptions_come_back_exactly_or_are_refused() {
    let endpoint = Endpoint::start_with(|c| c.quotas.security_groups = 100, None).await;
    for (n, value) in hostile(endpoint.root.path()).into_iter().enumerate() {
        // A name and a description apart, so each refusal is its own.
        let accepted = no_controls(&value);
        let description = format!("for {n}");
        if let Some(found) = group_round_trip(&endpoint, &value, &description, accepted).await {
            assert_eq!(found.texts("groupName"), [value.as_str()], "{}", found.body);
        }
        let named = format!("described-{n}");
        if let Some(found) = group_round_trip(&endpoint, &named, &value, accepted).await {
            assert_eq!(found.texts("groupDescription"), [value.as_str()]);
        }
    }
    nothing_escaped(&endpoint);
}

#[tokio::test]
async fn tags_come_back_exactly_or_are_refused() {
    let endpoint = Endpoint::start().await;
    let group = endpoint.default_group().await;
    let tag_ok = |v: &str| !v.chars().any(|c| c.is_control() && c != '\t');
    for value in hostile(endpoint.root.path()) {
        let made = endpoint
            .call(
                "CreateTags",
                &[
                    ("ResourceId.1", &group),
                    ("Tag.1.Key", &value),
                    ("Tag.1.Value", &value),
                ],
            )
            .await;
        made.accepted_if(tag_ok(&value));
    }
    let described = endpoint
        .call(
            "DescribeTags",
            &[
                ("Filter.1.Name", "resource-id"),
                ("Filter.1.Value.1", &group),
            ],
        )
        .await
        .ok();
    let (keys, values) = (described.texts("key"), described.texts("value"));
    for value in hostile(endpoint.root.path())
        .into_iter()
        .filter(|v| tag_ok(v))
    {
        assert!(keys.contains(&value), "key {value:?} not in {keys:?}");
        assert!(values.contains(&value), "value {value:?} not in {values:?}");
    }
    nothing_escaped(&endpoint);
}

#[tokio::test]
async fn instance_names_key_names_and_user_data_reach_the_scheduler_unchanged() {
    let endpoint = Endpoint::start().await;
    let ami = endpoint.register_image("hostile-image").await;
    let marks = endpoint.root.path().to_owned();
    let key = format!(
        "$(touch {})`touch {}`",
        marks.join("k1").display(),
        marks.join("k2").display()
    );
    endpoint
        .call(
            "CreateKeyPair",
            &[("KeyName", &key), ("KeyType", "ed25519")],
        )
        .await
        .ok();
    let mut data: Vec<u8> = hostile(&marks).join("\n").into_bytes();
    // User data is bytes: NUL and non-UTF-8 inside it are the user's business.
    data.extend_from_slice(b"\0\x01\xff\xfe#!/bin/sh\nreboot\n");
    let encoded = STANDARD.encode(&data);

    let names: Vec<String> = hostile(&marks)
        .into_iter()
        .filter(|v| !v.chars().any(|c| c.is_control() && c != '\t'))
        .take(3)
        .collect();
    let mut launched = Vec::new();
    for name in &names {
        let ran = endpoint
            .run_one(
                &ami,
                &[
                    ("KeyName", &key),
                    ("UserData", &encoded),
                    ("TagSpecification.1.ResourceType", "instance"),
                    ("TagSpecification.1.Tag.1.Key", "Name"),
                    ("TagSpecification.1.Tag.1.Value", name),
                ],
            )
            .await
            .ok();
        assert!(ran.texts("value").contains(name), "{}", ran.body);
        launched.push(ran.texts("instanceId").remove(0));
    }
    for (id, name) in launched.iter().zip(&names) {
        let described = endpoint
            .call("DescribeInstances", &[("InstanceId.1", id)])
            .await
            .ok();
        assert!(
            described.texts("value").contains(name),
            "{}",
            described.body
        );
        assert_eq!(described.texts("keyName"), [key.as_str()]);
        let attribute = endpoint
            .call(
                "DescribeInstanceAttribute",
                &[("InstanceId", id), ("Attribute", "userData")],
            )
            .await
            .ok();
        assert_eq!(attribute.texts("value"), [encoded.as_str()]);
    }
    let runs = endpoint.scheduler.runs(names.len()).await;
    assert_eq!(runs.len(), names.len());
    for run in &runs {
        let instance = &run["instances"][0];
        assert_eq!(instance["key_name"], key.as_str());
        assert_eq!(instance["user_data"], encoded.as_str());
    }

    // Raw NUL, text that is not base64, and too much data are refused.
    let too_much = STANDARD.encode(vec![b'x'; endpoint.cloud.config.max_user_data_bytes + 1]);
    for bad in ["ab\0cd", "$(touch x)", too_much.as_str()] {
        endpoint
            .run_one(&ami, &[("UserData", bad)])
            .await
            .refused(400, "InvalidParameterValue");
    }
    assert_eq!(
        endpoint.scheduler.runs.lock().expect("lock").len(),
        names.len()
    );
    nothing_escaped(&endpoint);
}

#[tokio::test]
async fn image_locations_never_leave_the_image_folders() {
    let endpoint = Endpoint::start().await;
    let disk = endpoint.images.join("disk.img");
    std::fs::write(&disk, b"disk").expect("image file");
    let link = endpoint.images.join("passwd");
    std::os::unix::fs::symlink("/etc/passwd", &link).expect("symlink");
    let images = endpoint.images.display().to_string();
    for location in [
        "../../etc/passwd".to_owned(),
        "/etc/passwd".to_owned(),
        "file:///etc/passwd".to_owned(),
        "disk.img".to_owned(),
        format!("{images}/../state/api.sqlite"),
        format!("{images}/../../b/images/disk.img"),
        format!("{images}/passwd"),
        format!("{images}/"),
        format!("{images}/disk.img\0.txt"),
        format!("{images}/$(touch x)"),
    ] {
        endpoint
            .call(
                "RegisterImage",
                &[("Name", "escape"), ("ImageLocation", &location)],
            )
            .await
            .refused(400, "InvalidParameterValue");
    }
    for (n, text) in hostile(endpoint.root.path()).into_iter().enumerate() {
        let name = format!("image-{n}");
        let made = endpoint
            .call(
                "RegisterImage",
                &[
                    ("Name", &name),
                    ("Description", &text),
                    ("ImageLocation", &disk.display().to_string()),
                ],
            )
            .await
            .ok();
        let id = made.texts("imageId").remove(0);
        let found = endpoint
            .call("DescribeImages", &[("ImageId.1", &id)])
            .await
            .ok();
        assert_eq!(
            found.texts("description"),
            [text.as_str()],
            "{}",
            found.body
        );
    }
    nothing_escaped(&endpoint);
}

#[tokio::test]
async fn nul_bytes_and_huge_values_are_refused_everywhere_with_short_answers() {
    let endpoint = Endpoint::start().await;
    let group = endpoint.default_group().await;
    let huge = "A".repeat(100_000);
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("CreateKeyPair", vec![("KeyName", "a\0b".into())]),
        ("CreateKeyPair", vec![("KeyName", "k".repeat(256))]),
        ("CreateKeyPair", vec![("KeyName", huge.clone())]),
        (
            "CreateSecurityGroup",
            vec![
                ("GroupName", "a\0b".into()),
                ("GroupDescription", "d".into()),
            ],
        ),
        (
            "CreateSecurityGroup",
            vec![
                ("GroupName", "g".repeat(256)),
                ("GroupDescription", "d".into()),
            ],
        ),
        (
            "CreateSecurityGroup",
            vec![
                ("GroupName", "g".into()),
                ("GroupDescription", huge.clone()),
            ],
        ),
        (
            "CreateTags",
            vec![
                ("ResourceId.1", group.clone()),
                ("Tag.1.Key", "k\0".into()),
                ("Tag.1.Value", "v".into()),
            ],
        ),
        (
            "CreateTags",
            vec![
                ("ResourceId.1", group.clone()),
                ("Tag.1.Key", "k".repeat(129)),
                ("Tag.1.Value", "v".into()),
            ],
        ),
        (
            "CreateTags",
            vec![
                ("ResourceId.1", group.clone()),
                ("Tag.1.Key", "k".into()),
                ("Tag.1.Value", huge.clone()),
            ],
        ),
        ("DescribeKeyPairs", vec![("KeyName.1", "\0".into())]),
    ];
    for (action, params) in &cases {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = endpoint
            .call(action, &params)
            .await
            .refused(400, "InvalidParameterValue");
        assert!(
            answer.body.len() < 1024,
            "{action}: a {} byte answer echoes the input",
            answer.body.len()
        );
    }
    // The limits themselves are allowed.
    endpoint
        .call(
            "CreateKeyPair",
            &[("KeyName", &"k".repeat(255)), ("KeyType", "ed25519")],
        )
        .await
        .ok();
    endpoint
        .call(
            "CreateTags",
            &[
                ("ResourceId.1", &group),
                ("Tag.1.Key", &"k".repeat(128)),
                ("Tag.1.Value", &"v".repeat(256)),
            ],
        )
        .await
        .ok();
    nothing_escaped(&endpoint);
}

#[tokio::test]
async fn errors_quote_hostile_input_escaped() {
    let endpoint = Endpoint::start().await;
    let value = "<nope attr=\"1\">]]>&amp;'";
    for (action, params, code) in [
        (
            "DescribeKeyPairs",
            vec![("KeyName.1", value)],
            "InvalidKeyPair.NotFound",
        ),
        (value, vec![], "InvalidAction"),
        (
            "DescribeSecurityGroups",
            vec![("GroupName.1", value)],
            "InvalidGroup.NotFound",
        ),
    ] {
        let answer = endpoint.call(action, &params).await.refused(400, code);
        assert!(
            answer.texts("Message")[0].contains(value),
            "{}",
            answer.body
        );
    }
}
