//! The all-in-one's main job, once the services are up: the tiny image
//! (built and imported when none is registered), a key pair, a security
//! group allowing SSH, one instance booted to its boot marker, and the ssh
//! command that reaches it from the host's own shell, on its public
//! address. Progress goes to stdout, a line per step; the services' log
//! lines go to the log file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use stratus_rpc::wire::conductor::InstanceState;

use crate::config::Config;
use crate::ec2_client::{Client, Ec2ClientError, first_text};
use crate::error::Cause;

/// The name the demo image is registered under.
const IMAGE_NAME: &str = "stratus-tiny";
/// The key pair and security group the demo makes.
const DEMO: &str = "stratus-demo";
/// How long a running instance may go without its public address.
const PUBLIC_ADDRESS_WAIT: Duration = Duration::from_secs(60);

fn step(n: u8, text: &str) {
    println!("stratus: [{n}/6] {text}");
}

/// Runs the demo; a failure is reported and the services keep serving.
pub async fn run(config: &Config) {
    let started = Instant::now();
    match demo(config).await {
        Ok(ssh) => {
            println!(
                "stratus: ready in {:.0} s. Log in with:\n\n    {ssh}\n",
                started.elapsed().as_secs_f64()
            );
            println!("stratus: serving; Ctrl-C stops the services (guests keep running).");
        }
        Err(e) => {
            println!(
                "stratus: the demo guest did not come up: {}",
                stratus_rpc::error::error_chain(&e)
            );
            println!(
                "stratus: the services keep serving; see {} for details.",
                crate::logging::all_in_one_log(&config.node.state_dir).display()
            );
        }
    }
}

/// Without the demo: says the services serve, and where.
pub fn serving_only(config: &Config) {
    println!(
        "stratus: serving (EC2 API on {}); Ctrl-C stops the services.",
        config.api.listen
    );
}

/// The image builder: `$STRATUS_IMAGE_BUILDER`, else the checkout's.
fn builder() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("STRATUS_IMAGE_BUILDER") {
        return Some(PathBuf::from(path));
    }
    let relative = Path::new("deploy/images/build-tiny-image");
    let from_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(|root| root.join(relative)));
    [Some(relative.to_path_buf()), from_exe]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
}

/// Why the demo guest did not come up.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A step on the api's database failed.
    #[error("{what}")]
    Database {
        /// The step.
        what: &'static str,
        /// Why.
        #[source]
        source: Cause,
    },
    /// The image builder could not run.
    #[error("{}", path.display())]
    Builder {
        /// The builder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An EC2 request failed.
    #[error("{action}")]
    Ec2 {
        /// The action.
        action: &'static str,
        /// Why.
        #[source]
        source: Ec2ClientError,
    },
    /// The private key file could not be written.
    #[error("{}", path.display())]
    KeyFile {
        /// The file or its folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Something the demo waited for did not happen.
    #[error("{0}")]
    Failed(String),
}

fn database(what: &'static str) -> impl FnOnce(Cause) -> DemoError {
    move |source| DemoError::Database { what, source }
}

/// The registered tiny image, built and imported first if there is none.
async fn image(config: &Config, db: &stratus_api::db::Db) -> Result<String, DemoError> {
    if let Some(image) = db
        .image_named(IMAGE_NAME, "machine")
        .await
        .map_err(|e| database("looking up the image")(e.into()))?
    {
        return Ok(image.image_id);
    }
    let out = config.node.state_dir.join("images").join("tiny");
    let script = builder().ok_or_else(|| {
        DemoError::Failed("deploy/images/build-tiny-image not found (run from the checkout, or set STRATUS_IMAGE_BUILDER)".to_owned())
    })?;
    let built = tokio::process::Command::new(&script)
        .arg(&out)
        .output()
        .await
        .map_err(|source| DemoError::Builder {
            path: script.clone(),
            source,
        })?;
    if !built.status.success() {
        return Err(DemoError::Failed(format!(
            "building the image: {}",
            String::from_utf8_lossy(&built.stderr).trim()
        )));
    }
    let imported = stratus_api::admin::import_image(
        db,
        IMAGE_NAME,
        &out.join("disk.qcow2"),
        Some(&out.join("kernel")),
        Some(&out.join("ramdisk")),
    )
    .await
    .map_err(|e| database("importing the image")(e.into()))?;
    Ok(imported.image_id)
}

/// Ignores "already there" answers of idempotent steps.
fn tolerate(
    action: &'static str,
    result: Result<String, Ec2ClientError>,
    codes: &[&str],
) -> Result<(), DemoError> {
    match result {
        Ok(_) => Ok(()),
        Err(Ec2ClientError::Api { code, .. }) if codes.contains(&code.as_str()) => Ok(()),
        Err(source) => Err(DemoError::Ec2 { action, source }),
    }
}

/// One EC2 request whose failure ends the demo.
async fn action(
    ec2: &Client,
    action: &'static str,
    params: &[(&str, &str)],
) -> Result<String, DemoError> {
    ec2.action(action, params)
        .await
        .map_err(|source| DemoError::Ec2 { action, source })
}

async fn demo(config: &Config) -> Result<String, DemoError> {
    let state = &config.node.state_dir;
    let db = stratus_api::start::open_db(&config.api, state)
        .await
        .map_err(|e| database("opening the database")(e.into()))?;
    step(
        1,
        "looking for the tiny guest image (building it from Debian packages if needed)",
    );
    let ami = image(config, &db).await?;
    step(2, &format!("image {ami} ({IMAGE_NAME}) registered"));
    let ec2 = sign_in(config, &db).await?;
    let key_file = state.join("demo").join(format!("{DEMO}.pem"));
    key_and_group(&ec2, &key_file).await?;
    step(
        3,
        &format!(
            "key pair {DEMO} ({}) and security group {DEMO} allowing SSH",
            key_file.display()
        ),
    );
    let id = launch(&ec2, &ami).await?;
    step(4, &format!("instance {id} launched; waiting for it to run"));
    let deadline = Instant::now() + Duration::from_secs(300);
    let public = config.api.public.is_some();
    let at = wait_running(&ec2, &id, deadline, public).await?;
    let shown = match &at.public {
        Some(public) => format!("{public} (private {})", at.private),
        None => at.private.clone(),
    };
    step(
        5,
        &format!("{id} is running at {shown}; waiting for its boot marker"),
    );
    wait_boot_marker(&ec2, &id, deadline).await?;
    step(6, &format!("{id} booted"));
    Ok(ssh_command(&key_file, &at, config.node.netns.as_deref()))
}

/// Where a running instance is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Addresses {
    /// Its fixed IP, inside the cloud's network.
    private: String,
    /// Its public IP, when the cloud has a public range.
    public: Option<String>,
}

