//! Folds metric segments into a [`MetricsReport`], exactly: every distinct visitor and
//! session is counted once, whatever segment it appears in.
//!
//! Segments arrive oldest hour first. Each segment's dictionaries are mapped to report-wide
//! ids once, so the per-event work is integer compares and array updates: a visitor is
//! counted in a bucket when its last bucket differs (buckets arrive in order), and in a top
//! list's row when the pair (row, visitor) is new — checked first against the few values
//! that visitor was counted for, kept beside each other per visitor (a visitor's events
//! come close together, so those stay in cache), and only past those against a hash set of
//! pairs, whose every probe would be a cache miss.

use chrono::{DateTime, Utc};
use rustc_hash::{FxHashMap, FxHashSet};
use uuid::Uuid;

use super::PAGEVIEW_EVENT;
use super::funnel::FunnelFold;
use super::retention::RetentionFold;
use super::segment::{self, HOUR_SECONDS, Segment};
use super::visits::Visits;
use crate::domain::{
    FilterValue, Goal, GoalReport, MetricsQuery, MetricsReport, MetricsTotals, SeriesPoint, TopItem,
};

/// No id: the value is absent, or the visitor unknown.
pub(crate) const NONE: u32 = u32::MAX;

/// The top lists, by the segment column each groups by.
const LISTS: [usize; 7] = [
    segment::PATH,
    segment::REFERRER_HOST,
    segment::UTM_SOURCE,
    segment::COUNTRY,
    segment::DEVICE_TYPE,
    segment::BROWSER_NAME,
    segment::EVENT_TYPE,
];

/// The index of the pages in [`LISTS`].
const PATH_LIST: usize = 0;

/// Values kept inline per visitor for a list of `column`: a visitor sees a handful of
/// pages and event types, and mostly one country, device, browser, referrer and source.
fn inline_slots(column: usize) -> usize {
    match column {
        segment::PATH => 8,
        segment::EVENT_TYPE => 4,
        _ => 2,
    }
}

/// One top list: events and distinct visitors per value of its column.
struct TopList {
    ids: FxHashMap<String, u32>,
    values: Vec<String>,
    events: Vec<u64>,
    visitors: Vec<u64>,
    /// Values counted per visitor, inline: `slots` per visitor, `filled` of them used.
    slots: usize,
    inline: Vec<u32>,
    filled: Vec<u8>,
    /// `(value << 32) | visitor` of the pairs counted past a visitor's inline slots.
    overflow: FxHashSet<u64>,
}

impl TopList {
    fn new(slots: usize) -> Self {
        Self {
            ids: FxHashMap::default(),
            values: Vec::new(),
            events: Vec::new(),
            visitors: Vec::new(),
            slots,
            inline: Vec::new(),
            filled: Vec::new(),
            overflow: FxHashSet::default(),
        }
    }

    fn grow_visitors(&mut self, len: usize) {
        self.inline.resize(len * self.slots, NONE);
        self.filled.resize(len, 0);
    }

    fn id_of(&mut self, value: &str) -> u32 {
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        let id = self.values.len() as u32;
        self.ids.insert(value.to_owned(), id);
        self.values.push(value.to_owned());
        self.events.push(0);
        self.visitors.push(0);
        id
    }

    /// Adds the events `rows` of one segment, whose ids in this list's column are `local`,
    /// mapped to this list's ids by `to_list` (index 0: none), their visitors `visitors`.
    /// One column at a time: the loop touches this list's arrays only.
    fn add_column(&mut self, to_list: &[u32], local: &[u32], rows: &[u32], visitors: &[u32]) {
        let mut counts = vec![0u64; to_list.len()];
        for (&row, &visitor) in rows.iter().zip(visitors) {
            let id = local[row as usize] as usize;
            counts[id] += 1;
            let value = to_list[id];
            if value != NONE && visitor != NONE {
                self.count_visitor(value, visitor);
            }
        }
        for (value, count) in to_list.iter().zip(counts) {
            if *value != NONE {
                self.events[*value as usize] += count;
            }
        }
    }

