//! The node's operational metrics for Prometheus (`/metrics`), kept with the `metrics` crate
//! and rendered by its Prometheus exporter. These are about the service (events accepted,
//! flush durations, pool use); the analytics of the tracked sites are reports
//! (`domain::report`, `storage::reports`, served by `getMetrics`).
//!
//! Each server has a registry of its own rather than the process-wide recorder: one process
//! may run several servers (the tests do), and each reports only its own traffic.

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Buckets of every histogram named `…_seconds`: from a tenth of a millisecond (an accepted
/// event in buffered mode) to 10 s (a durable call waiting out a slow database).
const SECONDS_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Buckets of every histogram named `…_events`: from a lone event to the largest write.
const EVENTS_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0,
];

const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

/// What kind of value a [`Sample`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only ever grows (until the process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// A value read from its owner at scrape time: the counters getStats reports, buffer fill,
/// pool use, live viewers.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub value: f64,
}

/// One server's metrics.
pub struct MetricsRegistry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MetricsRegistry")
            .finish_non_exhaustive()
    }
}

impl Default for MetricsRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsRegistry {
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(Matcher::Suffix("_events".into()), EVENTS_BUCKETS)
            })
            .unwrap_or_else(|_| unreachable!("the bucket lists are not empty"));
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        Self { recorder, handle }
    }

    /// A histogram recorded where the work happens, with the buckets its name's suffix
    /// chooses (`_seconds`, `_events`).
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &'static str)],
    ) -> Histogram {
        self.recorder
            .describe_histogram(KeyName::from_const_str(name), None, help.into());
        let labels: Vec<Label> = labels
            .iter()
            .map(|(key, value)| Label::from_static_parts(key, value))
            .collect();
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }

    /// Sets each sample's counter or gauge to the value its owner reports now.
    pub fn publish(&self, samples: &[Sample]) {
        for sample in samples {
            let name = KeyName::from_const_str(sample.name);
            let key = Key::from_static_name(sample.name);
            match sample.kind {
                Kind::Counter => {
                    self.recorder
                        .describe_counter(name, None, sample.help.into());
                    let counter: Counter = self.recorder.register_counter(&key, &METADATA);
                    counter.absolute(sample.value as u64);
                }
                Kind::Gauge => {
                    self.recorder.describe_gauge(name, None, sample.help.into());
                    let gauge: Gauge = self.recorder.register_gauge(&key, &METADATA);
                    gauge.set(sample.value);
                }
            }
        }
    }

    /// Everything in Prometheus' text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds the values recorded since the last time into the histograms, so that what waits
    /// to be folded stays small between scrapes (or when nobody scrapes).
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_of<'a>(text: &'a str, start: &str) -> &'a str {
        text.lines()
            .find(|line| line.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in\n{text}"))
    }

    #[test]
    fn histograms_have_buckets_by_their_unit() {
        let registry = MetricsRegistry::new();
        let took = registry.histogram(
            "sluice_test_duration_seconds",
            "How long.",
            &[("procedure", "eventIngestion.track")],
        );
        let sizes = registry.histogram("sluice_test_batch_events", "How many.", &[]);
        for seconds in [0.000_2, 0.003, 0.003, 7.0] {
            took.record(seconds);
        }
        sizes.record(2_000.0);
        let text = registry.render();
        assert!(
            text.contains("# TYPE sluice_test_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("# HELP sluice_test_duration_seconds How long."),
            "{text}"
        );
        assert_eq!(
            line_of(
                &text,
                r#"sluice_test_duration_seconds_bucket{procedure="eventIngestion.track",le="0.005"}"#
            )
            .rsplit(' ')
            .next(),
            Some("3")
        );
        assert!(
            line_of(&text, "sluice_test_duration_seconds_count").ends_with(" 4"),
            "{text}"
        );
        assert!(
            line_of(&text, r#"sluice_test_batch_events_bucket{le="1000"}"#).ends_with(" 0"),
            "{text}"
        );
        assert!(
            line_of(&text, r#"sluice_test_batch_events_bucket{le="2000"}"#).ends_with(" 1"),
            "{text}"
        );
    }

    #[test]
    fn samples_become_counters_and_gauges_with_their_help() {
        let registry = MetricsRegistry::new();
        let sample = |name, kind, value| Sample {
            name,
            kind,
            help: "Some help.",
            value,
        };
        registry.publish(&[
            sample("sluice_test_total", Kind::Counter, 7.0),
            sample("sluice_test_level", Kind::Gauge, 0.25),
        ]);
        registry.publish(&[sample("sluice_test_level", Kind::Gauge, 0.5)]);
        let text = registry.render();
        assert!(
            text.contains("# TYPE sluice_test_total counter\nsluice_test_total 7\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP sluice_test_level Some help."),
            "{text}"
        );
        assert!(
            text.contains("# TYPE sluice_test_level gauge\nsluice_test_level 0.5\n"),
            "{text}"
        );
    }

    #[test]
    fn registries_do_not_share_values() {
        let (one, other) = (MetricsRegistry::new(), MetricsRegistry::new());
        one.histogram("sluice_test_duration_seconds", "How long.", &[])
            .record(0.01);
        assert!(
            one.render()
                .contains("sluice_test_duration_seconds_count 1")
        );
        assert!(!other.render().contains("sluice_test_duration_seconds"));
    }
}
