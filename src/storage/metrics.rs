//! `getMetrics` over the stored events, once for every backend: each backend only reads the
//! narrow [`MetricRow`]s of a time window (the [`metric_rows!`] query, the same for both
//! schemas), and [`MetricsAggregator`] folds them into the report. So both backends give the
//! same answer for the same rows by construction.
//!
//! The range is read in windows of [`READ_WINDOW`], [`READS_AHEAD`] at a time, so memory
//! holds that many windows' rows and the distinct visitors and sessions of the range, never
//! the range's rows.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::rows::StoredUuid;
use super::{EventStore, StorageError};
use crate::domain::{MetricsQuery, MetricsReport, MetricsTotals, SeriesPoint, TopItem};

/// How much of the range one read covers.
pub(crate) const READ_WINDOW: Duration = Duration::hours(6);
/// Windows read at once: memory holds this many windows' rows.
const READS_AHEAD: usize = 2;

/// The event type that counts as a page view.
pub const PAGEVIEW_EVENT: &str = "page_viewed";

/// What metrics read of one event.
#[derive(Debug, Clone)]
pub struct MetricRow {
    pub occurred_at: DateTime<Utc>,
    pub event_type: String,
    pub path: Option<String>,
    pub referrer_host: Option<String>,
    pub utm_source: Option<String>,
    pub country: Option<String>,
    pub device_type: Option<String>,
    pub browser_name: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<Uuid>,
}

/// The columns of a [`MetricRow`] as a backend's `metric_rows!` select returns them; `S` is
/// how it stores the session id.
pub(crate) type MetricColumns<S> = (
    DateTime<Utc>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<S>,
);

impl MetricRow {
    /// The row a backend read, its session id decoded.
    pub(crate) fn from_columns<S: StoredUuid>(
        columns: MetricColumns<S>,
    ) -> Result<Self, StorageError> {
        let session_id = columns.9.as_ref().map(StoredUuid::to_uuid).transpose()?;
        Ok(Self {
            occurred_at: columns.0,
            event_type: columns.1,
            path: columns.2,
            referrer_host: columns.3,
            utm_source: columns.4,
            country: columns.5,
            device_type: columns.6,
            browser_name: columns.7,
            user_id: columns.8,
            session_id,
        })
    }
}

/// The windows `[start, end)` a query's range is read in, oldest first.
pub(crate) fn read_windows(query: &MetricsQuery) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut windows = Vec::new();
    let mut start = query.from;
    while start < query.to {
        let end = (start + READ_WINDOW).min(query.to);
        windows.push((start, end));
        start = end;
    }
    windows
}

/// The boxed select of [`MetricRow`] columns for one window of a query, on the `events`
/// table of the schema module `$schema`; bots never count.
macro_rules! metric_rows {
    ($schema:path, $backend:ty, $query:expr, $start:expr, $end:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use schema::events::dsl as e;
        use $schema as schema;
        let query: &$crate::domain::MetricsQuery = $query;
        let mut select = e::events
            .filter(e::occurred_at.ge($start))
            .filter(e::occurred_at.lt($end))
            .filter(e::is_bot.eq(false))
            .select((
                e::occurred_at,
                e::event_type,
                e::path,
                e::referrer_host,
                e::utm_source,
                e::country,
                e::device_type,
                e::browser_name,
                e::user_id,
                e::session_id,
            ))
            .into_boxed::<$backend>();
        if let Some(event_type) = &query.event_type {
            select = select.filter(e::event_type.eq(event_type.clone()));
        }
        let filters = &query.filters;
        if let Some(path) = &filters.path {
            select = select.filter(e::path.eq(path.clone()));
        }
        if let Some(utm_source) = &filters.utm_source {
            select = select.filter(e::utm_source.eq(utm_source.clone()));
        }
        if let Some(referrer_host) = &filters.referrer_host {
            select = select.filter(e::referrer_host.eq(referrer_host.clone()));
        }
        if let Some(country) = &filters.country {
            select = select.filter(e::country.eq(country.clone()));
        }
        if let Some(device_type) = &filters.device_type {
            select = select.filter(e::device_type.eq(device_type.clone()));
        }
        select
    }};
}
pub(crate) use metric_rows;

/// Who a visitor is: the signed-in user, else the session (as live analytics counts them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum VisitorKey {
    User(String),
    Session(Uuid),
}

#[derive(Default)]
struct Tally {
    events: u64,
    visitors: HashSet<u32>,
}

impl Tally {
    fn add(&mut self, visitor: Option<u32>) {
        self.events += 1;
        if let Some(visitor) = visitor {
            self.visitors.insert(visitor);
        }
    }
}

/// One top list: a tally per value of a dimension.
#[derive(Default)]
struct TopList(HashMap<String, Tally>);

impl TopList {
    fn add(&mut self, value: Option<&str>, visitor: Option<u32>) {
        let Some(value) = value else { return };
        match self.0.get_mut(value) {
            Some(tally) => tally.add(visitor),
            None => {
                let mut tally = Tally::default();
                tally.add(visitor);
                self.0.insert(value.to_owned(), tally);
            }
        }
    }

