//! The domain: what every layer shares and no layer owns. The stored event and its
//! enrichment, an event as submitted and its outcome, attribution, sources and entity types,
//! consent subjects, the caller and the request it made, places, and why an input was refused.
//!
//! It imports nothing else of the crate but the URL helpers (`url_parts`), so that `pipeline`, `storage`, `identity`, `api` and
//! `transport` can all depend on it without depending on each other.

mod attribution;
mod caller;
mod consent;
mod event;
mod funnel;
mod invalid_input;
mod place;
mod report;
mod request;
mod retention;
pub(crate) mod rules;
#[doc(hidden)]
pub mod test_support;
mod track;

pub use attribution::Attribution;
pub use caller::{Caller, Claims, EventIdentity, Role};
pub use consent::ConsentSubject;
pub use event::{Enrichment, EventRecord, Props, new_event_id};
pub use funnel::{Funnel, FunnelQuery, FunnelReport, FunnelStep, StepReport, Within};
pub use invalid_input::InvalidInput;
pub use place::Place;
pub use report::{
    Compare, Comparison, FilterRule, FilterValue, Goal, GoalReport, Interval, MetricsFilters,
    MetricsQuery, MetricsReport, MetricsTotals, SeriesPoint, SessionPage, TopItem,
};
pub use request::RequestContext;
pub use retention::{Cohort, Period, RetentionQuery, RetentionReport};
pub use track::{EntityType, EventSource, TrackEventInput, TrackEventOutput, TrackStatus};
