//! Funnels, folded alongside a report's tally: the events that match any step are kept
//! (a time, a bitmask of the steps they match, who did them), then each session's or
//! visitor's events are walked in time order, advancing a step whenever the next one is met.
//! Taking the earliest match each time is what reaches furthest.

use super::tally::NONE;
use crate::domain::{Funnel, StepReport, Within};

/// One event matching a step.
#[derive(Debug, Clone, Copy)]
struct Hit {
    /// The session or the visitor the steps must follow each other in.
    unit: u32,
    at: i64,
    visitor: u32,
    steps: u8,
}

pub(crate) struct FunnelFold {
    funnel: Funnel,
    hits: Vec<Hit>,
}

impl FunnelFold {
    pub(crate) fn new(funnel: Funnel) -> Self {
        Self {
            funnel,
            hits: Vec::new(),
        }
    }

    pub(crate) fn funnel(&self) -> &Funnel {
        &self.funnel
    }

    /// Keeps an event at `at` (unix microseconds) of `session` and `visitor` matching the
    /// steps of the bitmask `steps`.
    pub(crate) fn add(&mut self, session: u32, visitor: u32, at: i64, steps: u8) {
        let unit = match self.funnel.within {
            Within::Session => session,
            Within::Visitor => visitor,
        };
        if steps != 0 && unit != NONE && visitor != NONE {
            self.hits.push(Hit {
                unit,
                at,
                visitor,
                steps,
            });
        }
    }

    /// Each step's distinct visitors and rates.
    pub(crate) fn finish(mut self) -> (Vec<StepReport>, f64) {
        let count = self.funnel.steps.len();
        self.hits.sort_unstable_by_key(|hit| (hit.unit, hit.at));
        // Per step, the visitors who reached it in some session (or in the range).
        let mut reached: Vec<rustc_hash::FxHashSet<u32>> = vec![Default::default(); count];
        let mut progress = 0;
        let mut unit = NONE;
        for hit in &self.hits {
            if hit.unit != unit {
                unit = hit.unit;
                progress = 0;
            }
            if progress < count && hit.steps & (1 << progress) != 0 {
                reached[progress].insert(hit.visitor);
                progress += 1;
            }
        }
        let first = reached.first().map_or(0, |visitors| visitors.len() as u64);
        let rate = |visitors: u64| {
            if first == 0 {
                0.0
            } else {
                visitors as f64 / first as f64
            }
        };
        let mut previous = first;
        let steps: Vec<StepReport> = self
            .funnel
            .steps
            .into_iter()
            .zip(reached)
            .enumerate()
            .map(|(index, (step, visitors))| {
                let visitors = visitors.len() as u64;
                let report = StepReport {
                    index: index + 1,
                    event_type: step.event_type,
                    path: step.path,
                    visitors,
                    conversion_rate: rate(visitors),
                    drop_off: previous.saturating_sub(visitors),
                };
                previous = visitors;
                report
            })
            .collect();
        let last = steps.last().map_or(0, |step| step.visitors);
        (steps, rate(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FunnelStep;

    fn step(event_type: &str) -> FunnelStep {
        FunnelStep {
            event_type: Some(event_type.into()),
            path: None,
        }
    }

    #[test]
    fn steps_count_in_time_order_within_a_session() {
        let funnel = Funnel {
            steps: vec![step("a"), step("b"), step("c")],
            within: Within::Session,
        };
        let mut fold = FunnelFold::new(funnel);
        // Session 0 (visitor 0): a, b, c. Session 1 (visitor 1): b before a: only a counts.
        // Session 2 (visitor 2): a, c, b: a and b. Arrival order is not time order.
        for (session, visitor, at, steps) in [
            (0, 0, 30, 0b100),
            (0, 0, 10, 0b001),
            (0, 0, 20, 0b010),
            (1, 1, 10, 0b010),
            (1, 1, 20, 0b001),
            (2, 2, 10, 0b001),
            (2, 2, 20, 0b100),
            (2, 2, 30, 0b010),
        ] {
            fold.add(session, visitor, at, steps);
        }
        let (steps, rate) = fold.finish();
        let counts: Vec<(u64, u64)> = steps.iter().map(|s| (s.visitors, s.drop_off)).collect();
        assert_eq!(counts, vec![(3, 0), (2, 1), (1, 1)]);
        assert_eq!(rate, 1.0 / 3.0);
    }
}
