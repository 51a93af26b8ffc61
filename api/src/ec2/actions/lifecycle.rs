//! Terminate, reboot, stop, start and console output: the API records the
//! transition and casts to the instance's host, whose report finishes it.

use base64::Engine;
use stratus_rpc::wire::compute::{InstanceRef, RebootInstance};
use stratus_rpc::wire::conductor::next_sequence;
use stratus_rpc::wire::ids::{HostName, InstanceId};
use tracing::warn;

use super::super::Ctx;
use super::super::error::Ec2Error;
use super::instances::find;
use super::render;
use crate::db::instances::InstanceRow;

/// The instances a request names (`InstanceId.N`, at least one).
async fn named(cx: &Ctx<'_>) -> Result<Vec<InstanceRow>, Ec2Error> {
    let ids = cx.params.list("InstanceId")?;
    if ids.is_empty() {
        return Err(Ec2Error::missing("InstanceId"));
    }
    let rows = find(cx, &ids).await?;
    cx.dry_run()?;
    // In the order asked.
    Ok(ids
        .iter()
        .filter_map(|id| rows.iter().find(|r| &r.ec2_id == id).cloned())
        .collect())
}

fn refs(i: &InstanceRow) -> Option<(HostName, InstanceRef)> {
    let host: HostName = i.host.as_deref()?.parse().ok()?;
    let instance_id: InstanceId = i.uuid.parse().ok()?;
    Some((host, InstanceRef { instance_id }))
}

fn sequence() -> i64 {
    i64::try_from(next_sequence()).unwrap_or(i64::MAX)
}

/// Records `state` for `i` as of now.
async fn set_state(
    cx: &Ctx<'_>,
    i: &InstanceRow,
    state: &str,
    task: Option<&str>,
) -> Result<(), Ec2Error> {
    cx.cloud
        .db
        .update_state(&i.uuid, state, task, None, None, sequence())
        .await?;
    Ok(())
}

/// A `…Response` listing each instance's current and previous state.
fn state_changes(cx: &Ctx<'_>, changes: &[(String, String, String)]) -> String {
    let mut x = cx.response();
    x.list("instancesSet", changes, |x, (id, current, previous)| {
        x.text("instanceId", id);
        render::instance_state(x, "currentState", current);
        render::instance_state(x, "previousState", previous);
    });
    cx.finish(x)
}

/// TerminateInstances: shutting-down until the host reports it gone; an
/// instance no host holds yet is terminated at once.
pub async fn terminate_instances(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let ctx = cx.rpc_context();
    let mut changes = Vec::new();
    for i in named(cx).await? {
        let current = match (i.state.as_str(), refs(&i)) {
            ("terminated" | "error", _) => {
                if i.state == "error" {
                    set_state(cx, &i, "terminated", None).await?;
                }
                "terminated"
            }
            (_, None) => {
                set_state(cx, &i, "terminated", None).await?;
                "terminated"
            }
            (_, Some((host, instance))) => {
                set_state(cx, &i, "shutting-down", Some("deleting")).await?;
                if let Err(e) = cx
                    .cloud
                    .compute
                    .terminate_instance(&ctx, &host, instance)
                    .await
                {
                    warn!(instance_id = %i.ec2_id, error = %e, "terminate cast failed");
                    return Err(Ec2Error::unavailable(format!(
                        "Could not reach the host of {}; try again.",
                        i.ec2_id
                    )));
                }
                "shutting-down"
            }
        };
        changes.push((i.ec2_id.clone(), current.to_owned(), i.state.clone()));
    }
    Ok(state_changes(cx, &changes))
}

fn incorrect(i: &InstanceRow, what: &str) -> Ec2Error {
    Ec2Error::client(
        "IncorrectInstanceState",
        format!(
            "The instance '{}' is not in a state from which it can be {what}.",
            i.ec2_id
        ),
    )
}

