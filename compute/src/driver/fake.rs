//! Domains in memory, with the real driver's state machine: invalid moves
//! are refused as libvirt would refuse them. One process can run hundreds.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use stratus_rpc::error::error_chain;

use super::{DriverError, VirtDriver};
use crate::state::{PowerEvent, PowerState};
use crate::xml::DomainSpec;

/// A hypervisor that only keeps books.
#[derive(Debug, Default)]
pub struct FakeDriver {
    domains: Mutex<BTreeMap<String, (DomainSpec, PowerState)>>,
    /// A spawn of a domain with this name fails (failure injection for tests).
    fail_spawn_of: Mutex<Option<String>>,
    /// A destroy of a domain with this name fails, as with the hypervisor away.
    fail_destroy_of: Mutex<Option<String>>,
    /// How many times each domain was spawned.
    spawns: Mutex<BTreeMap<String, usize>>,
}

impl FakeDriver {
    /// An empty fake hypervisor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next spawn of `name` fail.
    pub fn fail_spawn(&self, name: &str) {
        *self
            .fail_spawn_of
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(name.to_owned());
    }

    /// Makes the next destroy of `name` fail.
    pub fn fail_destroy(&self, name: &str) {
        *self
            .fail_destroy_of
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(name.to_owned());
    }

    /// How many times a domain of this name was spawned (successfully).
    pub fn spawn_count(&self, name: &str) -> usize {
        self.spawns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// The spec a domain was spawned with.
    pub fn spec(&self, name: &str) -> Option<DomainSpec> {
        self.domains
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .map(|(spec, _)| spec.clone())
    }

    /// Sets a domain's state as if the guest did it (shut itself down, crashed).
    pub fn set_state(&self, name: &str, state: PowerState) {
        if let Some(entry) = self
            .domains
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(name)
        {
            entry.1 = state;
        }
    }

    fn apply(&self, name: &str, event: PowerEvent) -> Result<(), DriverError> {
        let mut domains = self
            .domains
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (_, state) = domains
            .get_mut(name)
            .ok_or_else(|| DriverError::NotFound(name.to_owned()))?;
        *state = state
            .transition(event)
            .map_err(|refused| DriverError::Invalid {
                domain: name.to_owned(),
                refused,
            })?;
        Ok(())
    }
}

#[async_trait]
impl VirtDriver for FakeDriver {
    fn hypervisor_type(&self) -> String {
        "fake".to_owned()
    }

    async fn spawn(&self, spec: &DomainSpec) -> Result<(), DriverError> {
        let mut fail = self
            .fail_spawn_of
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if fail.as_deref() == Some(spec.name.as_str()) {
            *fail = None;
            return Err(DriverError::Libvirt {
                action: "create",
                domain: spec.name.clone(),
                message: "injected failure".into(),
            });
        }
        drop(fail);
        let mut domains = self
            .domains
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if domains.contains_key(&spec.name) {
            return Err(DriverError::Exists(spec.name.clone()));
        }
        let running = PowerState::Shutoff
            .transition(PowerEvent::Start)
            .map_err(|refused| DriverError::Invalid {
                domain: spec.name.clone(),
                refused,
            })?;
        domains.insert(spec.name.clone(), (spec.clone(), running));
        drop(domains);
        *self
            .spawns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(spec.name.clone())
            .or_default() += 1;
        // A console a real guest would fill, so console output has something
        // to show in the embedded mode and tests.
        if let Some(dir) = spec.console_log.parent()
            && dir.is_dir()
        {
            let line = format!("fake hypervisor: {} booted\n", spec.name);
            if let Err(e) = std::fs::write(&spec.console_log, line) {
                tracing::warn!(error = %error_chain(&e), "could not write the fake console");
            }
        }
        Ok(())
    }

    async fn state(&self, name: &str) -> Result<Option<PowerState>, DriverError> {
        Ok(self
            .domains
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .map(|(_, state)| *state))
    }

    async fn list(&self) -> Result<Vec<(String, PowerState)>, DriverError> {
        Ok(self
            .domains
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(name, (_, state))| (name.clone(), *state))
            .collect())
    }

    async fn uuid(&self, name: &str) -> Result<Option<uuid::Uuid>, DriverError> {
        Ok(self.spec(name).map(|spec| spec.uuid))
    }

    async fn resize(&self, name: &str, vcpus: u32, memory_mb: u64) -> Result<(), DriverError> {
        let mut domains = self
            .domains
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (spec, _) = domains
            .get_mut(name)
            .ok_or_else(|| DriverError::NotFound(name.to_owned()))?;
        spec.vcpus = vcpus;
        spec.memory_mb = memory_mb;
        Ok(())
    }

    async fn power_on(&self, name: &str) -> Result<(), DriverError> {
        self.apply(name, PowerEvent::Start)?;
        // What a real guest's console would show of its size, so tests
        // reading console output see what the host started it with.
        if let Some(spec) = self.spec(name) {
            let line = format!(
                "fake hypervisor: {name} started with {} vCPUs and {} MiB\n",
                spec.vcpus, spec.memory_mb
            );
            append_console(&spec.console_log, &line);
        }
        Ok(())
    }

    async fn power_off(&self, name: &str) -> Result<(), DriverError> {
        self.apply(name, PowerEvent::Stop)
    }

    async fn reboot(&self, name: &str, _hard: bool) -> Result<(), DriverError> {
        self.apply(name, PowerEvent::Reboot)
    }

    async fn destroy(&self, name: &str) -> Result<(), DriverError> {
        let fail = {
            let mut failing = self
                .fail_destroy_of
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if failing.as_deref() == Some(name) {
                failing.take()
            } else {
                None
            }
        };
        if fail.is_some() {
            return Err(DriverError::Libvirt {
                action: "destroy",
                domain: name.to_owned(),
                message: "injected failure: the hypervisor is away".to_owned(),
            });
        }
        self.domains
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(name);
        Ok(())
    }
}

/// Appends `line` to a console log whose folder exists.
fn append_console(path: &std::path::Path, line: &str) {
    use std::io::Write;
    if !path.parent().is_some_and(std::path::Path::is_dir) {
        return;
    }
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(e) = appended {
        tracing::warn!(error = %error_chain(&e), "could not write the fake console");
    }
}