    /// Counts `visitor` for `value` unless it was already.
    fn count_visitor(&mut self, value: u32, visitor: u32) {
        let visitor = visitor as usize;
        let filled = usize::from(self.filled[visitor]);
        let slots = &mut self.inline[visitor * self.slots..(visitor + 1) * self.slots];
        if slots[..filled].contains(&value) {
            return;
        }
        let new = if filled < slots.len() {
            slots[filled] = value;
            self.filled[visitor] += 1;
            true
        } else {
            self.overflow
                .insert((u64::from(value) << 32) | visitor as u64)
        };
        if new {
            self.visitors[value as usize] += 1;
        }
    }

    /// The `limit` values with most events (ties: most visitors, then by value); values
    /// only seen in events the query left out are not listed.
    fn top(self, limit: usize) -> Vec<TopItem> {
        let mut items: Vec<TopItem> = self
            .values
            .into_iter()
            .zip(self.events.into_iter().zip(self.visitors))
            .filter(|(_, (events, _))| *events > 0)
            .map(|(value, (events, visitors))| TopItem {
                value,
                events,
                visitors,
            })
            .collect();
        items.sort_by(|a, b| {
            b.events
                .cmp(&a.events)
                .then(b.visitors.cmp(&a.visitors))
                .then_with(|| a.value.cmp(&b.value))
        });
        items.truncate(limit);
        items
    }
}

/// A set of small ids.
#[derive(Default)]
struct IdSet(Vec<u64>);

impl IdSet {
    /// Adds `id`; whether it was new.
    fn insert(&mut self, id: u32) -> bool {
        let (word, bit) = (id as usize / 64, 1u64 << (id % 64));
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        let new = self.0[word] & bit == 0;
        self.0[word] |= bit;
        new
    }

    /// How many ids it holds.
    fn count(&self) -> u64 {
        self.0.iter().map(|word| u64::from(word.count_ones())).sum()
    }
}

/// The query's filters as the segment columns they read (the top-level `eventType` is one
/// more filter on the event type).
fn filters_of(query: &MetricsQuery) -> Vec<(usize, FilterValue)> {
    let filters = &query.filters;
    let top_level = query.event_type.clone().map(FilterValue::Equals);
    [
        (segment::EVENT_TYPE, top_level.as_ref()),
        (segment::EVENT_TYPE, filters.event_type.as_ref()),
        (segment::PATH, filters.path.as_ref()),
        (segment::UTM_SOURCE, filters.utm_source.as_ref()),
        (segment::REFERRER_HOST, filters.referrer_host.as_ref()),
        (segment::COUNTRY, filters.country.as_ref()),
        (segment::DEVICE_TYPE, filters.device_type.as_ref()),
        (segment::BROWSER_NAME, filters.browser_name.as_ref()),
    ]
    .into_iter()
    .filter_map(|(column, value)| value.map(|value| (column, value.clone())))
    .collect()
}

/// Per id of a segment's dictionary (0: none), whether `keeps` holds for its value.
fn per_id(texts: &[&str], keeps: impl Fn(Option<&str>) -> bool) -> Vec<bool> {
    std::iter::once(None)
        .chain(texts.iter().map(|text| Some(*text)))
        .map(keeps)
        .collect()
}

/// Per event type and per path of `segment` (index 0: none), whether a pattern (a goal, a
/// funnel step) wants it.
fn pattern_ids(
    segment: &Segment<'_>,
    wants_type: impl Fn(&str) -> bool,
    wants_path: impl Fn(Option<&str>) -> bool,
) -> (Vec<bool>, Vec<bool>) {
    (
        per_id(&segment.texts[segment::EVENT_TYPE], |value| {
            value.is_some_and(&wants_type)
        }),
        per_id(&segment.texts[segment::PATH], wants_path),
    )
}

/// One goal's count.
struct GoalTally {
    goal: Goal,
    events: u64,
    visitors: IdSet,
}