/// StopInstances: running → stopping; a stopped one stays stopped.
pub async fn stop_instances(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let ctx = cx.rpc_context();
    let rows = named(cx).await?;
    for i in &rows {
        if !matches!(i.state.as_str(), "running" | "stopping" | "stopped") {
            return Err(incorrect(i, "stopped"));
        }
    }
    let mut changes = Vec::new();
    for i in rows {
        let current = if i.state == "running" {
            let (host, instance) = refs(&i).ok_or_else(|| incorrect(&i, "stopped"))?;
            set_state(cx, &i, "stopping", Some("powering-off")).await?;
            cx.cloud
                .compute
                .stop_instance(&ctx, &host, instance)
                .await
                .map_err(|e| {
                    Ec2Error::unavailable(format!("Could not reach the host of {}: {e}", i.ec2_id))
                })?;
            "stopping".to_owned()
        } else {
            i.state.clone()
        };
        changes.push((i.ec2_id.clone(), current, i.state.clone()));
    }
    Ok(state_changes(cx, &changes))
}

/// StartInstances: stopped → pending; a running one stays running.
pub async fn start_instances(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let ctx = cx.rpc_context();
    let rows = named(cx).await?;
    for i in &rows {
        if !matches!(i.state.as_str(), "stopped" | "pending" | "running") {
            return Err(incorrect(i, "started"));
        }
    }
    let mut changes = Vec::new();
    for i in rows {
        let current = if i.state == "stopped" {
            let (host, instance) = refs(&i).ok_or_else(|| incorrect(&i, "started"))?;
            set_state(cx, &i, "pending", Some("powering-on")).await?;
            cx.cloud
                .compute
                .start_instance(&ctx, &host, instance)
                .await
                .map_err(|e| {
                    Ec2Error::unavailable(format!("Could not reach the host of {}: {e}", i.ec2_id))
                })?;
            "pending".to_owned()
        } else {
            i.state.clone()
        };
        changes.push((i.ec2_id.clone(), current, i.state.clone()));
    }
    Ok(state_changes(cx, &changes))
}

/// RebootInstances: asks each running instance's guest to reboot.
pub async fn reboot_instances(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let ctx = cx.rpc_context();
    let rows = named(cx).await?;
    for i in &rows {
        if i.state != "running" {
            return Err(incorrect(i, "rebooted"));
        }
    }
    for i in rows {
        let (host, instance) = refs(&i).ok_or_else(|| incorrect(&i, "rebooted"))?;
        let request = RebootInstance {
            instance_id: instance.instance_id,
            hard: false,
        };
        cx.cloud
            .compute
            .reboot_instance(&ctx, &host, request)
            .await
            .map_err(|e| {
                Ec2Error::unavailable(format!("Could not reach the host of {}: {e}", i.ec2_id))
            })?;
    }
    Ok(cx.ok())
}

/// GetConsoleOutput: the tail of the serial console, base64-encoded.
pub async fn get_console_output(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let id = cx.params.required("InstanceId")?.to_owned();
    let rows = find(cx, std::slice::from_ref(&id)).await?;
    cx.dry_run()?;
    let Some(i) = rows.first() else {
        return Err(Ec2Error::internal("instance vanished"));
    };
    let output = match refs(i) {
        Some((host, instance)) if !matches!(i.state.as_str(), "terminated" | "error") => cx
            .cloud
            .compute
            .get_console_output(&cx.rpc_context(), &host, instance)
            .await
            .map_err(|e| {
                warn!(instance_id = %i.ec2_id, error = %e, "console output failed");
                Ec2Error::unavailable(format!(
                    "The console of {} cannot be read now: {e}",
                    i.ec2_id
                ))
            })?,
        _ => String::new(),
    };
    let mut x = cx.response();
    x.text("instanceId", &i.ec2_id)
        .text("timestamp", &crate::db::now())
        .text(
            "output",
            &base64::engine::general_purpose::STANDARD.encode(output),
        );
    Ok(cx.finish(x))
}
