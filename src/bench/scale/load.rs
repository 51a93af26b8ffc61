//! The load: RunInstances through the signed EC2 client with a bounded
//! number in flight, while a poller asks DescribeInstances about every
//! instance not yet running, until each is running, in error, or late.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use quick_xml::events::Event;
use stratus_rpc::wire::conductor::InstanceState;

use super::ScaleError;
use crate::bench::error::Cause;
use crate::ec2_client::{Client, texts};

/// Instances asked about in one DescribeInstances (by id), so a poll's cost
/// follows what is still pending rather than everything launched.
const IDS_PER_DESCRIBE: usize = 100;

/// What to send.
#[derive(Debug, Clone)]
pub struct Load {
    /// The image to launch.
    pub image_id: String,
    /// The instance type.
    pub instance_type: String,
    /// Instances in all.
    pub instances: usize,
    /// Instances per RunInstances request (MinCount = MaxCount).
    pub per_request: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Pause between polls.
    pub poll_interval: Duration,
    /// Longest an instance may stay pending after its request was sent.
    pub timeout: Duration,
}

/// What happened.
#[derive(Debug, Default)]
pub struct Outcome {
    /// From the first request sent to the last instance seen running.
    pub elapsed: Duration,
    /// Per running instance: from its request being sent to the poll that
    /// first saw it running.
    pub to_running: Vec<Duration>,
    /// RunInstances round trips.
    pub requests: Vec<Duration>,
    /// Requests the API refused or that failed, with why.
    pub failed_requests: Vec<String>,
    /// Instances that ended in error: (id, reason).
    pub errors: Vec<(String, String)>,
}

/// What the sender and the poller share.
#[derive(Default)]
struct Shared {
    /// Instances launched and not yet seen running or failed, with when
    /// their request was sent.
    outstanding: Mutex<HashMap<String, Instant>>,
    /// Every request has been answered.
    all_sent: AtomicBool,
}

impl Shared {
    fn outstanding(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.outstanding
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sends the load and follows it to the end.
pub async fn run(client: &Client, load: &Load) -> Result<Outcome, ScaleError> {
    let shared = Arc::new(Shared::default());
    let started = Instant::now();
    let ((requests, failed_requests), polled) = tokio::join!(
        send(client, load, &shared),
        poll(client, load, &shared, started)
    );
    let (to_running, errors, elapsed) = polled?;
    Ok(Outcome {
        elapsed,
        to_running,
        requests,
        failed_requests,
        errors,
    })
}

/// The form of one RunInstances of `count` instances.
fn run_form(load: &Load, count: usize) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "RunInstances")
        .append_pair("Version", "2016-11-15")
        .append_pair("ImageId", &load.image_id)
        .append_pair("InstanceType", &load.instance_type)
        .append_pair("MinCount", &count.to_string())
        .append_pair("MaxCount", &count.to_string())
        .finish()
}

/// Sends every RunInstances; the round trips and the failures.
async fn send(client: &Client, load: &Load, shared: &Shared) -> (Vec<Duration>, Vec<String>) {
    let per = load.per_request.max(1);
    let counts: Vec<usize> = (0..load.instances.div_ceil(per))
        .map(|i| per.min(load.instances - i * per))
        .collect();
    let results: Vec<Result<Duration, String>> = futures::stream::iter(counts)
        .map(|count| {
            let form = run_form(load, count);
            async move {
                let sent = Instant::now();
                let body = tokio::time::timeout(load.timeout, client.call(&form))
                    .await
                    .map_err(|_| format!("no answer within {:?}", load.timeout))?
                    .map_err(|e| stratus_rpc::error::error_chain(&e))?;
                let took = sent.elapsed();
                let ids = texts(&body, "instanceId");
                if ids.len() != count {
                    return Err(format!("asked for {count} instances, got {}", ids.len()));
                }
                let mut outstanding = shared.outstanding();
                for id in ids {
                    outstanding.insert(id, sent);
                }
                Ok(took)
            }
        })
        .buffer_unordered(load.concurrency.max(1))
        .collect()
        .await;
    shared.all_sent.store(true, Ordering::SeqCst);
    let mut rounds = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(took) => rounds.push(took),
            Err(e) => failed.push(e),
        }
    }
    (rounds, failed)
}

