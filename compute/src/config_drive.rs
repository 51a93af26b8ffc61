//! The config drive: an ISO 9660 volume labelled `config-2` with the
//! instance's metadata, keys and user data, in the layout cloud-init and
//! Cirros read (`openstack/latest/…`, `ec2/latest/…`). Attached read-only.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::json;
use stratus_rpc::wire::compute::RunInstance;
use stratus_rpc::wire::network::FixedIp;

use stratus_host::{CommandError, HostCommands};

/// The config drive could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigDriveError {
    /// User data is not base64.
    #[error("user data is not base64")]
    UserData(#[source] base64::DecodeError),
    /// Writing the staging files failed.
    #[error("config drive files in {}", path.display())]
    Files {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// genisoimage failed.
    #[error(transparent)]
    Iso(#[from] CommandError),
}

/// What the metadata says of an instance, shared by the config drive and
/// (later) the metadata service.
pub fn openstack_meta_data(request: &RunInstance, availability_zone: &str) -> serde_json::Value {
    let ec2_id = request.instance_id.ec2_id();
    let mut keys = serde_json::Map::new();
    if let Some(key) = &request.key_data {
        let name = request.key_name.clone().unwrap_or_else(|| "default".into());
        keys.insert(name, json!(key));
    }
    json!({
        "uuid": request.instance_id.to_string(),
        "name": ec2_id,
        "hostname": ec2_id,
        "availability_zone": availability_zone,
        "public_keys": keys,
        "launch_index": 0,
    })
}

/// The EC2-style metadata of an instance.
pub fn ec2_meta_data(
    request: &RunInstance,
    fixed: &FixedIp,
    availability_zone: &str,
) -> serde_json::Value {
    let ec2_id = request.instance_id.ec2_id();
    let mut keys = serde_json::Map::new();
    if let Some(key) = &request.key_data {
        keys.insert("0".into(), json!({ "openssh-key": key }));
    }
    let groups: Vec<String> = request
        .security_groups
        .iter()
        .map(|g| g.group.to_string())
        .collect();
    let mut meta = json!({
        "instance-id": ec2_id,
        "hostname": ec2_id,
        "local-ipv4": fixed.address,
        "public-keys": keys,
        "placement": { "availability-zone": availability_zone },
        "ami-id": request.image.id,
        "reservation-id": request.reservation_id.clone().unwrap_or_default(),
        "security-groups": groups,
    });
    // The public address it launched with; its DNS name needs the cloud's
    // domain, which hosts are not told: the metadata service gives that.
    if let (Some(address), Some(map)) = (request.public_address, meta.as_object_mut()) {
        map.insert("public-ipv4".into(), json!(address));
    }
    meta
}

/// Builds `dir/disk.config` (with `genisoimage` through `host`) and returns
/// its path.
pub async fn build(
    host: &dyn HostCommands,
    dir: &Path,
    request: &RunInstance,
    fixed: &FixedIp,
    availability_zone: &str,
) -> Result<PathBuf, ConfigDriveError> {
    let user_data = match &request.user_data {
        Some(b64) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(ConfigDriveError::UserData)?,
        ),
        None => None,
    };
    let staging = dir.join("config-drive.d");
    let files = |source: std::io::Error| ConfigDriveError::Files {
        path: staging.clone(),
        source,
    };
    let openstack = staging.join("openstack/latest");
    let ec2 = staging.join("ec2/latest");
    tokio::fs::create_dir_all(&openstack).await.map_err(files)?;
    tokio::fs::create_dir_all(&ec2).await.map_err(files)?;
    let meta = openstack_meta_data(request, availability_zone);
    tokio::fs::write(openstack.join("meta_data.json"), meta.to_string())
        .await
        .map_err(files)?;
    if let Some(data) = &user_data {
        tokio::fs::write(openstack.join("user_data"), data)
            .await
            .map_err(files)?;
    }
    let ec2_meta = ec2_meta_data(request, fixed, availability_zone);
    tokio::fs::write(ec2.join("meta-data.json"), ec2_meta.to_string())
        .await
        .map_err(files)?;

    let iso = dir.join("disk.config");
    let (iso_text, staging_text) = (iso.display().to_string(), staging.display().to_string());
    let built = host
        .stdout(
            "genisoimage",
            &[
                "-o",
                &iso_text,
                "-V",
                "config-2",
                "-quiet",
                "-r",
                "-J",
                "-l",
                "-ldots",
                "-allow-lowercase",
                "-allow-multidot",
                &staging_text,
            ],
        )
        .await;
    let _ = tokio::fs::remove_dir_all(&staging).await;
    built?;
    Ok(iso)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_rpc::wire::compute::{Flavor, ImageRef};

    fn request() -> RunInstance {
        let flavor = Flavor {
            name: "m1.tiny".into(),
            vcpus: 1,
            memory_mb: 512,
            root_gb: 1,
        };
        let image = ImageRef {
            id: "ami-00000000000000001".into(),
            disk: "/images/disk".into(),
            kernel: None,
            ramdisk: None,
            properties: Default::default(),
        };
        RunInstance::new("p1".parse().expect("project"), flavor, image)
    }

    fn fixed() -> FixedIp {
        FixedIp {
            address: "10.0.0.5".into(),
            cidr: "10.0.0.0/24".into(),
            gateway: "10.0.0.1".into(),
            netmask: "255.255.255.0".into(),
            bridge: "br100".into(),
            dhcp_server: "10.0.0.1".into(),
            vlan: None,
            dns: vec![],
        }
    }

    #[test]
    fn the_public_address_is_written_only_when_the_instance_has_one() {
        let mut request = request();
        let without = ec2_meta_data(&request, &fixed(), "nova");
        assert!(without.get("public-ipv4").is_none(), "{without}");
        request.public_address = Some(std::net::Ipv4Addr::new(172, 24, 4, 7));
        let with = ec2_meta_data(&request, &fixed(), "nova");
        assert_eq!(with["public-ipv4"], "172.24.4.7");
        assert_eq!(with["local-ipv4"], "10.0.0.5");
    }
}
