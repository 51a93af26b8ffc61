//! Real guests through libvirt (the virt crate). libvirt's API blocks, so
//! every call runs on the blocking pool, never on the async runtime.
//!
//! The connection outlives libvirtd restarts: when the daemon goes away
//! (an upgrade, a crash, `systemctl restart libvirtd`), guests keep running
//! but the socket we hold is dead. A call that finds it dead reopens the
//! same URI and is retried once; while the daemon is absent, calls fail
//! with libvirt's error, which callers log and never read as "the domain
//! is gone".

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use tracing::{info, warn};
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
    conn: Arc<Connection>,
    domain_type: DomainType,
}

/// One libvirt call failed: what was attempted, on what, and libvirt's own
/// error, kept whole until the call is over so a lost connection can be
/// told apart from a refusal.
struct Failed {
    action: &'static str,
    target: String,
    error: virt::error::Error,
}

fn failed(action: &'static str, target: &str) -> impl FnOnce(virt::error::Error) -> Failed {
    let target = target.to_owned();
    move |error| Failed {
        action,
        target,
        error,
    }
}

impl From<Failed> for DriverError {
    fn from(f: Failed) -> Self {
        if matches!(f.error.code(), Enum::Known(ErrorNumber::NoDomain)) {
            DriverError::NotFound(f.target)
        } else {
            DriverError::Libvirt {
                action: f.action,
                domain: f.target,
                message: f.error.message().to_owned(),
            }
        }
    }
}

/// Whether the connection a call failed on is gone, rather than the daemon
/// having refused. libvirt's client marks its connection closed once the
/// socket fails (broken pipe, end of file, "client socket is closed": codes
/// VIR_ERR_SYSTEM_ERROR, VIR_ERR_RPC, VIR_ERR_INTERNAL_ERROR from the RPC
/// layer), so its own liveness answer decides: a refusal from a live daemon
/// (no such domain, domain already running, a QEMU failure) is never
/// retried, which keeps non-idempotent calls such as start from running twice.
fn connection_lost(conn: &Connect) -> bool {
    !conn.is_alive().unwrap_or(false)
}

/// The open connection to libvirtd, replaced when the daemon restarts.
#[derive(Debug)]
struct Connection {
    uri: String,
    current: Mutex<Arc<Connect>>,
}

