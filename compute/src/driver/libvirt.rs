//! Real guests through libvirt (the virt crate). libvirt's API blocks, so
//! every call runs on the blocking pool, never on the async runtime.

use std::sync::Arc;

use async_trait::async_trait;
use virt::connect::Connect;
use virt::domain::{Domain, DomainState};
use virt::enumutil::Enum;
use virt::error::ErrorNumber;

use super::{DriverError, VirtDriver};
use crate::state::PowerState;
use crate::xml::{DomainSpec, DomainType, render};

/// A libvirt connection and the domain type guests get.
#[derive(Debug, Clone)]
pub struct LibvirtDriver {
    uri: String,
    conn: Arc<Connect>,
    domain_type: DomainType,
}

fn libvirt_error(
    action: &'static str,
    domain: &str,
) -> impl FnOnce(virt::error::Error) -> DriverError {
    let domain = domain.to_owned();
    move |e| {
        if matches!(e.code(), Enum::Known(ErrorNumber::NoDomain)) {
            DriverError::NotFound(domain)
        } else {
            DriverError::Libvirt {
                action,
                domain,
                message: e.message().to_owned(),
            }
        }
    }
}

fn power_state(state: DomainState) -> PowerState {
    match state {
        DomainState::Running | DomainState::Blocked | DomainState::Shutdown => PowerState::Running,
        DomainState::Paused | DomainState::PMSuspended => PowerState::Paused,
        DomainState::Shutoff => PowerState::Shutoff,
        DomainState::Crashed => PowerState::Crashed,
        DomainState::NoState => PowerState::NoState,
    }
}

impl LibvirtDriver {
    /// Connects to `uri` (e.g. `qemu:///system`, or a private daemon's
    /// `qemu:///system?socket=…`); guests get `domain_type`.
    pub async fn connect(uri: &str, domain_type: DomainType) -> Result<Self, DriverError> {
        // libvirt prints every error to stderr by default; ours are returned
        // and logged with their context instead.
        virt::error::clear_error_callback();
        let owned = uri.to_owned();
        let conn = tokio::task::spawn_blocking(move || Connect::open(Some(&owned)))
            .await
            .map_err(|e| DriverError::Libvirt {
                action: "connect",
                domain: uri.to_owned(),
                message: e.to_string(),
            })?
            .map_err(libvirt_error("connect", uri))?;
        Ok(Self {
            uri: uri.to_owned(),
            conn: Arc::new(conn),
            domain_type,
        })
    }

    /// The domain type guests get.
    pub fn domain_type(&self) -> DomainType {
        self.domain_type
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn blocking<T, F>(&self, action: &'static str, name: &str, f: F) -> Result<T, DriverError>
    where
        T: Send + 'static,
        F: FnOnce(&Connect) -> Result<T, DriverError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&conn))
            .await
            .map_err(|e| DriverError::Libvirt {
                action,
                domain: name.to_owned(),
                message: format!("blocking task failed: {e}"),
            })?
    }

    async fn with_domain<T, F>(
        &self,
        action: &'static str,
        name: &str,
        f: F,
    ) -> Result<T, DriverError>
    where
        T: Send + 'static,
        F: FnOnce(&Domain) -> Result<T, virt::error::Error> + Send + 'static,
    {
        let owned = name.to_owned();
        self.blocking(action, name, move |conn| {
            let domain = conn
                .lookup_domain_by_name(&owned)
                .map_err(libvirt_error(action, &owned))?;
            f(&domain).map_err(libvirt_error(action, &owned))
        })
        .await
    }
}

#[async_trait]
impl VirtDriver for LibvirtDriver {
    fn hypervisor_type(&self) -> String {
        match self.domain_type {
            DomainType::Kvm => "kvm".to_owned(),
            DomainType::Qemu => "qemu".to_owned(),
        }
    }

    async fn spawn(&self, spec: &DomainSpec) -> Result<(), DriverError> {
        let mut spec = spec.clone();
        spec.domain_type = self.domain_type;
        let xml = render(&spec);
        let name = spec.name.clone();
        self.blocking("define and start", &spec.name, move |conn| {
            let domain = conn
                .define_domain_xml(&xml)
                .map_err(libvirt_error("define", &name))?;
            if let Err(e) = domain.create() {
                // Leave no definition behind for a domain that never ran.
                let _ = domain.undefine();
                return Err(libvirt_error("start", &name)(e));
            }
            Ok(())
        })
        .await
    }

    async fn state(&self, name: &str) -> Result<Option<PowerState>, DriverError> {
        match self.with_domain("state", name, |d| d.state()).await {
            Ok((state, _reason)) => Ok(Some(match state {
                Enum::Known(s) => power_state(s),
                Enum::Unknown(_) => PowerState::NoState,
            })),
            Err(DriverError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(&self) -> Result<Vec<(String, PowerState)>, DriverError> {
        let uri = self.uri.clone();
        self.blocking("list", &uri.clone(), move |conn| {
            let domains = conn
                .list_all_domains(0)
                .map_err(libvirt_error("list", &uri))?;
            let mut out = Vec::with_capacity(domains.len());
            for domain in domains {
                let name = domain.name().map_err(libvirt_error("name", &uri))?;
                let state = match domain.state().map_err(libvirt_error("state", &name))?.0 {
                    Enum::Known(s) => power_state(s),
                    Enum::Unknown(_) => PowerState::NoState,
                };
                out.push((name, state));
            }
            Ok(out)
        })
        .await
    }

    async fn power_on(&self, name: &str) -> Result<(), DriverError> {
        self.with_domain("start", name, |d| d.create()).await
    }

    async fn power_off(&self, name: &str) -> Result<(), DriverError> {
        self.with_domain("stop", name, |d| d.destroy()).await
    }

    async fn reboot(&self, name: &str, hard: bool) -> Result<(), DriverError> {
        if hard {
            self.with_domain("reset", name, |d| d.reset()).await
        } else {
            self.with_domain("reboot", name, |d| {
                d.reboot(virt::sys::VIR_DOMAIN_REBOOT_ACPI_POWER_BTN)
            })
            .await
        }
    }

    async fn destroy(&self, name: &str) -> Result<(), DriverError> {
        let result = self
            .with_domain("destroy", name, |d| {
                if d.is_active()? {
                    d.destroy()?;
                }
                d.undefine()
            })
            .await;
        match result {
            Ok(()) | Err(DriverError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
