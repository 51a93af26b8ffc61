//! What a mode's run prints.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::describe::Instance;
use crate::invariants::Check;
use crate::load::LoadCounts;

/// One mode's outcome.
pub struct Report {
    /// `embedded` or `distributed`.
    pub mode: &'static str,
    /// The seed of its random choices.
    pub seed: u64,
    /// Kills survived, per victim.
    pub survived: BTreeMap<&'static str, usize>,
    /// From the first request to the last restart.
    pub chaos_time: Duration,
    /// What the load did.
    pub load: LoadCounts,
    /// Every instance at the end.
    pub instances: Vec<Instance>,
    /// After the last restart, when every instance was settled.
    pub states_after: Option<Duration>,
    /// After the last restart, when besides nothing was leaked.
    pub clean_after: Option<Duration>,
    /// Every invariant checked.
    pub checks: Vec<Check>,
    /// What was seen of each instance a violation names, when one did.
    pub evidence: Option<String>,
}

impl Report {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.violations.is_empty())
    }

    /// Final states: running, terminated on request, in error, other states.
    fn states(&self) -> BTreeMap<String, usize> {
        let mut tally = BTreeMap::new();
        for i in &self.instances {
            let key = if i.in_error() {
                "terminated (error)".to_owned()
            } else if i.state == "terminated" {
                "terminated (on request)".to_owned()
            } else {
                i.state.clone()
            };
            *tally.entry(key).or_default() += 1;
        }
        tally
    }
}

fn seconds(d: Option<Duration>) -> String {
    d.map_or("never (limit 90 s)".to_owned(), |d| {
        format!("{:.1} s", d.as_secs_f64())
    })
}

fn tally<K: fmt::Display, V: fmt::Display>(map: &BTreeMap<K, V>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        writeln!(
            f,
            "== chaos {}: {verdict} (seed {}) ==",
            self.mode, self.seed
        )?;
        let kills: usize = self.survived.values().sum();
        writeln!(
            f,
            "kills survived: {kills} in {:.0} s ({})",
            self.chaos_time.as_secs_f64(),
            tally(&self.survived)
        )?;
        let load = &self.load;
        writeln!(
            f,
            "load: {} launches ({} instances), {} terminates, {} refused, {} retries while unreachable",
            load.launches,
            load.launched,
            load.terminates,
            load.refused.values().sum::<usize>(),
            load.retries
        )?;
        if !load.refused.is_empty() {
            writeln!(f, "  refused: {}", tally(&load.refused))?;
        }
        writeln!(
            f,
            "instances: {} ({})",
            self.instances.len(),
            tally(&self.states())
        )?;
        for i in self.instances.iter().filter(|i| i.in_error()) {
            let (code, message) = i.reason.clone().unwrap_or_default();
            writeln!(f, "  in error: {} {code}: {message}", i.id)?;
        }
        writeln!(
            f,
            "settled after the last restart: states {}, nothing leaked {}",
            seconds(self.states_after),
            seconds(self.clean_after)
        )?;
        writeln!(f, "invariants (violations):")?;
        for check in &self.checks {
            writeln!(f, "  {:>3}  {}", check.violations.len(), check.name)?;
            for v in &check.violations {
                writeln!(f, "         - {v}")?;
            }
        }
        if let Some(evidence) = &self.evidence {
            writeln!(
                f,
                "the instances named above, as seen and logged:\n{evidence}"
            )?;
        }
        Ok(())
    }
}
