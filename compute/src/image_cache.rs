//! Base images under `<state>/instances/_base/`, fetched once per image under
//! a per-image lock and checked before use; instance disks are qcow2
//! overlays on them. A fetch writes `*.part` and renames, so a failed or
//! interrupted fetch never leaves a half image where a whole one belongs.
//!
//! `qemu-img` is a process start per call, which dominated a build on the
//! fake driver: a base image is inspected once (again only if its file
//! changes), and an empty overlay of each base and size is made once, as
//! `_base/<image>.overlay-<bytes>`, then copied for each instance. A fresh
//! qcow2 overlay holds nothing of its instance, so the copy is the same file
//! `qemu-img create` would have written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use stratus_host::locks::KeyedLocks;
use stratus_rpc::error::error_chain;
use stratus_rpc::wire::compute::ImageRef;
use tracing::info;

use crate::host::qemu_img::{ImageInfo, QemuImg, QemuImgError};

/// An image could not be fetched or used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image id cannot name a file.
    #[error("image id {0:?} is not ami- followed by letters and digits")]
    InvalidId(String),
    /// Reading or writing a file failed (missing source, disk full, …).
    #[error("image file {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The image is in a format guests cannot use here.
    #[error("image {id} is {format}; raw and qcow2 are supported")]
    Format {
        /// The image.
        id: String,
        /// Its format.
        format: String,
    },
    /// The image has a backing file of its own (which could point anywhere).
    #[error("image {id} has a backing file {backing:?}; refused")]
    Backing {
        /// The image.
        id: String,
        /// What it points at.
        backing: String,
    },
    /// `qemu-img` failed.
    #[error(transparent)]
    QemuImg(#[from] QemuImgError),
}

/// A base image ready for overlays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedImage {
    /// The base disk.
    pub disk: PathBuf,
    /// Its format.
    pub format: String,
    /// Its virtual size in bytes.
    pub virtual_size: u64,
    /// Its kernel, if it has one.
    pub kernel: Option<PathBuf>,
    /// Its initramfs, if it has one.
    pub ramdisk: Option<PathBuf>,
}

/// What `qemu-img info` said of a file, and the file's length and
/// modification time then, which must still match for it to count.
type Checked = (u64, SystemTime, ImageInfo);

/// The image cache of one host.
#[derive(Debug)]
pub struct ImageCache {
    base_dir: PathBuf,
    qemu_img: Arc<dyn QemuImg>,
    locks: KeyedLocks<String>,
    checked: Mutex<HashMap<PathBuf, Checked>>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `path` with `.part` appended: where a file is written before it is whole.
fn part_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// Copies `from` to `to` through `to.part`.
async fn copy_whole(from: &Path, to: &Path) -> Result<(), ImageError> {
    let part = part_of(to);
    let copied = tokio::fs::copy(from, &part).await;
    if let Err(e) = copied {
        let _ = tokio::fs::remove_file(&part).await;
        // Name the file that failed: the source when it is unreadable.
        let path = if tokio::fs::metadata(from).await.is_err() {
            from
        } else {
            to
        };
        return Err(io(path)(e));
    }
    tokio::fs::rename(&part, to).await.map_err(io(to))
}

impl ImageCache {
    /// A cache in `base_dir`, inspecting images with `qemu_img`.
    pub fn new(base_dir: PathBuf, qemu_img: Arc<dyn QemuImg>) -> Self {
        Self {
            base_dir,
            qemu_img,
            locks: KeyedLocks::new(),
            checked: Mutex::new(HashMap::new()),
        }
    }

    /// `qemu-img info` of a cached file, asked again only when the file
    /// changed since.
    async fn info(&self, path: &Path) -> Result<ImageInfo, ImageError> {
        let meta = tokio::fs::metadata(path).await.map_err(io(path))?;
        let stamp = (meta.len(), meta.modified().map_err(io(path))?);
        let known = self
            .checked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .filter(|(len, modified, _)| (*len, *modified) == stamp)
            .map(|(_, _, info)| info.clone());
        if let Some(info) = known {
            return Ok(info);
        }
        let info = self.qemu_img.info(path).await?;
        self.checked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_owned(), (stamp.0, stamp.1, info.clone()));
        Ok(info)
    }

