//! The stream of work during the kills: RunInstances of 1–3 and
//! TerminateInstances of random instances not terminated yet (whatever
//! their state), a few of those at most, each
//! request retried on connection errors while the api is down (launches
//! with a ClientToken, so a retry never launches twice).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use stratus::ec2_client::{Client, Ec2ClientError, texts};
use tokio::time::timeout;

use crate::describe::describe_all;

/// At most this many instances not terminated at once: a 2-core TCG host
/// boots a handful of guests at a time.
const MAX_LIVE: usize = 5;

/// A request not answered by then is sent again (an api whose broker is
/// down may hold it): launches carry a ClientToken, so that is safe.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// What the load did.
#[derive(Debug, Default)]
pub struct LoadCounts {
    /// RunInstances answered with instances.
    pub launches: usize,
    /// Instances those answers listed.
    pub launched: usize,
    /// TerminateInstances answered.
    pub terminates: usize,
    /// Requests the api refused: action and error code, counted.
    pub refused: BTreeMap<String, usize>,
    /// Requests (DescribeInstances too) sent again after a connection
    /// error or a timeout: the api was down or could not answer.
    pub retries: usize,
    /// Instances the harness asked to terminate.
    pub terminated_by_us: BTreeSet<String>,
    /// Instances seen running at some point.
    pub seen_running: BTreeSet<String>,
    /// What the harness saw and did of each instance, in order: seconds
    /// since the load began, and the event (a state seen, a terminate asked).
    pub history: BTreeMap<String, Vec<(f64, String)>>,
}

impl LoadCounts {
    fn refuse(&mut self, action: &str, code: &str) {
        *self.refused.entry(format!("{action} {code}")).or_default() += 1;
    }

    fn note(&mut self, since: Instant, id: &str, event: String) {
        let events = self.history.entry(id.to_owned()).or_default();
        if events.last().is_none_or(|(_, last)| *last != event) {
            events.push((since.elapsed().as_secs_f64(), event));
        }
    }
}

/// Drives the stream until `stop` is set.
pub struct Load {
    /// The project's client.
    pub client: Client,
    /// The image to launch.
    pub ami: String,
    /// The key pair the guests get.
    pub key_name: String,
    /// The stream's own random numbers (seeded: the run replays).
    pub rng: fastrand::Rng,
    /// Set when the kills are over.
    pub stop: Arc<AtomicBool>,
}

impl Load {
    /// Runs until stopped; what it did.
    pub async fn run(mut self) -> LoadCounts {
        let mut counts = LoadCounts::default();
        let mut token = 0u64;
        let since = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let instances = match timeout(REQUEST_TIMEOUT, describe_all(&self.client)).await {
                Ok(Ok(instances)) => instances,
                _ => {
                    counts.retries += 1;
                    self.pause(200, 500).await;
                    continue;
                }
            };
            for i in &instances {
                counts.note(since, &i.id, i.state.clone());
                if i.state == "running" {
                    counts.seen_running.insert(i.id.clone());
                }
            }
            // Whatever is not terminated holds resources and counts
            // against the quota: a stuck instance is one more to terminate.
            let live: Vec<&str> = instances
                .iter()
                .filter(|i| i.state != "terminated")
                .map(|i| i.id.as_str())
                .collect();
            let launch = live.len() < MAX_LIVE && (live.is_empty() || self.rng.u8(0..10) < 6);
            if launch {
                token += 1;
                let count = self.rng.usize(1..=3.min(MAX_LIVE - live.len()));
                self.launch(count, &format!("chaos-{token}"), &mut counts)
                    .await;
            } else if !live.is_empty() {
                let victim = live[self.rng.usize(0..live.len())].to_owned();
                counts.note(since, &victim, "terminate asked".to_owned());
                self.terminate(&victim, &mut counts).await;
            }
            self.pause(300, 2000).await;
        }
        counts
    }

    async fn launch(&mut self, count: usize, token: &str, counts: &mut LoadCounts) {
        let (count, ami, key_name) = (count.to_string(), self.ami.clone(), self.key_name.clone());
        let params = [
            ("ImageId", ami.as_str()),
            ("InstanceType", "m1.tiny"),
            ("MinCount", count.as_str()),
            ("MaxCount", count.as_str()),
            ("KeyName", key_name.as_str()),
            ("ClientToken", token),
        ];
        match self.send("RunInstances", &params, counts).await {
            Some(Ok(answer)) => {
                counts.launches += 1;
                counts.launched += texts(&answer, "instanceId").len();
            }
            Some(Err(code)) => counts.refuse("RunInstances", &code),
            None => {}
        }
    }

    async fn terminate(&mut self, id: &str, counts: &mut LoadCounts) {
        counts.terminated_by_us.insert(id.to_owned());
        match self
            .send("TerminateInstances", &[("InstanceId.1", id)], counts)
            .await
        {
            Some(Ok(_)) => counts.terminates += 1,
            Some(Err(code)) => counts.refuse("TerminateInstances", &code),
            None => {}
        }
    }

    /// Sends `action`, again after each connection error until it is
    /// answered or the load stops (None); the answer or the API's error code.
    async fn send(
        &mut self,
        action: &str,
        params: &[(&str, &str)],
        counts: &mut LoadCounts,
    ) -> Option<Result<String, String>> {
        loop {
            match timeout(REQUEST_TIMEOUT, self.client.action(action, params)).await {
                Ok(Ok(answer)) => return Some(Ok(answer)),
                Ok(Err(Ec2ClientError::Api { code, .. })) => return Some(Err(code)),
                _ if self.stop.load(Ordering::Relaxed) => return None,
                _ => {
                    counts.retries += 1;
                    self.pause(200, 500).await;
                }
            }
        }
    }

    async fn pause(&mut self, min_ms: u64, max_ms: u64) {
        tokio::time::sleep(Duration::from_millis(self.rng.u64(min_ms..=max_ms))).await;
    }
}
