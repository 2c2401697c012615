//! What a report says of visits (sessions): bounce rate, views per visit, visit duration,
//! entry and exit pages. Each session's events in range and filters are folded as they come,
//! in any order; the figures are worked out once every segment is in.

use rustc_hash::{FxHashMap, FxHashSet};

use super::tally::NONE;
use crate::domain::SessionPage;

/// One session's events so far.
#[derive(Debug, Clone, Copy)]
struct Visit {
    events: u32,
    pageviews: u32,
    /// Unix microseconds of its first and last event.
    first: i64,
    last: i64,
    /// The time and report-wide path id of its first and last page view.
    entry: (i64, u32),
    exit: (i64, u32),
    /// The visitor of its first event folded.
    visitor: u32,
}

const UNSEEN: Visit = Visit {
    events: 0,
    pageviews: 0,
    first: i64::MAX,
    last: i64::MIN,
    entry: (i64::MAX, NONE),
    exit: (i64::MIN, NONE),
    visitor: NONE,
};

/// The visit figures of the totals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct VisitTotals {
    pub bounce_rate: f64,
    pub visit_duration_seconds: f64,
}

/// The sessions of a report, by report-wide session index.
#[derive(Default)]
pub(crate) struct Visits(Vec<Visit>);

impl Visits {
    /// Folds one event of `session` at `at` (unix microseconds); `page` is the report-wide
    /// path id of a page view (`NONE` without a path), `None` for other events.
    pub(crate) fn add(&mut self, session: u32, at: i64, page: Option<u32>, visitor: u32) {
        let index = session as usize;
        if index >= self.0.len() {
            let len = (index + 1).max(2 * self.0.len()).max(1_024);
            self.0.resize(len, UNSEEN);
        }
        let visit = &mut self.0[index];
        if visit.events == 0 {
            visit.visitor = visitor;
        }
        visit.events += 1;
        visit.first = visit.first.min(at);
        visit.last = visit.last.max(at);
        if let Some(path) = page {
            visit.pageviews += 1;
            if at < visit.entry.0 {
                visit.entry = (at, path);
            }
            if at >= visit.exit.0 {
                visit.exit = (at, path);
            }
        }
    }

    /// The totals' visit figures, and the entry and exit pages (`limit` rows each), naming
    /// paths by `paths` (report-wide path id → path).
    pub(crate) fn finish(
        self,
        paths: &[String],
        limit: usize,
    ) -> (VisitTotals, Vec<SessionPage>, Vec<SessionPage>) {
        let visits: Vec<&Visit> = self.0.iter().filter(|visit| visit.events > 0).collect();
        let sessions = visits.len();
        let share = |part: f64| {
            if sessions == 0 {
                0.0
            } else {
                part / sessions as f64
            }
        };
        let bounces = visits
            .iter()
            .filter(|visit| visit.events == 1 && visit.pageviews == 1)
            .count();
        let micros: i64 = visits.iter().map(|visit| visit.last - visit.first).sum();
        let totals = VisitTotals {
            bounce_rate: share(bounces as f64),
            visit_duration_seconds: share(micros as f64 / 1_000_000.0),
        };
        let entries = pages(
            visits.iter().map(|visit| (visit.entry.1, visit.visitor)),
            paths,
            limit,
        );
        let exits = pages(
            visits.iter().map(|visit| (visit.exit.1, visit.visitor)),
            paths,
            limit,
        );
        (totals, entries, exits)
    }
}

/// Sessions and distinct visitors per path, most sessions first (ties: more visitors, then
/// the path); sessions without a page view with a path are left out.
fn pages(
    visits: impl Iterator<Item = (u32, u32)>,
    paths: &[String],
    limit: usize,
) -> Vec<SessionPage> {
    let mut by_path: FxHashMap<u32, (u64, FxHashSet<u32>)> = FxHashMap::default();
    for (path, visitor) in visits {
        if path == NONE {
            continue;
        }
        let (sessions, visitors) = by_path.entry(path).or_default();
        *sessions += 1;
        if visitor != NONE {
            visitors.insert(visitor);
        }
    }
    let mut rows: Vec<SessionPage> = by_path
        .into_iter()
        .filter_map(|(path, (sessions, visitors))| {
            Some(SessionPage {
                value: paths.get(path as usize)?.clone(),
                sessions,
                visitors: visitors.len() as u64,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        b.sessions
            .cmp(&a.sessions)
            .then(b.visitors.cmp(&a.visitors))
            .then_with(|| a.value.cmp(&b.value))
    });
    rows.truncate(limit);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounces_durations_and_entry_and_exit_pages() {
        let paths = ["/a".to_owned(), "/b".to_owned()];
        let mut visits = Visits::default();
        // Session 0: /b at 30 s, then /a at 10 s (arriving out of order), then a click.
        visits.add(0, 30_000_000, Some(1), 7);
        visits.add(0, 10_000_000, Some(0), 7);
        visits.add(0, 40_000_000, None, 7);
        // Session 2: a bounce on /a. Session 3: one click, no page view: not a bounce.
        visits.add(2, 5_000_000, Some(0), 8);
        visits.add(3, 5_000_000, None, 9);
        let (totals, entries, exits) = visits.finish(&paths, 10);
        assert_eq!(totals.bounce_rate, 1.0 / 3.0);
        assert_eq!(totals.visit_duration_seconds, 30.0 / 3.0);
        let row = |value: &str, sessions, visitors| SessionPage {
            value: value.to_owned(),
            sessions,
            visitors,
        };
        assert_eq!(entries, vec![row("/a", 2, 2)]);
        assert_eq!(exits, vec![row("/a", 1, 1), row("/b", 1, 1)]);
    }
}
