//! What the api service picks up again when it starts serving, and then
//! every `[api] recast_unplaced_secs`: launches no host took (never placed,
//! or handed back) are re-cast to the scheduler, and terminates, stops and
//! starts whose host never finished them are re-cast to that host.
//!
//! Re-casting is always safe: a host claims each build before it builds
//! (the conductor grants one host), and terminate and stop are idempotent
//! on the host. At start everything is re-cast at once: in the embedded
//! mode the in-process bus lost every request in flight with the process.
//! The build timeout stays the last word on launches that never finish.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use stratus_rpc::RequestContext;
use stratus_rpc::wire::compute::RunInstance;
use stratus_rpc::wire::conductor::{InstanceEvent, InstanceState};
use stratus_rpc::wire::scheduler::ScheduleRunInstances;
use tracing::{info, warn};

use super::request::{RebuildError, rebuild};
use super::{placed, record};
use crate::db::DbError;
use crate::db::instances::InstanceRow;
use crate::ec2::Cloud;

/// The task of a stopped instance being started (pending again).
const POWERING_ON: &str = "powering-on";

/// How long the first pass waits for the scheduler to know a live host.
pub const HOST_WAIT: Duration = Duration::from_secs(60);

/// What one pass re-cast or ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Launches re-cast to the scheduler.
    pub launches: usize,
    /// Launches that cannot be built again (their image is gone): in error.
    pub failed: usize,
    /// Terminates and stops re-cast to hosts.
    pub to_hosts: usize,
    /// Terminates ended at once (no host held the instance).
    pub ended: usize,
}

