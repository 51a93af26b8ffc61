//! Terminate, reboot, stop, start and console output: each names its
//! instances, asks the application layer, and renders the answer.

use base64::Engine;

use super::super::Ctx;
use super::super::error::Ec2Error;
use super::instances::find;
use super::render;
use crate::app::instances::{self, Ask, StateChanged};
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

/// A `…Response` listing each instance's current and previous state.
fn state_changes(cx: &Ctx<'_>, changes: &[StateChanged]) -> String {
    let mut x = cx.response();
    x.list("instancesSet", changes, |x, change| {
        x.text("instanceId", &change.instance);
        render::instance_state(x, "currentState", change.current);
        render::instance_state(x, "previousState", change.previous);
    });
    cx.finish(x)
}

/// A `…Response` after asking the instances named for `ask`.
async fn ask(cx: &Ctx<'_>, ask: Ask) -> Result<String, Ec2Error> {
    let rows = named(cx).await?;
    let changes = instances::ask(cx.cloud, &cx.rpc_context(), &rows, ask).await?;
    Ok(state_changes(cx, &changes))
}

/// TerminateInstances: shutting-down until the host reports it gone; an
/// instance no host holds yet is terminated at once.
pub async fn terminate_instances(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    ask(cx, Ask::Terminate).await
}

/// StopInstances: running → stopping; a stopped one stays stopped.
pub async fn stop_instances(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    ask(cx, Ask::Stop).await
}

/// StartInstances: stopped → pending; a running one stays running.
pub async fn start_instances(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    ask(cx, Ask::Start).await
}

/// RebootInstances: asks each running instance's guest to reboot.
pub async fn reboot_instances(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    ask(cx, Ask::Reboot).await?;
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
    let output = instances::console_output(cx.cloud, &cx.rpc_context(), i).await?;
    let mut x = cx.response();
    x.text("instanceId", &i.ec2_id)
        .text("timestamp", &crate::db::now())
        .text(
            "output",
            &base64::engine::general_purpose::STANDARD.encode(output),
        );
    Ok(cx.finish(x))
}
