//! Retention cohorts, folded alongside a report's tally: each visitor's first period in range
//! is its cohort, and each later period it is seen in counts it once.

use chrono::{DateTime, Utc};

use super::tally::NONE;
use crate::domain::Cohort;

/// The cohorts so far. Periods arrive in order (segments come oldest hour first), so a
/// visitor's first period is the first one it is seen in.
pub(crate) struct RetentionFold {
    /// Per visitor: its cohort and the last period it was counted in.
    cohort: Vec<u32>,
    last: Vec<u32>,
    /// Per cohort: visitors seen in each period from its own.
    retained: Vec<Vec<u64>>,
}

impl RetentionFold {
    pub(crate) fn new(periods: usize) -> Self {
        Self {
            cohort: Vec::new(),
            last: Vec::new(),
            retained: (0..periods).map(|first| vec![0; periods - first]).collect(),
        }
    }

    /// Counts `visitor` in `period`.
    pub(crate) fn add(&mut self, visitor: u32, period: usize) {
        let index = visitor as usize;
        if index >= self.cohort.len() {
            let len = (index + 1).max(2 * self.cohort.len()).max(1_024);
            self.cohort.resize(len, NONE);
            self.last.resize(len, NONE);
        }
        if self.cohort[index] == NONE {
            self.cohort[index] = period as u32;
        }
        if self.last[index] != period as u32 {
            self.last[index] = period as u32;
            let cohort = self.cohort[index] as usize;
            if let Some(count) = self
                .retained
                .get_mut(cohort)
                .and_then(|row| row.get_mut(period - cohort))
            {
                *count += 1;
            }
        }
    }

    /// The cohorts, one per period starting at `starts`.
    pub(crate) fn finish(self, starts: &[DateTime<Utc>]) -> Vec<Cohort> {
        starts
            .iter()
            .zip(self.retained)
            .map(|(start, retained)| Cohort {
                start: *start,
                visitors: retained.first().copied().unwrap_or(0),
                retained,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visitor_counts_once_per_period_in_its_first_periods_cohort() {
        let starts: Vec<DateTime<Utc>> = ["2026-11-02", "2026-11-09", "2026-11-16"]
            .iter()
            .map(|day| format!("{day}T00:00:00Z").parse().expect("time"))
            .collect();
        let mut fold = RetentionFold::new(3);
        // Visitor 0: weeks 0, 0 again, and 2. Visitor 1: week 1 only. Visitor 2: weeks 1, 2.
        for (visitor, period) in [(0, 0), (0, 0), (1, 1), (2, 1), (0, 2), (2, 2)] {
            fold.add(visitor, period);
        }
        let cohorts = fold.finish(&starts);
        let rows: Vec<(u64, Vec<u64>)> = cohorts
            .into_iter()
            .map(|cohort| (cohort.visitors, cohort.retained))
            .collect();
        assert_eq!(
            rows,
            vec![(1, vec![1, 0, 1]), (2, vec![2, 1]), (0, vec![0])]
        );
    }
}