/// Folds segments into the report of one query.
pub(crate) struct Tally {
    query: MetricsQuery,
    filters: Vec<(usize, FilterValue)>,
    goals: Vec<GoalTally>,
    buckets: Vec<DateTime<Utc>>,
    /// Unix seconds of each bucket's start.
    bucket_starts: Vec<i64>,
    from_micros: i64,
    to_micros: i64,
    /// Report-wide ids: a visitor id per user, and per session its id and its visitor id.
    /// Visitor ids are dense and given at a visitor's first counted event, so there are as
    /// many as distinct visitors.
    users: FxHashMap<String, u32>,
    sessions: FxHashMap<Uuid, (u32, u32)>,
    visitors: u32,
    sessions_seen: IdSet,
    /// Per visitor, the last bucket it was counted in.
    last_bucket: Vec<u32>,
    events: u64,
    pageviews: u64,
    bot_events: u64,
    series_events: Vec<u64>,
    series_visitors: Vec<u64>,
    lists: [TopList; LISTS.len()],
    visits: Visits,
    retention: Option<RetentionFold>,
    funnel: Option<FunnelFold>,
    /// Whether the top lists and the visit figures are folded (not for a funnel or
    /// retention alone).
    lists_wanted: bool,
}

impl Tally {
    pub(crate) fn new(query: &MetricsQuery) -> Self {
        let buckets = query.buckets();
        let bucket_starts = buckets.iter().map(DateTime::timestamp).collect();
        Self {
            series_events: vec![0; buckets.len()],
            series_visitors: vec![0; buckets.len()],
            buckets,
            bucket_starts,
            from_micros: segment::micros_of(query.from),
            to_micros: segment::micros_of(query.to),
            query: query.clone(),
            filters: filters_of(query),
            goals: query
                .goals
                .iter()
                .map(|goal| GoalTally {
                    goal: goal.clone(),
                    events: 0,
                    visitors: IdSet::default(),
                })
                .collect(),
            users: FxHashMap::default(),
            sessions: FxHashMap::default(),
            visitors: 0,
            sessions_seen: IdSet::default(),
            last_bucket: Vec::new(),
            events: 0,
            pageviews: 0,
            bot_events: 0,
            lists: LISTS.map(|column| TopList::new(inline_slots(column))),
            visits: Visits::default(),
            retention: None,
            funnel: None,
            lists_wanted: true,
        }
    }

    /// A tally that also folds retention cohorts, one per bucket of `query`.
    pub(crate) fn with_retention(query: &MetricsQuery) -> Self {
        let mut tally = Self::new(query);
        tally.retention = Some(RetentionFold::new(tally.buckets.len()));
        tally.lists_wanted = false;
        tally
    }

    /// A tally that also folds `funnel`.
    pub(crate) fn with_funnel(query: &MetricsQuery, funnel: crate::domain::Funnel) -> Self {
        let mut tally = Self::new(query);
        tally.funnel = Some(FunnelFold::new(funnel));
        tally.lists_wanted = false;
        tally
    }

    /// The retention cohorts (empty unless made `with_retention`).
    pub(crate) fn into_cohorts(self) -> Vec<crate::domain::Cohort> {
        self.retention
            .map(|fold| fold.finish(&self.buckets))
            .unwrap_or_default()
    }

    /// The funnel's steps and its conversion rate (none unless made `with_funnel`).
    pub(crate) fn into_funnel(self) -> (Vec<crate::domain::StepReport>, f64) {
        self.funnel.map(FunnelFold::finish).unwrap_or_default()
    }

    /// The session's index.
    fn session_index(&mut self, session: Uuid) -> u32 {
        let next = self.sessions.len() as u32;
        self.sessions.entry(session).or_insert((next, NONE)).0
    }

    fn new_visitor(&mut self) -> u32 {
        let id = self.visitors;
        self.visitors += 1;
        self.grow_visitors(id as usize + 1);
        id
    }

    /// The visitor id of `session` as a visitor of its own (its events without a user).
    fn session_visitor(&mut self, session: &Uuid) -> u32 {
        match self.sessions.get(session).map(|(_, visitor)| *visitor) {
            Some(visitor) if visitor != NONE => visitor,
            _ => {
                let visitor = self.new_visitor();
                if let Some(entry) = self.sessions.get_mut(session) {
                    entry.1 = visitor;
                }
                visitor
            }
        }
    }

    fn user_visitor(&mut self, user: &str) -> u32 {
        if let Some(id) = self.users.get(user) {
            return *id;
        }
        let id = self.new_visitor();
        self.users.insert(user.to_owned(), id);
        id
    }

    /// Makes room for visitor ids below `end` in the per-visitor arrays.
    fn grow_visitors(&mut self, end: usize) {
        if self.last_bucket.len() < end {
            // Doubling: visitors arrive one by one.
            let len = end.max(2 * self.last_bucket.len()).max(1_024);
            self.last_bucket.resize(len, NONE);
            for list in &mut self.lists {
                list.grow_visitors(len);
            }
        }
    }