    /// The `limit` values with most events (ties: most visitors, then by value).
    fn top(self, limit: usize) -> Vec<TopItem> {
        let mut items: Vec<TopItem> = self
            .0
            .into_iter()
            .map(|(value, tally)| TopItem {
                value,
                events: tally.events,
                visitors: tally.visitors.len() as u64,
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

/// The report of `query` from `store`'s rows, read window by window.
pub(crate) async fn report<S: EventStore + ?Sized>(
    store: &S,
    query: &MetricsQuery,
) -> Result<MetricsReport, StorageError> {
    use futures_util::{StreamExt, TryStreamExt};
    let mut aggregator = MetricsAggregator::new(query);
    // The next window is read (on another pooled connection) while this one is folded.
    let mut windows = futures_util::stream::iter(read_windows(query))
        .map(|(start, end)| store.metric_rows(query, start, end))
        .buffered(READS_AHEAD);
    while let Some(rows) = windows.try_next().await? {
        for row in rows {
            aggregator.add(row);
        }
    }
    Ok(aggregator.finish())
}

/// Folds [`MetricRow`]s into a [`MetricsReport`].
pub(crate) struct MetricsAggregator {
    query: MetricsQuery,
    buckets: Vec<DateTime<Utc>>,
    series: Vec<Tally>,
    visitor_ids: HashMap<VisitorKey, u32>,
    totals: Tally,
    pageviews: u64,
    sessions: HashSet<Uuid>,
    pages: TopList,
    referrers: TopList,
    utm_sources: TopList,
    countries: TopList,
    devices: TopList,
    browsers: TopList,
    event_types: TopList,
}

impl MetricsAggregator {
    pub(crate) fn new(query: &MetricsQuery) -> Self {
        let buckets = query.buckets();
        Self {
            series: buckets.iter().map(|_| Tally::default()).collect(),
            buckets,
            query: query.clone(),
            visitor_ids: HashMap::new(),
            totals: Tally::default(),
            pageviews: 0,
            sessions: HashSet::new(),
            pages: TopList::default(),
            referrers: TopList::default(),
            utm_sources: TopList::default(),
            countries: TopList::default(),
            devices: TopList::default(),
            browsers: TopList::default(),
            event_types: TopList::default(),
        }
    }

    /// Whether `row` is one the query asks about (backends filter already; the memory store
    /// relies on this).
    pub(crate) fn matches(&self, row: &MetricRow) -> bool {
        let query = &self.query;
        let filters = &query.filters;
        let is = |wanted: &Option<String>, actual: &Option<String>| {
            wanted.is_none() || wanted.as_deref() == actual.as_deref()
        };
        row.occurred_at >= query.from
            && row.occurred_at < query.to
            && query
                .event_type
                .as_deref()
                .is_none_or(|wanted| wanted == row.event_type)
            && is(&filters.path, &row.path)
            && is(&filters.utm_source, &row.utm_source)
            && is(&filters.referrer_host, &row.referrer_host)
            && is(&filters.country, &row.country)
            && is(&filters.device_type, &row.device_type)
    }

    pub(crate) fn add(&mut self, row: MetricRow) {
        let key = match (row.user_id, row.session_id) {
            (Some(user), _) => Some(VisitorKey::User(user)),
            (None, Some(session)) => Some(VisitorKey::Session(session)),
            (None, None) => None,
        };
        let next_id = self.visitor_ids.len() as u32;
        let visitor = key.map(|key| *self.visitor_ids.entry(key).or_insert(next_id));
        if let Some(session) = row.session_id {
            self.sessions.insert(session);
        }
        self.totals.add(visitor);
        if row.event_type == PAGEVIEW_EVENT {
            self.pageviews += 1;
        }
        let bucket = self.query.interval.bucket_of(row.occurred_at);
        if let Ok(index) = self.buckets.binary_search(&bucket) {
            self.series[index].add(visitor);
        }
        self.pages.add(row.path.as_deref(), visitor);
        self.referrers.add(row.referrer_host.as_deref(), visitor);
        self.utm_sources.add(row.utm_source.as_deref(), visitor);
        self.countries.add(row.country.as_deref(), visitor);
        self.devices.add(row.device_type.as_deref(), visitor);
        self.browsers.add(row.browser_name.as_deref(), visitor);
        self.event_types.add(Some(&row.event_type), visitor);
    }

    pub(crate) fn finish(self) -> MetricsReport {
        let limit = self.query.limit;
        MetricsReport {
            from: self.query.from,
            to: self.query.to,
            interval: self.query.interval,
            totals: MetricsTotals {
                events: self.totals.events,
                pageviews: self.pageviews,
                visitors: self.totals.visitors.len() as u64,
                sessions: self.sessions.len() as u64,
            },
            series: self
                .buckets
                .into_iter()
                .zip(self.series)
                .map(|(t, tally)| SeriesPoint {
                    t,
                    events: tally.events,
                    visitors: tally.visitors.len() as u64,
                })
                .collect(),
            top_pages: self.pages.top(limit),
            top_referrers: self.referrers.top(limit),
            top_utm_sources: self.utm_sources.top(limit),
            top_countries: self.countries.top(limit),
            devices: self.devices.top(limit),
            browsers: self.browsers.top(limit),
            event_types: self.event_types.top(limit),
        }
    }
}

impl MetricRow {
    /// The row an event gives, for stores that keep [`EventRecord`](crate::domain::EventRecord)s.
    pub(crate) fn of(event: &crate::domain::EventRecord) -> Option<Self> {
        (!event.enrichment.is_bot).then(|| Self {
            occurred_at: event.occurred_at,
            event_type: event.event_type.clone(),
            path: event.page_path(),
            referrer_host: event.enrichment.referrer_host.clone(),
            utm_source: event.attribution.utm_source.clone(),
            country: event.enrichment.country.clone(),
            device_type: event.enrichment.device_type.clone(),
            browser_name: event.enrichment.browser_name.clone(),
            user_id: event.user_id.clone(),
            session_id: event.session_id,
        })
    }
}