    /// Removes the `*.part` files a worker killed mid-fetch left in `_base`
    /// (each may be as large as an image). Only for start-up, before any
    /// fetch runs: a fetch under way writes a `.part` too. Returns how many.
    pub async fn sweep_partial_fetches(&self) -> usize {
        let Ok(mut entries) = tokio::fs::read_dir(&self.base_dir).await else {
            return 0;
        };
        let mut removed = 0;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "part") {
                continue;
            }
            match tokio::fs::remove_file(&path).await {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %error_chain(&e), "could not remove a partial fetch")
                }
            }
        }
        removed
    }

    /// The cached base image, fetching and checking it first if needed.
    pub async fn fetch(&self, image: &ImageRef) -> Result<CachedImage, ImageError> {
        let id = &image.id;
        let valid = id.strip_prefix("ami-").is_some_and(|rest| {
            !rest.is_empty() && rest.len() <= 32 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        if !valid {
            return Err(ImageError::InvalidId(id.chars().take(40).collect()));
        }
        let _held = self.locks.lock(id.to_owned()).await;
        tokio::fs::create_dir_all(&self.base_dir)
            .await
            .map_err(io(&self.base_dir))?;

        let disk = self.base_dir.join(id);
        let kernel = image
            .kernel
            .as_ref()
            .map(|_| self.base_dir.join(format!("{id}.kernel")));
        let ramdisk = image
            .ramdisk
            .as_ref()
            .map(|_| self.base_dir.join(format!("{id}.ramdisk")));
        if !disk.exists() {
            let part = part_of(&disk);
            if let Err(e) = self.fetch_disk(image, &part).await {
                let _ = tokio::fs::remove_file(&part).await;
                return Err(e);
            }
            tokio::fs::rename(&part, &disk).await.map_err(io(&disk))?;
            info!(image = %id, "image cached");
        }
        for (source, cached) in [(&image.kernel, &kernel), (&image.ramdisk, &ramdisk)] {
            if let (Some(source), Some(cached)) = (source, cached)
                && !cached.exists()
            {
                copy_whole(source, cached).await?;
            }
        }
        let info = self.info(&disk).await?;
        Ok(CachedImage {
            disk,
            format: info.format,
            virtual_size: info.virtual_size,
            kernel,
            ramdisk,
        })
    }

    async fn fetch_disk(&self, image: &ImageRef, part: &Path) -> Result<(), ImageError> {
        if let Err(e) = tokio::fs::copy(&image.disk, part).await {
            let missing = tokio::fs::metadata(&image.disk).await.is_err();
            return Err(io(if missing { &image.disk } else { part })(e));
        }
        let info = self.qemu_img.info(part).await?;
        if info.format != "raw" && info.format != "qcow2" {
            return Err(ImageError::Format {
                id: image.id.clone(),
                format: info.format,
            });
        }
        if let Some(backing) = info.backing_file {
            return Err(ImageError::Backing {
                id: image.id.clone(),
                backing,
            });
        }
        Ok(())
    }

    /// Creates the instance's qcow2 overlay at `disk`, grown to `root_gb`
    /// when that is larger than the image.
    pub async fn create_overlay(
        &self,
        base: &CachedImage,
        disk: &Path,
        root_gb: u64,
    ) -> Result<(), ImageError> {
        let wanted = root_gb.saturating_mul(1 << 30);
        let size = wanted.max(base.virtual_size);
        let template = self.overlay_template(base, size, wanted).await?;
        let part = part_of(disk);
        if let Err(e) = tokio::fs::copy(&template, &part).await {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(io(disk)(e));
        }
        tokio::fs::rename(&part, disk).await.map_err(io(disk))
    }

    /// The empty overlay of `base` at `size` bytes, made on first use.
    async fn overlay_template(
        &self,
        base: &CachedImage,
        size: u64,
        wanted: u64,
    ) -> Result<PathBuf, ImageError> {
        let mut name = base
            .disk
            .file_name()
            .map(std::ffi::OsStr::to_os_string)
            .unwrap_or_default();
        name.push(format!(".overlay-{size}"));
        let template = base.disk.with_file_name(&name);
        let _held = self.locks.lock(name.to_string_lossy().into_owned()).await;
        if tokio::fs::try_exists(&template)
            .await
            .map_err(io(&template))?
        {
            return Ok(template);
        }
        // Copies live in other folders: the backing path must not be relative.
        let backing = std::path::absolute(&base.disk).map_err(io(&base.disk))?;
        let part = part_of(&template);
        let made = async {
            self.qemu_img
                .create_overlay(&backing, &base.format, &part)
                .await?;
            if wanted > base.virtual_size {
                self.qemu_img.resize(&part, wanted).await?;
            }
            Ok::<(), ImageError>(())
        }
        .await;
        if let Err(e) = made {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
        tokio::fs::rename(&part, &template)
            .await
            .map_err(io(&template))?;
        Ok(template)
    }
}
