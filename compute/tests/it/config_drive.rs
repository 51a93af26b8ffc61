//! The config drive's contents, read back with isoinfo.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use stratus_compute::host::local;
use stratus_test_support::{command, fixtures};

use crate::fake_network::fixed_ip;
use crate::harness::{image, request};

fn isoinfo(iso: &Path, args: &[&str]) -> Vec<u8> {
    command::run(
        Command::new("isoinfo").arg("-i").arg(iso).args(args),
        "genisoimage",
    )
}

#[tokio::test]
async fn the_config_drive_holds_metadata_keys_and_user_data_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut req = request(&image(dir.path()));
    let key = fixtures::SSH_KEY;
    req.key_data = Some(key.into());
    req.key_name = Some("mykey".into());
    req.reservation_id = Some("r-0123456789abcdef0".into());
    let user_data: Vec<u8> = b"#!/bin/sh\necho hello\n\x00\xff\xfe binary tail".to_vec();
    req.user_data = Some(base64::engine::general_purpose::STANDARD.encode(&user_data));
    let fixed = fixed_ip(Ipv4Addr::new(10, 0, 0, 7));
    let iso = stratus_compute::config_drive::build(&local(), dir.path(), &req, &fixed, "zone-a")
        .await
        .expect("build");

    let info = String::from_utf8_lossy(&isoinfo(&iso, &["-d"])).into_owned();
    assert!(info.contains("Volume id: config-2"), "{info}");
    let meta: serde_json::Value = serde_json::from_slice(&isoinfo(
        &iso,
        &["-R", "-x", "/openstack/latest/meta_data.json"],
    ))
    .expect("json");
    assert_eq!(meta["uuid"], req.instance_id.to_string());
    assert_eq!(meta["hostname"], req.instance_id.ec2_id());
    assert_eq!(meta["availability_zone"], "zone-a");
    assert_eq!(meta["public_keys"]["mykey"], key);
    assert_eq!(
        isoinfo(&iso, &["-R", "-x", "/openstack/latest/user_data"]),
        user_data
    );
    let ec2: serde_json::Value =
        serde_json::from_slice(&isoinfo(&iso, &["-R", "-x", "/ec2/latest/meta-data.json"]))
            .expect("json");
    assert_eq!(ec2["local-ipv4"], "10.0.0.7");
    assert_eq!(ec2["public-keys"]["0"]["openssh-key"], key);
    assert_eq!(ec2["reservation-id"], "r-0123456789abcdef0");
    assert_eq!(ec2["ami-id"], req.image.id);
    assert!(
        !dir.path().join("config-drive.d").exists(),
        "staging left behind"
    );

    req.user_data = Some("not base64!".into());
    let err = stratus_compute::config_drive::build(&local(), dir.path(), &req, &fixed, "zone-a")
        .await
        .expect_err("bad");
    assert!(err.to_string().contains("base64"), "{err}");
}