/// The ssh command a user pastes into the host's shell: to the public
/// address; to the private one (inside `netns` when guests live in one)
/// only on a cloud with no public range.
fn ssh_command(key_file: &Path, at: &Addresses, netns: Option<&str>) -> String {
    let options = format!(
        "-i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        key_file.display()
    );
    match (&at.public, netns) {
        (Some(public), _) => format!("ssh {options} root@{public}"),
        (None, Some(ns)) => format!("ip netns exec {ns} ssh {options} root@{}", at.private),
        (None, None) => format!("ssh {options} root@{}", at.private),
    }
}

/// A client signed as project `demo`'s admin (credentials made if none).
async fn sign_in(config: &Config, db: &stratus_api::db::Db) -> Result<Client, DemoError> {
    let credential = match db
        .credential_for("demo", "admin")
        .await
        .map_err(|e| database("looking up credentials")(e.into()))?
    {
        Some(c) => c,
        None => stratus_api::admin::create_credentials(db, "demo", "admin", true)
            .await
            .map_err(|e| database("creating credentials")(e.into()))?,
    };
    let port = config.api.listen.rsplit(':').next().unwrap_or("8773");
    let endpoint = format!("http://127.0.0.1:{port}/");
    Ok(Client::new(
        &endpoint,
        &config.api.region,
        &credential.access_key,
        &credential.secret_key,
    ))
}

/// A fresh key pair, its private key in `key_file`, and the demo's security
/// group allowing SSH.
async fn key_and_group(ec2: &Client, key_file: &Path) -> Result<(), DemoError> {
    // A fresh key pair: EC2 shows a private key only when it makes it.
    let deleted = ec2.action("DeleteKeyPair", &[("KeyName", DEMO)]).await;
    tolerate("DeleteKeyPair", deleted, &[])?;
    let made = action(
        ec2,
        "CreateKeyPair",
        &[("KeyName", DEMO), ("KeyType", "ed25519")],
    )
    .await?;
    let private = first_text(&made, "keyMaterial")
        .ok_or_else(|| DemoError::Failed("CreateKeyPair returned no key".to_owned()))?;
    write_private(key_file, &private)?;
    let group = [
        ("GroupName", DEMO),
        ("GroupDescription", "SSH to the demo guest"),
    ];
    let created = ec2.action("CreateSecurityGroup", &group).await;
    tolerate("CreateSecurityGroup", created, &["InvalidGroup.Duplicate"])?;
    let ssh = [
        ("GroupName", DEMO),
        ("IpProtocol", "tcp"),
        ("FromPort", "22"),
        ("ToPort", "22"),
        ("CidrIp", "0.0.0.0/0"),
    ];
    let authorized = ec2.action("AuthorizeSecurityGroupIngress", &ssh).await;
    tolerate(
        "AuthorizeSecurityGroupIngress",
        authorized,
        &["InvalidPermission.Duplicate"],
    )
}

