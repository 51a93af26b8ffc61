//! `qemu-img`: inspect images, create overlays, resize. Arguments are always
//! a vector; paths never pass through a shell.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use stratus_host::{CommandError, HostCommands};

/// A `qemu-img` run failed.
#[derive(Debug, thiserror::Error)]
pub enum QemuImgError {
    /// The command failed or did not start.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A path cannot be passed as an argument.
    #[error("{}: path is not UTF-8", .0.display())]
    NotUtf8(PathBuf),
    /// `qemu-img info` printed something other than its JSON.
    #[error("qemu-img info {}: unreadable output", image.display())]
    Unreadable {
        /// The image.
        image: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// What `qemu-img info` says of an image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImageInfo {
    /// `raw`, `qcow2`, …
    pub format: String,
    /// Size the guest sees, in bytes.
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    /// The image's own backing file, if it has one.
    #[serde(rename = "backing-filename", default)]
    pub backing_file: Option<String>,
}

/// Image operations.
#[async_trait]
pub trait QemuImg: Send + Sync + std::fmt::Debug {
    /// Inspects an image (format probed, as for an untrusted upload).
    async fn info(&self, image: &Path) -> Result<ImageInfo, QemuImgError>;
    /// Creates a qcow2 overlay of `base` (whose format is `base_format`).
    async fn create_overlay(
        &self,
        base: &Path,
        base_format: &str,
        overlay: &Path,
    ) -> Result<(), QemuImgError>;
    /// Grows an image to `bytes`.
    async fn resize(&self, image: &Path, bytes: u64) -> Result<(), QemuImgError>;
}

/// The real `qemu-img`, run through `host`.
#[derive(Debug, Clone)]
pub struct RealQemuImg {
    host: Arc<dyn HostCommands>,
}

impl RealQemuImg {
    /// `qemu-img` as `host` runs it.
    pub fn new(host: Arc<dyn HostCommands>) -> Self {
        Self { host }
    }

    async fn run(&self, args: &[&str]) -> Result<String, QemuImgError> {
        Ok(self.host.stdout("qemu-img", args).await?)
    }
}

impl Default for RealQemuImg {
    /// On this host, each run within the command timeout.
    fn default() -> Self {
        Self::new(Arc::new(super::local()))
    }
}

fn text(path: &Path) -> Result<&str, QemuImgError> {
    path.to_str()
        .ok_or_else(|| QemuImgError::NotUtf8(path.to_owned()))
}

#[async_trait]
impl QemuImg for RealQemuImg {
    async fn info(&self, image: &Path) -> Result<ImageInfo, QemuImgError> {
        let json = self.run(&["info", "--output=json", text(image)?]).await?;
        serde_json::from_str(&json).map_err(|source| QemuImgError::Unreadable {
            image: image.to_owned(),
            source,
        })
    }

    async fn create_overlay(
        &self,
        base: &Path,
        base_format: &str,
        overlay: &Path,
    ) -> Result<(), QemuImgError> {
        self.run(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            text(base)?,
            "-F",
            base_format,
            text(overlay)?,
        ])
        .await
        .map(|_| ())
    }

    async fn resize(&self, image: &Path, bytes: u64) -> Result<(), QemuImgError> {
        self.run(&[
            "resize",
            "-q",
            "-f",
            "qcow2",
            text(image)?,
            &bytes.to_string(),
        ])
        .await
        .map(|_| ())
    }
}