    /// Adds the events of `segment` the query asks about. Segments must come oldest hour
    /// first.
    pub(crate) fn add(&mut self, segment: &Segment<'_>) {
        let hour_micros = segment.hour_start * 1_000_000;
        let (low, high) = (self.from_micros - hour_micros, self.to_micros - hour_micros);
        if high <= 0 || low >= HOUR_SECONDS * 1_000_000 {
            return;
        }
        let whole_hour = low <= 0 && high >= HOUR_SECONDS * 1_000_000;
        // Buckets start on hours: the hour lies in the last bucket starting at or before it.
        let Some(bucket) = self
            .bucket_starts
            .partition_point(|start| *start <= segment.hour_start)
            .checked_sub(1)
        else {
            return;
        };
        // The filters as the ids of this segment's dictionaries they keep; a filter that
        // keeps none of them leaves nothing.
        let mut filters = Vec::with_capacity(self.filters.len());
        for (column, filter) in &self.filters {
            let keeps = per_id(&segment.texts[*column], |value| filter.keeps(value));
            if !keeps.contains(&true) {
                return;
            }
            filters.push((*column, keeps));
        }
        // Per goal, the event types and the paths of this segment that reach it.
        let goals: Vec<(Vec<bool>, Vec<bool>)> = self
            .goals
            .iter()
            .map(|tally| {
                let goal = &tally.goal;
                pattern_ids(segment, |t| goal.wants_type(t), |p| goal.wants_path(p))
            })
            .collect();
        // Likewise per funnel step.
        let steps: Vec<(Vec<bool>, Vec<bool>)> =
            self.funnel.as_ref().map_or_else(Vec::new, |fold| {
                fold.funnel()
                    .steps
                    .iter()
                    .map(|step| {
                        pattern_ids(segment, |t| step.wants_type(t), |p| step.wants_path(p))
                    })
                    .collect()
            });
        let pageview = segment.texts[segment::EVENT_TYPE]
            .iter()
            .position(|text| *text == PAGEVIEW_EVENT)
            .map_or(NONE, |k| k as u32 + 1);
        // This segment's dictionaries as report-wide ids (index 0: none).
        // A funnel or retention tally needs neither the lists nor the visits.
        let lists = if self.lists_wanted { LISTS.len() } else { 0 };
        let list_ids: Vec<Vec<u32>> = (0..lists)
            .map(|list| {
                let texts = &segment.texts[LISTS[list]];
                let mut ids = Vec::with_capacity(texts.len() + 1);
                ids.push(NONE);
                ids.extend(texts.iter().map(|text| self.lists[list].id_of(text)));
                ids
            })
            .collect();
        let session_ids: Vec<u32> = std::iter::once(NONE)
            .chain(
                segment
                    .sessions
                    .iter()
                    .map(|session| self.session_index(*session)),
            )
            .collect();
        // Visitor ids are given when first needed, so sessions always signed in take none.
        let mut session_visitors = vec![NONE; session_ids.len()];
        let mut user_visitors = vec![NONE; segment.texts[segment::USER_ID].len() + 1];

        let event_types = &segment.text_ids[segment::EVENT_TYPE];
        let users = &segment.text_ids[segment::USER_ID];
        let paths = &segment.text_ids[segment::PATH];
        let bots = segment.bot_flags();
        // The events the query counts, and their visitors, for the lists below.
        let mut rows = Vec::with_capacity(segment.len());
        let mut row_visitors = Vec::with_capacity(segment.len());
        'events: for i in 0..segment.len() {
            if !whole_hour {
                let offset = i64::from(segment.offsets[i]);
                if offset < low || offset >= high {
                    continue;
                }
            }
            for (column, keeps) in &filters {
                if !keeps[segment.text_ids[*column][i] as usize] {
                    continue 'events;
                }
            }
            if bots[i] {
                self.bot_events += 1;
                continue;
            }
            let (local_session, local_user) = (segment.session_ids[i] as usize, users[i] as usize);
            let session = session_ids[local_session];
            let visitor = if local_user != 0 {
                if user_visitors[local_user] == NONE {
                    user_visitors[local_user] =
                        self.user_visitor(segment.texts[segment::USER_ID][local_user - 1]);
                }
                user_visitors[local_user]
            } else if local_session != 0 {
                if session_visitors[local_session] == NONE {
                    session_visitors[local_session] =
                        self.session_visitor(&segment.sessions[local_session - 1]);
                }
                session_visitors[local_session]
            } else {
                NONE
            };
            self.events += 1;
            self.series_events[bucket] += 1;
            let is_pageview = event_types[i] == pageview;
            if is_pageview {
                self.pageviews += 1;
            }
            if session != NONE {
                self.sessions_seen.insert(session);
            }
            if session != NONE && self.lists_wanted {
                let at = hour_micros + i64::from(segment.offsets[i]);
                let page = is_pageview.then(|| list_ids[PATH_LIST][paths[i] as usize]);
                self.visits.add(session, at, page, visitor);
            }
            if visitor != NONE {
                let last = &mut self.last_bucket[visitor as usize];
                if *last != bucket as u32 {
                    *last = bucket as u32;
                    self.series_visitors[bucket] += 1;
                }
            }
            for (tally, (goal_types, goal_paths)) in self.goals.iter_mut().zip(&goals) {
                if goal_types[event_types[i] as usize] && goal_paths[paths[i] as usize] {
                    tally.events += 1;
                    if visitor != NONE {
                        tally.visitors.insert(visitor);
                    }
                }
            }
            if let Some(fold) = self.retention.as_mut()
                && visitor != NONE
            {
                fold.add(visitor, bucket);
            }
            if let Some(fold) = self.funnel.as_mut() {
                let mut matched = 0u8;
                for (k, (step_types, step_paths)) in steps.iter().enumerate() {
                    if step_types[event_types[i] as usize] && step_paths[paths[i] as usize] {
                        matched |= 1 << k;
                    }
                }
                let at = hour_micros + i64::from(segment.offsets[i]);
                fold.add(session, visitor, at, matched);
            }
            rows.push(i as u32);
            row_visitors.push(visitor);
        }
        for (k, list) in self.lists.iter_mut().enumerate().take(lists) {
            list.add_column(
                &list_ids[k],
                &segment.text_ids[LISTS[k]],
                &rows,
                &row_visitors,
            );
        }
    }

    pub(crate) fn finish(self) -> MetricsReport {
        let limit = self.query.limit;
        let sessions = self.sessions_seen.count();
        let [
            pages,
            referrers,
            utm_sources,
            countries,
            devices,
            browsers,
            event_types,
        ] = self.lists;
        let (visits, entry_pages, exit_pages) = self.visits.finish(&pages.values, limit);
        let visitors = u64::from(self.visitors);
        let goals = (!self.goals.is_empty()).then(|| {
            self.goals
                .into_iter()
                .map(|tally| {
                    let reached: u64 = tally.visitors.count();
                    GoalReport {
                        name: tally.goal.name,
                        events: tally.events,
                        visitors: reached,
                        conversion_rate: if visitors == 0 {
                            0.0
                        } else {
                            reached as f64 / visitors as f64
                        },
                    }
                })
                .collect()
        });
        let views_per_visit = if sessions == 0 {
            0.0
        } else {
            self.pageviews as f64 / sessions as f64
        };
        MetricsReport {
            from: self.query.from,
            to: self.query.to,
            interval: self.query.interval,
            totals: MetricsTotals {
                events: self.events,
                pageviews: self.pageviews,
                visitors: u64::from(self.visitors),
                sessions,
                bot_events: self.bot_events,
                bounce_rate: visits.bounce_rate,
                views_per_visit,
                visit_duration_seconds: visits.visit_duration_seconds,
            },
            series: self
                .buckets
                .into_iter()
                .zip(self.series_events.into_iter().zip(self.series_visitors))
                .map(|(t, (events, visitors))| SeriesPoint {
                    t,
                    events,
                    visitors,
                })
                .collect(),
            top_pages: pages.top(limit),
            top_referrers: referrers.top(limit),
            top_utm_sources: utm_sources.top(limit),
            top_countries: countries.top(limit),
            devices: devices.top(limit),
            browsers: browsers.top(limit),
            event_types: event_types.top(limit),
            entry_pages,
            exit_pages,
            goals,
            comparison: None,
        }
    }
}