impl Connection {
    fn current(&self) -> Arc<Connect> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Opens the URI again in place of `dead`, unless another call already
    /// did (then that connection is used). Runs on the blocking pool; the
    /// lock is held while opening so concurrent failures reconnect once.
    fn replace(
        &self,
        dead: &Arc<Connect>,
        cause: &str,
    ) -> Result<Arc<Connect>, virt::error::Error> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if !Arc::ptr_eq(&current, dead) {
            return Ok(current.clone());
        }
        let started = Instant::now();
        match Connect::open(Some(&self.uri)) {
            Ok(conn) => {
                info!(
                    uri = %self.uri,
                    cause,
                    took_ms = started.elapsed().as_millis() as u64,
                    "reconnected to libvirtd"
                );
                *current = Arc::new(conn);
                Ok(current.clone())
            }
            Err(e) => {
                warn!(uri = %self.uri, cause, error = %e.message(), "libvirtd is unreachable; the next call tries again");
                Err(e)
            }
        }
    }

    /// Runs `f` on a live connection: reconnects first when the client
    /// already knows its connection is dead, and once more (retrying `f`)
    /// when `f` is what finds out.
    fn call<T>(
        &self,
        action: &'static str,
        target: &str,
        f: impl Fn(&Connect) -> Result<T, Failed>,
    ) -> Result<T, DriverError> {
        let unreachable = |cause: String, e: virt::error::Error| DriverError::Libvirt {
            action,
            domain: target.to_owned(),
            message: format!(
                "{cause}; reconnecting to {} failed: {}",
                self.uri,
                e.message()
            ),
        };
        let mut conn = self.current();
        if connection_lost(&conn) {
            let cause = "the connection was closed".to_owned();
            conn = self
                .replace(&conn, &cause)
                .map_err(|e| unreachable(cause, e))?;
        }
        match f(&conn) {
            Err(first) if connection_lost(&conn) => {
                let cause = format!(
                    "{} {} lost the connection: {}",
                    first.action,
                    first.target,
                    first.error.message()
                );
                let conn = self
                    .replace(&conn, &cause)
                    .map_err(|e| unreachable(cause, e))?;
                f(&conn).map_err(DriverError::from)
            }
            result => result.map_err(DriverError::from),
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

fn state_of(domain: &Domain) -> Result<PowerState, virt::error::Error> {
    Ok(match domain.state()?.0 {
        Enum::Known(s) => power_state(s),
        Enum::Unknown(_) => PowerState::NoState,
    })
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
            .map_err(failed("connect", uri))?;
        Ok(Self {
            conn: Arc::new(Connection {
                uri: uri.to_owned(),
                current: Mutex::new(Arc::new(conn)),
            }),
            domain_type,
        })
    }

    /// The domain type guests get.
    pub fn domain_type(&self) -> DomainType {
        self.domain_type
    }

    /// Runs `f` with a live connection on the blocking pool, in the
    /// caller's span (so a reconnect is logged with the instance it served).
    async fn blocking<T, F>(&self, action: &'static str, name: &str, f: F) -> Result<T, DriverError>
    where
        T: Send + 'static,
        F: Fn(&Connect) -> Result<T, Failed> + Send + 'static,
    {
        let conn = self.conn.clone();
        let target = name.to_owned();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| conn.call(action, &target, f)))
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
        F: Fn(&Domain) -> Result<T, virt::error::Error> + Send + 'static,
    {
        let owned = name.to_owned();
        self.blocking(action, name, move |conn| {
            let domain = conn
                .lookup_domain_by_name(&owned)
                .map_err(failed(action, &owned))?;
            f(&domain).map_err(failed(action, &owned))
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
        // Retried after a lost connection: defining the same XML again
        // replaces the definition; if the old daemon did start the guest,
        // the second start is refused ("already running") and the build
        // fails and cleans up rather than running a guest twice.
        self.blocking("define and start", &spec.name, move |conn| {
            let domain = conn
                .define_domain_xml(&xml)
                .map_err(failed("define", &name))?;
            if let Err(e) = domain.create() {
                // Leave no definition behind for a domain that never ran.
                let _ = domain.undefine();
                return Err(failed("start", &name)(e));
            }
            Ok(())
        })
        .await
    }

    async fn state(&self, name: &str) -> Result<Option<PowerState>, DriverError> {
        match self.with_domain("state", name, state_of).await {
            Ok(state) => Ok(Some(state)),
            Err(DriverError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(&self) -> Result<Vec<(String, PowerState)>, DriverError> {
        let uri = self.conn.uri.clone();
        self.blocking("list", &uri.clone(), move |conn| {
            let domains = conn.list_all_domains(0).map_err(failed("list", &uri))?;
            let mut out = Vec::with_capacity(domains.len());
            for domain in domains {
                let name = domain.name().map_err(failed("name", &uri))?;
                let state = state_of(&domain).map_err(failed("state", &name))?;
                out.push((name, state));
            }
            Ok(out)
        })
        .await
    }

    async fn uuid(&self, name: &str) -> Result<Option<uuid::Uuid>, DriverError> {
        if self.state(name).await?.is_none() {
            return Ok(None);
        }
        let text = self.with_domain("uuid", name, |d| d.uuid_string()).await?;
        Ok(uuid::Uuid::parse_str(&text).ok())
    }

    async fn resize(&self, name: &str, vcpus: u32, memory_mb: u64) -> Result<(), DriverError> {
        use virt::sys::{
            VIR_DOMAIN_AFFECT_CONFIG, VIR_DOMAIN_MEM_MAXIMUM, VIR_DOMAIN_VCPU_MAXIMUM,
        };
        let kib = memory_mb.saturating_mul(1024);
        // libvirt edits the persistent definition itself, keeping what it
        // added when the domain was defined (device addresses). The maximum
        // goes first: growing, the current value may not pass it; shrinking,
        // libvirt lowers the current value with it.
        self.with_domain("resize", name, move |d| {
            d.set_vcpus_flags(vcpus, VIR_DOMAIN_AFFECT_CONFIG | VIR_DOMAIN_VCPU_MAXIMUM)?;
            d.set_vcpus_flags(vcpus, VIR_DOMAIN_AFFECT_CONFIG)?;
            d.set_memory_flags(kib, VIR_DOMAIN_AFFECT_CONFIG | VIR_DOMAIN_MEM_MAXIMUM)?;
            d.set_memory_flags(kib, VIR_DOMAIN_AFFECT_CONFIG)
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