/// Polls until everything sent is running or failed; per-instance times to
/// running, the failures, and the time from `started` to the last running.
async fn poll(
    client: &Client,
    load: &Load,
    shared: &Shared,
    started: Instant,
) -> Result<(Vec<Duration>, Vec<(String, String)>, Duration), ScaleError> {
    let mut to_running = Vec::with_capacity(load.instances);
    let mut errors = Vec::new();
    let mut last_running = started;
    loop {
        tokio::time::sleep(load.poll_interval).await;
        // Read the flag first: ids added before it was set are in the list.
        let all_sent = shared.all_sent.load(Ordering::SeqCst);
        let ids: Vec<String> = shared.outstanding().keys().cloned().collect();
        if ids.is_empty() && all_sent {
            return Ok((to_running, errors, last_running - started));
        }
        for chunk in ids.chunks(IDS_PER_DESCRIBE) {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", "DescribeInstances")
                .append_pair("Version", "2016-11-15");
            for (i, id) in chunk.iter().enumerate() {
                form.append_pair(&format!("InstanceId.{}", i + 1), id);
            }
            let failed = |source: Cause| ScaleError::Api {
                action: "DescribeInstances",
                source,
            };
            let body = tokio::time::timeout(load.timeout, client.call(&form.finish()))
                .await
                .map_err(|_| failed(format!("no answer within {:?}", load.timeout).into()))?
                .map_err(|e| failed(e.into()))?;
            let seen = Instant::now();
            let mut outstanding = shared.outstanding();
            for item in instance_states(&body) {
                let Some(&sent) = outstanding.get(&item.id) else {
                    continue;
                };
                match item.state.parse::<InstanceState>() {
                    Ok(InstanceState::Running) => {
                        outstanding.remove(&item.id);
                        to_running.push(seen - sent);
                        last_running = seen;
                    }
                    Ok(InstanceState::Pending) if seen - sent > load.timeout => {
                        return Err(ScaleError::Stuck {
                            pending: outstanding.len(),
                            waited: load.timeout,
                            examples: outstanding.keys().take(5).cloned().collect(),
                            reason: item.reason,
                        });
                    }
                    Ok(InstanceState::Pending) => {}
                    _ => {
                        outstanding.remove(&item.id);
                        let reason = if item.reason.is_empty() {
                            item.state
                        } else {
                            item.reason
                        };
                        errors.push((item.id, reason));
                    }
                }
            }
        }
    }
}

/// One instance as DescribeInstances shows it.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    id: String,
    state: String,
    reason: String,
}

/// The id, state name and state reason of every instance in a
/// DescribeInstances response.
fn instance_states(xml: &str) -> Vec<Seen> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut found: Vec<Seen> = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let name = e.local_name().as_ref().to_owned();
                if name == "item" && path.last().is_some_and(|p| p == "instancesSet") {
                    found.push(Seen::default());
                }
                path.push(name);
            }
            Ok(Event::End(_)) => {
                path.pop();
            }
            Ok(Event::Text(t)) => {
                let text = t.into_inner();
                let under = |parent: &str, leaf: &str| {
                    path.len() >= 2
                        && path[path.len() - 1] == leaf
                        && path[path.len() - 2] == parent
                };
                let Some(current) = found.last_mut() else {
                    continue;
                };
                if under("item", "instanceId") {
                    current.id.push_str(&text);
                } else if under("instanceState", "name") {
                    current.state.push_str(&text);
                } else if under("stateReason", "message") {
                    current.reason.push_str(&text);
                }
            }
            Ok(Event::Eof) | Err(_) => return found,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_read_per_instance() {
        let xml = "<DescribeInstancesResponse><reservationSet><item><reservationId>r-1</reservationId>\
            <instancesSet><item><instanceId>i-1</instanceId><instanceState><code>16</code><name>running</name></instanceState>\
            <placement><groupName></groupName></placement></item>\
            <item><instanceId>i-2</instanceId><instanceState><code>48</code><name>terminated</name></instanceState>\
            <stateReason><code>Server.InternalError</code><message>no host</message></stateReason></item>\
            </instancesSet></item></reservationSet></DescribeInstancesResponse>";
        let seen = instance_states(xml);
        assert_eq!(
            seen,
            [
                Seen {
                    id: "i-1".into(),
                    state: "running".into(),
                    reason: String::new()
                },
                Seen {
                    id: "i-2".into(),
                    state: "terminated".into(),
                    reason: "no host".into()
                },
            ]
        );
    }
}
