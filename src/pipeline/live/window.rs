//! The visitors of the last five minutes, kept so that every operation costs the same however
//! many there are.
//!
//! Visitors sit in a map ordered by when each was last seen (an LRU list): seeing a visitor
//! again moves it to the back, so the front is always the one seen longest ago and expiry
//! only ever looks at the front. Each visitor's page is counted in [`PageCounts`], updated as
//! visitors move and leave, so a snapshot reads the busiest pages instead of counting them.
//!
//! Publishing expires at most [`EXPIRE_PER_SEE`] visitors, so that a quiet spell followed by
//! traffic does not make one event pay for the whole window; a snapshot expires all that are
//! due, so its figures are exact (the work it does was put in by the events that added those
//! visitors, one each).

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use lru::LruCache;

use super::ActivePage;

/// Most expired visitors one event removes: more than the one it can add, so the window
/// never falls behind for long.
const EXPIRE_PER_SEE: usize = 2;

/// What is known of a visitor in the window.
struct Seen {
    at: DateTime<Utc>,
    page: Option<Arc<str>>,
}

/// The outcome of [`Visitors::see`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tracked {
    Yes,
    /// The window holds its maximum of visitors, none of whom has left yet.
    WindowFull,
}

/// The visitors seen within `window`, at most `max` of them.
pub(super) struct Visitors {
    seen: LruCache<Box<str>, Seen>,
    pages: PageCounts,
    window: Duration,
    max: usize,
    /// The latest time seen: times never go back, so the list's order is the time order.
    latest: Option<DateTime<Utc>>,
    /// Entries touched so far, for the tests that pin the cost per event.
    work: u64,
}

impl Visitors {
    pub(super) fn new(window: Duration, max: usize) -> Self {
        Self {
            seen: LruCache::unbounded(),
            pages: PageCounts::default(),
            window,
            max,
            latest: None,
            work: 0,
        }
    }

    /// Records that `visitor` was on `page` at `now`.
    pub(super) fn see(&mut self, visitor: &str, page: Option<&str>, now: DateTime<Utc>) -> Tracked {
        let now = self.advance(now);
        self.expire(now, EXPIRE_PER_SEE);
        self.work += 1;
        if let Some(seen) = self.seen.get_mut(visitor) {
            seen.at = now;
            if seen.page.as_deref() != page {
                let page = page.map(|page| self.pages.enter(page));
                if let Some(left) = std::mem::replace(&mut seen.page, page) {
                    self.pages.leave(&left);
                }
            }
            return Tracked::Yes;
        }
        if self.seen.len() >= self.max {
            return Tracked::WindowFull;
        }
        let page = page.map(|page| self.pages.enter(page));
        self.seen.put(visitor.into(), Seen { at: now, page });
        Tracked::Yes
    }

    /// Removes every visitor not seen within the window before `now`.
    pub(super) fn expire_all(&mut self, now: DateTime<Utc>) {
        let now = self.advance(now);
        self.expire(now, usize::MAX);
    }

    /// Visitors in the window (exact after [`Visitors::expire_all`]).
    pub(super) fn len(&self) -> usize {
        self.seen.len()
    }

    /// The `limit` pages with the most visitors, most first, then by path.
    pub(super) fn busiest_pages(&self, limit: usize) -> Vec<ActivePage> {
        self.pages.busiest(limit)
    }

    /// Entries touched since the window was made.
    #[cfg(test)]
    pub(super) fn work(&self) -> u64 {
        self.work
    }

    fn advance(&mut self, now: DateTime<Utc>) -> DateTime<Utc> {
        let now = self.latest.map_or(now, |latest| latest.max(now));
        self.latest = Some(now);
        now
    }

    fn expire(&mut self, now: DateTime<Utc>, most: usize) {
        let cutoff = now - self.window;
        for _ in 0..most {
            match self.seen.peek_lru() {
                Some((_, seen)) if seen.at <= cutoff => {}
                _ => return,
            }
            self.work += 1;
            if let Some((_, seen)) = self.seen.pop_lru()
                && let Some(page) = seen.page
            {
                self.pages.leave(&page);
            }
        }
    }
}

/// How many visitors are on each page, ranked as the snapshot lists them.
#[derive(Default)]
struct PageCounts {
    visitors: HashMap<Arc<str>, u64>,
    /// `(visitors, path)` of every page with a visitor: most visitors first, then by path.
    ranked: BTreeSet<(Reverse<u64>, Arc<str>)>,
}

impl PageCounts {
    /// Counts one more visitor on `page`; returns the page's shared name.
    fn enter(&mut self, page: &str) -> Arc<str> {
        let (page, count) = match self.visitors.get_key_value(page) {
            Some((page, count)) => (page.clone(), *count),
            None => (Arc::<str>::from(page), 0),
        };
        self.rank(&page, count, count + 1);
        page
    }

    /// Counts one visitor fewer on `page`.
    fn leave(&mut self, page: &Arc<str>) {
        if let Some(&count) = self.visitors.get(page) {
            self.rank(page, count, count - 1);
        }
    }