/// Re-casts what no service finished; one per api process.
#[derive(Debug, Clone)]
pub struct Recovery {
    cloud: Arc<Cloud>,
    every: Duration,
    /// When this process last re-cast each instance: news is what the row
    /// says or a re-cast, so one is not re-cast again before `every`.
    recast: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Recovery {
    /// Recovery for `cloud`, re-casting what had no news for `every`.
    pub fn new(cloud: Arc<Cloud>, every: Duration) -> Self {
        Self {
            cloud,
            every,
            recast: Arc::default(),
        }
    }

    /// One pass over everything now, then one every `every` (0: only the
    /// first) over what had no news for that long.
    pub async fn run(self) {
        self.wait_for_a_host().await;
        self.logged(None).await;
        if self.every.is_zero() {
            return;
        }
        loop {
            tokio::time::sleep(self.every.max(Duration::from_secs(1))).await;
            self.logged(Some(self.every)).await;
        }
    }

    /// With launches to re-cast, waits (up to [`HOST_WAIT`]) until the
    /// scheduler knows a live host: one started with this process has heard
    /// from none yet, and would end every launch for want of a host.
    async fn wait_for_a_host(&self) {
        let pending = InstanceState::Pending;
        let unplaced = self
            .cloud
            .db
            .uuids_in_state(pending, Some("scheduling"), None)
            .await;
        if unplaced.is_ok_and(|u| u.is_empty()) {
            return;
        }
        let ctx = RequestContext::system();
        let deadline = Instant::now() + HOST_WAIT;
        while Instant::now() < deadline {
            match self.cloud.scheduler.list_hosts(&ctx).await {
                Ok(hosts) if hosts.iter().any(|h| h.up) => return,
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %stratus_rpc::error::error_chain(&e), "asking the scheduler for hosts")
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        warn!(
            waited_secs = HOST_WAIT.as_secs(),
            "the scheduler knows no live host; re-casting launches anyway"
        );
    }

    async fn logged(&self, quiet_for: Option<Duration>) {
        match self.pass(quiet_for).await {
            Ok(done) if done != Recovered::default() => info!(
                launches = done.launches,
                failed = done.failed,
                to_hosts = done.to_hosts,
                ended = done.ended,
                "recovered unfinished work"
            ),
            Ok(_) => {}
            Err(e) => {
                warn!(error = %stratus_rpc::error::error_chain(&e), "looking for unfinished work")
            }
        }
    }

    /// Re-casts what had no news for `quiet_for` (none: everything).
    pub async fn pass(&self, quiet_for: Option<Duration>) -> Result<Recovered, DbError> {
        let before = quiet_for.map(|q| {
            humantime::format_rfc3339_millis(
                SystemTime::now()
                    .checked_sub(q)
                    .unwrap_or(SystemTime::UNIX_EPOCH),
            )
            .to_string()
        });
        let mut done = Recovered::default();
        self.forget_old();
        self.launches(before.as_deref(), &mut done).await?;
        let to_hosts = [
            (InstanceState::ShuttingDown, None),
            (InstanceState::Stopping, None),
            (InstanceState::Pending, Some(POWERING_ON)),
        ];
        for (state, task) in to_hosts {
            for row in self.quiet(state, task, before.as_deref()).await? {
                self.to_host(&row, &mut done).await?;
            }
        }
        Ok(done)
    }

    /// Instances in `state` (and `task`) quiet since `before`, not re-cast
    /// by this process lately.
    async fn quiet(
        &self,
        state: InstanceState,
        task: Option<&str>,
        before: Option<&str>,
    ) -> Result<Vec<InstanceRow>, DbError> {
        let db = &self.cloud.db;
        let mut rows = Vec::new();
        for uuid in db.uuids_in_state(state, task, before).await? {
            if before.is_some() && self.recast_lately(&uuid) {
                continue;
            }
            // Changed since the list was read (a report came): left alone.
            if let Some(row) = db.instance_by_uuid(&uuid).await?
                && row.state == state
                && (task.is_none() || row.task_state.as_deref() == task)
                && before.is_none_or(|b| row.updated_at.as_str() < b)
            {
                rows.push(row);
            }
        }
        Ok(rows)
    }

    /// Re-casts pending launches no host holds, all in one request.
    async fn launches(&self, before: Option<&str>, done: &mut Recovered) -> Result<(), DbError> {
        let mut requests = Vec::new();
        let pending = InstanceState::Pending;
        for row in self.quiet(pending, Some("scheduling"), before).await? {
            match rebuild(&self.cloud.db, &row).await {
                Ok(request) => {
                    let request = super::request::named(request, self.cloud.config.public.as_ref());
                    requests.push(handed_back(request, &row));
                }
                Err(e @ (RebuildError::ImageGone { .. } | RebuildError::StoredIds { .. })) => {
                    let reason = format!("the launch could not be resumed: {e}");
                    let failed = pending
                        .transition(InstanceEvent::BuildFailed)
                        .unwrap_or(InstanceState::Error);
                    if record(&self.cloud.db, &row, failed, None, Some(&reason)).await? {
                        warn!(instance_id = %row.uuid, %reason, "launch ended");
                        done.failed += 1;
                    }
                }
                Err(e) => {
                    warn!(instance_id = %row.uuid, error = %stratus_rpc::error::error_chain(&e), "could not rebuild the launch request; trying again later");
                }
            }
        }
        if requests.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = requests.iter().map(|r| r.instance_id.to_string()).collect();
        let ctx = RequestContext::system();
        let instances = ScheduleRunInstances {
            instances: requests,
        };
        match self.cloud.scheduler.run_instance(&ctx, &instances).await {
            Ok(()) => {
                for id in &ids {
                    info!(instance_id = %id, "launch re-cast to the scheduler");
                    self.mark(id);
                }
                done.launches += ids.len();
            }
            // The next pass tries again; the build timeout ends it if none does.
            Err(e) => {
                warn!(instances = ids.len(), error = %stratus_rpc::error::error_chain(&e), "could not re-cast launches to the scheduler")
            }
        }
        Ok(())
    }

    /// Re-casts an unfinished terminate or stop to the instance's host; a
    /// terminate no host can finish ends at once, as the API ends those.
    async fn to_host(&self, row: &InstanceRow, done: &mut Recovered) -> Result<(), DbError> {
        let ctx = RequestContext::system();
        let compute = &self.cloud.compute;
        let Some((host, instance)) = placed(row) else {
            if row.state == InstanceState::ShuttingDown {
                let ended = row
                    .state
                    .transition(InstanceEvent::Terminate { placed: false })
                    .unwrap_or(InstanceState::Terminated);
                if record(&self.cloud.db, row, ended, None, None).await? {
                    info!(instance_id = %row.uuid, "terminated: no host held it");
                    done.ended += 1;
                }
            }
            return Ok(());
        };
        let cast = match row.state {
            InstanceState::ShuttingDown => compute.terminate_instance(&ctx, &host, instance).await,
            InstanceState::Stopping => compute.stop_instance(&ctx, &host, instance).await,
            _ => {
                let request = super::lifecycle::start_request(row, instance);
                compute.start_instance(&ctx, &host, request).await
            }
        };
        match cast {
            Ok(()) => {
                info!(instance_id = %row.uuid, %host, state = %row.state, "re-cast to its host");
                self.mark(&row.uuid);
                done.to_hosts += 1;
            }
            Err(e) => {
                warn!(instance_id = %row.uuid, %host, error = %stratus_rpc::error::error_chain(&e), "could not re-cast to its host")
            }
        }
        Ok(())
    }

    fn recast_lately(&self, uuid: &str) -> bool {
        let recast = self.recast.lock().unwrap_or_else(PoisonError::into_inner);
        recast.get(uuid).is_some_and(|at| at.elapsed() < self.every)
    }

    fn mark(&self, uuid: &str) {
        let mut recast = self.recast.lock().unwrap_or_else(PoisonError::into_inner);
        recast.insert(uuid.to_owned(), Instant::now());
    }

    fn forget_old(&self) {
        let mut recast = self.recast.lock().unwrap_or_else(PoisonError::into_inner);
        recast.retain(|_, at| at.elapsed() < self.every);
    }
}

/// A launch a host handed back goes on from there: that host is tried
/// already, with the reason it gave, so the scheduler picks another one (or
/// ends it with that reason when none is left).
fn handed_back(mut request: RunInstance, row: &InstanceRow) -> RunInstance {
    if let Some(host) = row.host.as_deref().and_then(|h| h.parse().ok()) {
        request.placement.hosts_tried.push(host);
        request.placement.failures.push(
            row.state_reason
                .clone()
                .unwrap_or_else(|| "its host handed it back".to_owned()),
        );
    }
    request
}
