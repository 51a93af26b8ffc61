//! What operators do on the control host, straight on the database:
//! credentials for a project, and images imported from files.

use std::path::Path;

use base64::Engine;

use crate::db::credentials::Credential;
use crate::db::images::ImageRow;
use crate::db::{Db, DbError};
use crate::ec2::ids;

/// The project operators' public images belong to.
pub const SYSTEM_PROJECT: &str = "system";

/// An operator command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A file to import cannot be read.
    #[error("{path} cannot be read")]
    Unreadable {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file to import is not a plain file.
    #[error("{path}: not a file")]
    NotAFile {
        /// The file.
        path: String,
    },
    /// A name or id given.
    #[error("{0}")]
    Invalid(String),
}

fn random_bytes<const N: usize>() -> [u8; N] {
    // UUID v4 draws from the OS's secure generator.
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(16) {
        let id = uuid::Uuid::new_v4();
        chunk.copy_from_slice(&id.as_bytes()[..chunk.len()]);
    }
    out
}

/// A new access key for `user` in `project`.
pub async fn create_credentials(
    db: &Db,
    project: &str,
    user: &str,
    is_admin: bool,
) -> Result<Credential, AdminError> {
    for (what, value) in [("project", project), ("user", user)] {
        let ok = !value.is_empty()
            && value.len() <= 64
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            return Err(AdminError::Invalid(format!(
                "{what} {value:?}: 1 to 64 letters, digits, '-', '_' or '.'"
            )));
        }
    }
    let key: String = random_bytes::<10>()
        .iter()
        .map(|b| format!("{:02X}", b))
        .collect();
    let credential = Credential {
        access_key: format!("AKIA{}", &key[..16]),
        secret_key: base64::engine::general_purpose::STANDARD.encode(random_bytes::<30>()),
        project_id: project.to_owned(),
        user_id: user.to_owned(),
        is_admin,
    };
    db.insert_credential(&credential).await?;
    Ok(credential)
}

/// The credentials in AWS CLI form, to append to `~/.aws/credentials`.
pub fn aws_credentials_section(profile: &str, c: &Credential) -> String {
    format!(
        "[{profile}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        c.access_key, c.secret_key
    )
}

/// Writes (or replaces) `profile` in the AWS CLI's files under `home`:
/// its keys in `.aws/credentials`, its region and endpoint in `.aws/config`.
pub fn write_aws_profile(
    home: &Path,
    profile: &str,
    c: &Credential,
    region: &str,
    endpoint: &str,
) -> std::io::Result<()> {
    let dir = home.join(".aws");
    std::fs::create_dir_all(&dir)?;
    replace_section(
        &dir.join("credentials"),
        profile,
        &aws_credentials_section(profile, c),
        0o600,
    )?;
    replace_section(
        &dir.join("config"),
        &format!("profile {profile}"),
        &format!(
            "[profile {profile}]\nregion = {region}\nendpoint_url = {endpoint}\noutput = json\n"
        ),
        0o644,
    )
}

/// Replaces `[name]`'s section of an INI file with `section`, keeping the rest.
fn replace_section(path: &Path, name: &str, section: &str, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let header = format!("[{name}]");
    let mut kept = String::new();
    let mut skipping = false;
    for line in old.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            skipping = trimmed == header;
        }
        if !skipping {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    if !kept.is_empty() && !kept.ends_with("\n\n") {
        kept.push('\n');
    }
    kept.push_str(section);
    let part = path.with_extension("part");
    std::fs::write(&part, kept)?;
    std::fs::set_permissions(&part, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&part, path)
}

/// What `stratus image import` registered.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The machine image.
    pub image_id: String,
    /// Its kernel, if any.
    pub kernel_id: Option<String>,
    /// Its ramdisk, if any.
    pub ramdisk_id: Option<String>,
}

async fn register(
    db: &Db,
    prefix: &str,
    kind: &str,
    name: &str,
    file: &Path,
    kernel_id: Option<String>,
    ramdisk_id: Option<String>,
) -> Result<String, AdminError> {
    let real = file
        .canonicalize()
        .map_err(|source| AdminError::Unreadable {
            path: file.display().to_string(),
            source,
        })?;
    if !real.is_file() {
        return Err(AdminError::NotAFile {
            path: file.display().to_string(),
        });
    }
    let image_id = ids::new_id(prefix);
    db.insert_image(&ImageRow {
        image_id: image_id.clone(),
        project_id: SYSTEM_PROJECT.into(),
        name: name.to_owned(),
        description: Some(format!("imported from {}", real.display())),
        location: real.display().to_string(),
        image_type: kind.into(),
        kernel_id,
        ramdisk_id,
        architecture: "x86_64".into(),
        is_public: true,
        state: "available".into(),
        created_at: crate::db::now(),
    })
    .await?;
    Ok(image_id)
}

/// Registers a disk (with its kernel and ramdisk) as public images every
/// project can launch. The files stay where they are: every compute host
/// must read the same paths.
pub async fn import_image(
    db: &Db,
    name: &str,
    disk: &Path,
    kernel: Option<&Path>,
    ramdisk: Option<&Path>,
) -> Result<Imported, AdminError> {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(AdminError::Invalid(format!(
            "image name {name:?}: 1 to 128 printable characters"
        )));
    }
    let kernel_id = match kernel {
        Some(k) => Some(
            register(
                db,
                "aki",
                "kernel",
                &format!("{name}-kernel"),
                k,
                None,
                None,
            )
            .await?,
        ),
        None => None,
    };
    let ramdisk_id = match ramdisk {
        Some(r) => Some(
            register(
                db,
                "ari",
                "ramdisk",
                &format!("{name}-ramdisk"),
                r,
                None,
                None,
            )
            .await?,
        ),
        None => None,
    };
    let image_id = register(
        db,
        "ami",
        "machine",
        name,
        disk,
        kernel_id.clone(),
        ramdisk_id.clone(),
    )
    .await?;
    Ok(Imported {
        image_id,
        kernel_id,
        ramdisk_id,
    })
}