    fn rank(&mut self, page: &Arc<str>, from: u64, to: u64) {
        if from > 0 {
            self.ranked.remove(&(Reverse(from), page.clone()));
        }
        if to > 0 {
            self.ranked.insert((Reverse(to), page.clone()));
            self.visitors.insert(page.clone(), to);
        } else {
            self.visitors.remove(page);
        }
    }

    fn busiest(&self, limit: usize) -> Vec<ActivePage> {
        self.ranked
            .iter()
            .take(limit)
            .map(|(Reverse(visitors), path)| ActivePage {
                path: path.to_string(),
                visitors: *visitors,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::at;
    use super::*;

    fn pages(visitors: &Visitors) -> Vec<(String, u64)> {
        visitors
            .busiest_pages(usize::MAX)
            .into_iter()
            .map(|page| (page.path, page.visitors))
            .collect()
    }

    #[test]
    fn pages_follow_visitors_as_they_move_and_leave() {
        let mut visitors = Visitors::new(Duration::seconds(300), 10);
        visitors.see("a", Some("/"), at(0));
        visitors.see("b", Some("/"), at(1));
        visitors.see("c", Some("/docs"), at(2));
        visitors.see("a", Some("/docs"), at(3));
        visitors.see("d", None, at(4));
        assert_eq!(pages(&visitors), [("/docs".into(), 2), ("/".into(), 1)]);
        // `b` and `c` leave; `a`, seen again later, stays.
        visitors.see("a", Some("/docs"), at(200));
        visitors.expire_all(at(302));
        assert_eq!(visitors.len(), 2);
        assert_eq!(pages(&visitors), [("/docs".into(), 1)]);
        visitors.expire_all(at(600));
        assert_eq!((visitors.len(), pages(&visitors)), (0, vec![]));
        assert!(visitors.pages.visitors.is_empty(), "no empty page is kept");
    }

    #[test]
    fn a_full_window_takes_a_visitor_once_another_has_left() {
        let mut visitors = Visitors::new(Duration::seconds(300), 2);
        assert_eq!(visitors.see("a", None, at(0)), Tracked::Yes);
        assert_eq!(visitors.see("b", None, at(10)), Tracked::Yes);
        assert_eq!(visitors.see("c", None, at(20)), Tracked::WindowFull);
        assert_eq!(visitors.see("a", None, at(30)), Tracked::Yes, "a known one");
        // `b` left at 310; `a` was seen again at 30, so it has not.
        assert_eq!(visitors.see("c", None, at(311)), Tracked::Yes);
        assert_eq!(visitors.see("d", None, at(312)), Tracked::WindowFull);
    }

    #[test]
    fn a_clock_that_steps_back_does_not_reorder_the_window() {
        let mut visitors = Visitors::new(Duration::seconds(300), 10);
        visitors.see("a", None, at(100));
        visitors.see("b", None, at(50));
        visitors.expire_all(at(401));
        assert_eq!(visitors.len(), 0, "b counts as seen at 100, not 50");
    }

    /// The cliff this structure replaced: once the window was full, every new visitor
    /// scanned all of it. Here the work per event is counted while 250 000 distinct visitors
    /// arrive at 1 000 a second, filling the window, overflowing it and expiring through it,
    /// then after a quiet spell: it stays the same from the first ten thousand to the last.
    #[test]
    fn the_work_per_event_stays_flat_past_the_window_and_its_cap() {
        const MAX: usize = 100_000;
        let mut visitors = Visitors::new(Duration::seconds(300), MAX);
        let mut most_per_event = 0.0f64;
        let mut full = false;
        let mut tracked = 0u64;
        for chunk in 0..25u64 {
            let before = visitors.work();
            for n in chunk * 10_000..(chunk + 1) * 10_000 {
                // 1 000 new visitors a second; after 160 s, 5 000 a second, to pass the cap.
                let second = if n < 160_000 {
                    n as i64 / 1_000
                } else {
                    160 + (n as i64 - 160_000) / 5_000
                };
                let page = format!("/page/{}", n % 500);
                if visitors.see(&format!("v{n}"), Some(&page), at(second)) == Tracked::Yes {
                    tracked += 1;
                } else {
                    full = true;
                }
            }
            let per_event = (visitors.work() - before) as f64 / 10_000.0;
            most_per_event = most_per_event.max(per_event);
        }
        assert!(full, "the run reached the cap");
        assert!(tracked < 250_000);
        assert!(most_per_event <= 3.0, "{most_per_event} entries per event");
        // After ten quiet minutes, one event pays for at most a few of the old visitors.
        let before = visitors.work();
        visitors.see("late", Some("/"), at(1_000));
        assert!(visitors.work() - before <= 3);
        visitors.expire_all(at(1_000));
        assert_eq!(visitors.len(), 1);
        assert_eq!(pages(&visitors), [("/".into(), 1)]);
    }
}
