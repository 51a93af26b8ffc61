//! One mode's run: the load and the kills, then waiting for the cloud to
//! settle and checking every invariant.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::describe::{Instance, describe_all};
use crate::evidence::evidence;
use crate::invariants::{self, Check};
use crate::load::Load;
use crate::report::Report;
use crate::site::{Site, View};
use crate::{guest, invariants::leaks};

/// How long after the last restart every instance must be settled and
/// nothing leaked.
const SETTLE: Duration = Duration::from_secs(90);

/// How long a running guest may take to answer SSH after that.
const SSH_WITHIN: Duration = Duration::from_secs(60);

/// A run's knobs.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Seeds every random choice of the run.
    pub seed: u64,
    /// How many SIGKILLs.
    pub kills: usize,
}

/// Runs the load under `settings.kills` kills on `site`, then checks it.
pub async fn run(site: &mut dyn Site, settings: Settings) -> Report {
    let view = site.view().clone();
    let client = view.client();
    let key = guest::prepare(&client, &view.work).await;
    let mut rng = fastrand::Rng::with_seed(settings.seed);
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(
        Load {
            client: client.clone(),
            ami: view.ami.clone(),
            key_name: guest::KEY_NAME.to_owned(),
            rng: rng.fork(),
            stop: stop.clone(),
        }
        .run(),
    );
    let started = Instant::now();
    let survived = kill_repeatedly(site, settings.kills, &mut rng, started).await;
    let last_restart = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let load = load.await.expect("the load task");
    let chaos_time = last_restart - started;
    println!(
        "  [{}] kills over after {:.0} s; waiting up to {} s to settle",
        site.mode(),
        chaos_time.as_secs_f64(),
        SETTLE.as_secs()
    );

    let settled = settle(&view, last_restart).await;
    let mut checks = invariants::states(&settled.instances);
    checks.extend(settled.leaks);
    let running: Vec<&Instance> = settled
        .instances
        .iter()
        .filter(|i| i.state == "running")
        .collect();
    checks.push(guest::ssh_all(&view.netns, &key, &running, SSH_WITHIN).await);
    checks.push(invariants::built_twice(&view));
    checks.push(invariants::lost(&settled.instances, &load));
    let failed = checks.iter().any(|c| !c.violations.is_empty());
    let evidence = failed.then(|| evidence(&checks, &load.history, &site.log_files(), &view));
    Report {
        mode: site.mode(),
        seed: settings.seed,
        survived,
        chaos_time,
        load,
        instances: settled.instances,
        states_after: settled.states_after,
        clean_after: settled.clean_after,
        checks,
        evidence,
    }
}

/// Kills a random victim `kills` times at random moments, restarting each
/// after a random moment down; kills survived per victim.
async fn kill_repeatedly(
    site: &mut dyn Site,
    kills: usize,
    rng: &mut fastrand::Rng,
    started: Instant,
) -> BTreeMap<&'static str, usize> {
    let victims = site.victims();
    let mut survived: BTreeMap<&'static str, usize> = victims.iter().map(|v| (*v, 0)).collect();
    for n in 1..=kills {
        tokio::time::sleep(Duration::from_millis(rng.u64(1500..=6000))).await;
        let victim = victims[rng.usize(0..victims.len())];
        tokio::task::block_in_place(|| site.kill(victim));
        println!(
            "  [{}] kill {n}/{kills}: {victim} at {:.1} s",
            site.mode(),
            started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(rng.u64(0..=1000))).await;
        tokio::task::block_in_place(|| site.restart(victim));
        *survived.entry(victim).or_default() += 1;
    }
    survived
}

/// The cloud as it was when it settled, or when time ran out.
struct Settled {
    instances: Vec<Instance>,
    leaks: Vec<Check>,
    /// When every instance was running or terminated with a reason.
    states_after: Option<Duration>,
    /// When, besides, nothing was leaked.
    clean_after: Option<Duration>,
}

/// Polls until every instance is settled and nothing is leaked, or until
/// [`SETTLE`] after `since`.
async fn settle(view: &View, since: Instant) -> Settled {
    let client = view.client();
    let deadline = since + SETTLE;
    let mut states_after = None;
    let mut last = Vec::new();
    loop {
        let described = tokio::time::timeout(Duration::from_secs(10), describe_all(&client)).await;
        let out_of_time = Instant::now() > deadline;
        if let Ok(Ok(instances)) = described {
            let settled = invariants::states(&instances)
                .iter()
                .all(|c| c.violations.is_empty());
            if settled && states_after.is_none() {
                states_after = Some(since.elapsed());
            }
            if settled || out_of_time {
                let leaks = leaks(view, &instances).await;
                let clean = leaks.iter().all(|c| c.violations.is_empty());
                if (settled && clean) || out_of_time {
                    return Settled {
                        instances,
                        leaks,
                        states_after,
                        clean_after: (settled && clean).then(|| since.elapsed()),
                    };
                }
            }
            last = instances;
        } else if out_of_time {
            let why = match described {
                Ok(Err(e)) => format!("DescribeInstances: {e}"),
                _ => "DescribeInstances did not answer within 10 s".to_owned(),
            };
            let mut leaks = leaks(view, &last).await;
            leaks.push(Check {
                name: "the API answers after the last restart",
                violations: vec![why],
            });
            return Settled {
                instances: last,
                leaks,
                states_after: None,
                clean_after: None,
            };
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
