//! The statistics every bench prints: quantiles, medians, rates, the
//! spread of a figure over rounds, and how each is formatted.

use std::time::Duration;

/// The value at quantile `q` (0 to 1) of `sorted`, by nearest rank; the
/// default when there is none.
pub fn quantile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    let i = ((sorted.len().saturating_sub(1)) as f64 * q).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// The median of `samples`; the default when there is none.
pub fn median<T: Copy + Default + Ord>(mut samples: Vec<T>) -> T {
    samples.sort_unstable();
    quantile(&samples, 0.5)
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Operations per second: `n` over `took`.
pub fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64().max(1e-9)
}

/// `a` over `b`, as a plain ratio.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

/// Round by round ratios of `numerators` over `denominators`.
pub fn ratios(numerators: &[Duration], denominators: &[Duration]) -> Vec<f64> {
    numerators
        .iter()
        .zip(denominators)
        .map(|(a, b)| ratio(*a, *b))
        .collect()
}

/// Latencies of one measurement.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Completed operations per second over the whole measurement.
    pub rate: f64,
}

impl Figures {
    /// Figures of `samples` taken over `elapsed`.
    pub fn from(mut samples: Vec<Duration>, elapsed: Duration) -> Self {
        samples.sort_unstable();
        Self {
            p50: quantile(&samples, 0.50),
            p99: quantile(&samples, 0.99),
            rate: samples.len() as f64 / elapsed.as_secs_f64(),
        }
    }

    /// One aligned line: `what`, p50, p99 and rate.
    pub fn line(&self, what: &str) -> String {
        format!(
            "{what:<34} p50 {:>8.3} ms  p99 {:>8.3} ms  {:>9.0} /s",
            ms(self.p50),
            ms(self.p99),
            self.rate
        )
    }
}

/// The median of a figure measured over rounds, with its smallest and
/// largest, so a reader sees how much the rounds agreed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The smallest.
    pub min: f64,
    /// The median.
    pub median: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; none when there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Self {
            min: *sorted.first()?,
            median: *sorted.get(sorted.len() / 2)?,
            max: *sorted.last()?,
        })
    }

    /// `median (min-max)` of durations, in milliseconds.
    pub fn ms(times: &[Duration]) -> String {
        let values: Vec<f64> = times.iter().map(|t| ms(*t)).collect();
        Self::of(&values).map_or_else(
            || "-".to_owned(),
            |s| format!("{:>8.1} ms ({:.1}-{:.1})", s.median, s.min, s.max),
        )
    }

    /// `median (min-max)` of ratios.
    pub fn ratio(values: &[f64]) -> String {
        Self::of(values).map_or_else(
            || "-".to_owned(),
            |s| format!("{:.2}x ({:.2}-{:.2})", s.median, s.min, s.max),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_nothing_are_zero() {
        assert_eq!(quantile::<Duration>(&[], 0.99), Duration::ZERO);
        assert_eq!(median(Vec::<usize>::new()), 0);
    }

    #[test]
    fn the_median_is_the_middle_rank() {
        assert_eq!(median(vec![5, 1, 3]), 3);
        assert_eq!(median(vec![4, 1, 3, 2]), 3);
    }

    #[test]
    fn a_spread_names_median_min_and_max() {
        let ms = |n| Duration::from_millis(n);
        assert_eq!(Spread::ms(&[ms(3), ms(1), ms(2)]), "     2.0 ms (1.0-3.0)");
        assert_eq!(
            Spread::ratio(&ratios(&[ms(2), ms(6)], &[ms(1), ms(2)])),
            "3.00x (2.00-3.00)"
        );
        assert_eq!(Spread::ratio(&[]), "-");
    }
}