/// Runs one tagged tiny instance of `ami`; its id.
async fn launch(ec2: &Client, ami: &str) -> Result<String, DemoError> {
    let ran = action(
        ec2,
        "RunInstances",
        &[
            ("ImageId", ami),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("InstanceType", "m1.tiny"),
            ("KeyName", DEMO),
            ("SecurityGroup.1", DEMO),
            ("TagSpecification.1.ResourceType", "instance"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", DEMO),
        ],
    )
    .await?;
    first_text(&ran, "instanceId")
        .ok_or_else(|| DemoError::Failed("RunInstances returned no instance".to_owned()))
}

/// Polls until `id` runs (and, with `public`, shows its public address
/// in `ipAddress`); its addresses.
async fn wait_running(
    ec2: &Client,
    id: &str,
    deadline: Instant,
    public: bool,
) -> Result<Addresses, DemoError> {
    let mut running_since: Option<Instant> = None;
    loop {
        let described = action(ec2, "DescribeInstances", &[("InstanceId.1", id)]).await?;
        let state = first_text(&described, "name").unwrap_or_default();
        let parsed = state.parse::<InstanceState>().ok();
        if parsed == Some(InstanceState::Running) {
            let at = Addresses {
                private: first_text(&described, "privateIpAddress").unwrap_or_default(),
                public: first_text(&described, "ipAddress").filter(|a| !a.trim().is_empty()),
            };
            if !public || at.public.is_some() {
                return Ok(at);
            }
            let since = *running_since.get_or_insert_with(Instant::now);
            if since.elapsed() > PUBLIC_ADDRESS_WAIT {
                return Err(DemoError::Failed(format!(
                    "{id} runs at {} but DescribeInstances gave it no public address (ipAddress) within {} s; \
                     the cloud has [network] public_range set: is [network] public_ip_on_launch on?",
                    at.private,
                    PUBLIC_ADDRESS_WAIT.as_secs()
                )));
            }
        }
        if parsed == Some(InstanceState::Terminated) {
            let reason = first_text(&described, "message").unwrap_or_default();
            return Err(DemoError::Failed(format!("{id} failed: {reason}")));
        }
        if Instant::now() > deadline {
            return Err(DemoError::Failed(format!(
                "{id} still {state} after 5 minutes"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Shows the console's boot lines as they come, until the marker.
async fn wait_boot_marker(ec2: &Client, id: &str, deadline: Instant) -> Result<(), DemoError> {
    let mut seen = 0;
    loop {
        let console = action(ec2, "GetConsoleOutput", &[("InstanceId", id)]).await?;
        let text = first_text(&console, "output")
            .and_then(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .ok()
            })
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let lines = boot_lines(&text);
        for line in lines.iter().skip(seen) {
            println!("stratus:       console: {}", line.trim());
        }
        seen = seen.max(lines.len());
        if lines.iter().any(|l| l.contains("STRATUS-BOOT ready")) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(DemoError::Failed(format!(
                "{id} showed no boot marker within 5 minutes"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Writes a private key readable by its owner only.
pub(crate) fn write_private(path: &Path, key: &str) -> Result<(), DemoError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DemoError::KeyFile { path, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed(dir))?;
    }
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(failed(path))?;
    file.write_all(key.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(failed(path))
}

/// The console's complete `STRATUS-BOOT` lines.
fn boot_lines(console: &str) -> Vec<&str> {
    // The console arrives a few bytes at a time: the text after the last
    // newline may be half a line, shown whole on a later poll.
    let complete = console.rfind('\n').map_or("", |end| &console[..end]);
    complete
        .lines()
        .filter(|l| l.contains("STRATUS-BOOT"))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Addresses, boot_lines, ssh_command};

    #[test]
    fn the_ssh_command_goes_to_the_public_address_from_the_host_itself() {
        let key = Path::new("/var/lib/stratus/demo/stratus-demo.pem");
        let options = "-i /var/lib/stratus/demo/stratus-demo.pem -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null";
        let public = Addresses {
            private: "10.0.0.3".to_owned(),
            public: Some("172.24.4.2".to_owned()),
        };
        assert_eq!(
            ssh_command(key, &public, Some("stratus")),
            format!("ssh {options} root@172.24.4.2")
        );
        // A cloud with no public range: only the namespace reaches guests.
        let private = Addresses {
            public: None,
            ..public
        };
        assert_eq!(
            ssh_command(key, &private, Some("stratus")),
            format!("ip netns exec stratus ssh {options} root@10.0.0.3")
        );
        assert_eq!(
            ssh_command(key, &private, None),
            format!("ssh {options} root@10.0.0.3")
        );
    }

    #[test]
    fn a_line_still_arriving_is_not_shown_until_it_ends() {
        let arriving = "[ 0.1] Linux\nSTRATUS-BOOT kernel up\nSTRATUS-BOOT authorized key ssh-ed";
        assert_eq!(boot_lines(arriving), ["STRATUS-BOOT kernel up"]);
        let arrived = format!("{arriving}25519 SHA256:abc\n");
        assert_eq!(
            boot_lines(&arrived),
            [
                "STRATUS-BOOT kernel up",
                "STRATUS-BOOT authorized key ssh-ed25519 SHA256:abc"
            ]
        );
        assert!(boot_lines("STRATUS-BOOT ready").is_empty());
    }
}
