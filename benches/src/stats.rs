//! Percentiles of a latency sample (nearest rank).

use std::time::Duration;

/// p50 and p99 of a sample, and its size.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
}

impl Percentiles {
    pub fn of(mut sample: Vec<Duration>) -> Percentiles {
        sample.sort_unstable();
        Percentiles {
            count: sample.len(),
            p50: nearest_rank(&sample, 50.0),
            p99: nearest_rank(&sample, 99.0),
        }
    }

    /// From milliseconds (negative values, from clock steps, count as 0).
    pub fn of_millis(sample: impl IntoIterator<Item = i64>) -> Percentiles {
        Self::of(
            sample
                .into_iter()
                .map(|ms| Duration::from_millis(ms.max(0) as u64))
                .collect(),
        )
    }
}

/// The smallest value with at least `p`% of the sample at or below it.
fn nearest_rank(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds with one decimal, for the tables.
pub fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sample: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(sample);
        assert_eq!(p.count, 100);
        assert_eq!(p.p50, Duration::from_millis(50));
        assert_eq!(p.p99, Duration::from_millis(99));
        let one = Percentiles::of(vec![Duration::from_millis(7)]);
        assert_eq!(
            (one.p50, one.p99),
            (Duration::from_millis(7), Duration::from_millis(7))
        );
        assert_eq!(Percentiles::of(Vec::new()).p99, Duration::ZERO);
    }
}
