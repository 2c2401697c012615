//! Metric segments: what `getMetrics` reads instead of the events. A segment holds the
//! metric fields of some events of one UTC hour, column by column, every text through a
//! per-segment dictionary — about 16 bytes an event where its row takes hundreds — so a
//! 30-day report reads a few megabytes in a few hundred blobs instead of a million rows.
//!
//! The write transaction of a batch adds one segment per hour its written events fall in;
//! compaction later merges an hour's segments (see `compaction`). Bots are encoded and
//! flagged: reports leave them out of every figure but `botEvents`.
//!
//! Layout (little-endian), version 2:
//! `version u8 · hour_start i64 (unix seconds) · n u32 ·` for each of the `TEXTS` text
//! columns a dictionary `count u32 · count × len u32 · the texts' utf-8, end to end` · the
//! session dictionary
//! `count u32 · (16 bytes)*` · the offsets from the hour in microseconds `n × u32` · for
//! each text column and then the session column `width u8 · n × width` ids, where id 0 is
//! "none" and id `k` the dictionary's `k`-th entry · the bots: `count u32 · count × u32`
//! indices of the events that are bots, ascending. Version 1 (written before bots were
//! kept) ends before the bots and holds none.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use uuid::Uuid;

use super::MetricRow;

const VERSION: u8 = 2;
/// Segments written before bots were kept: the same without the bots.
const VERSION_WITHOUT_BOTS: u8 = 1;
/// Seconds in the hour a segment covers.
pub(crate) const HOUR_SECONDS: i64 = 3_600;

/// The text columns of a segment, in their stored order.
pub(crate) const TEXTS: usize = 8;
pub(crate) const EVENT_TYPE: usize = 0;
pub(crate) const PATH: usize = 1;
pub(crate) const REFERRER_HOST: usize = 2;
pub(crate) const UTM_SOURCE: usize = 3;
pub(crate) const COUNTRY: usize = 4;
pub(crate) const DEVICE_TYPE: usize = 5;
pub(crate) const BROWSER_NAME: usize = 6;
pub(crate) const USER_ID: usize = 7;

/// A segment ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSegment {
    /// The hour's start, unix seconds.
    pub hour_start: i64,
    /// How many events it holds.
    pub events: i32,
    pub data: Vec<u8>,
}

/// A stored segment that could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("metric segment is corrupt: {0}")]
pub struct CorruptSegment(&'static str);

/// The start (unix seconds) of the UTC hour holding `at`.
pub(crate) fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(HOUR_SECONDS) * HOUR_SECONDS
}

/// Unix microseconds of `at`, saturating far outside any stored time.
pub(crate) fn micros_of(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// The fields of one event a segment keeps.
pub(crate) struct SegmentEvent<'a> {
    pub at: DateTime<Utc>,
    pub texts: [Option<&'a str>; TEXTS],
    pub session: Option<Uuid>,
    pub bot: bool,
}

impl<'a> SegmentEvent<'a> {
    pub(crate) fn of_row(row: &'a MetricRow) -> Self {
        Self {
            at: row.occurred_at,
            texts: [
                Some(row.event_type.as_str()),
                row.path.as_deref(),
                row.referrer_host.as_deref(),
                row.utm_source.as_deref(),
                row.country.as_deref(),
                row.device_type.as_deref(),
                row.browser_name.as_deref(),
                row.user_id.as_deref(),
            ],
            session: row.session_id,
            bot: row.is_bot,
        }
    }
}

/// A dictionary being built: each distinct value once, in first-seen order, borrowed from
/// the events being encoded.
#[derive(Default)]
struct Dictionary<'a> {
    index: FxHashMap<&'a str, u32>,
    values: Vec<&'a str>,
}

impl<'a> Dictionary<'a> {
    fn id_of(&mut self, value: Option<&'a str>) -> u32 {
        let Some(value) = value else { return 0 };
        let next = self.values.len() as u32 + 1;
        *self.index.entry(value).or_insert_with(|| {
            self.values.push(value);
            next
        })
    }
}

/// Builds the segment of one hour.
pub(crate) struct SegmentBuilder<'a> {
    hour_start: i64,
    offsets: Vec<u32>,
    texts: [Dictionary<'a>; TEXTS],
    text_ids: [Vec<u32>; TEXTS],
    sessions: FxHashMap<Uuid, u32>,
    session_values: Vec<Uuid>,
    session_ids: Vec<u32>,
    bots: Vec<u32>,
}

impl<'a> SegmentBuilder<'a> {
    pub(crate) fn new(hour_start: i64) -> Self {
        Self {
            hour_start,
            offsets: Vec::new(),
            texts: Default::default(),
            text_ids: Default::default(),
            sessions: FxHashMap::default(),
            session_values: Vec::new(),
            session_ids: Vec::new(),
            bots: Vec::new(),
        }
    }

    /// Adds an event of this builder's hour.
    pub(crate) fn push(&mut self, event: &SegmentEvent<'a>) {
        if event.bot {
            self.bots.push(self.offsets.len() as u32);
        }
        let offset = micros_of(event.at) - self.hour_start * 1_000_000;
        debug_assert!((0..HOUR_SECONDS * 1_000_000).contains(&offset));
        self.offsets
            .push(u32::try_from(offset.clamp(0, HOUR_SECONDS * 1_000_000 - 1)).unwrap_or(0));
        for (column, value) in event.texts.iter().enumerate() {
            let id = self.texts[column].id_of(*value);
            self.text_ids[column].push(id);
        }
        let session = event.session.map_or(0, |session| {
            let next = self.session_values.len() as u32 + 1;
            *self.sessions.entry(session).or_insert_with(|| {
                self.session_values.push(session);
                next
            })
        });
        self.session_ids.push(session);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub(crate) fn finish(self) -> NewSegment {
        let n = self.offsets.len();
        let mut out = Vec::with_capacity(64 + n * 16);
        out.push(VERSION);
        out.extend_from_slice(&self.hour_start.to_le_bytes());
        out.extend_from_slice(&(n as u32).to_le_bytes());
        for dictionary in &self.texts {
            out.extend_from_slice(&(dictionary.values.len() as u32).to_le_bytes());
            for value in &dictionary.values {
                out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            }
            for value in &dictionary.values {
                out.extend_from_slice(value.as_bytes());
            }
        }
        out.extend_from_slice(&(self.session_values.len() as u32).to_le_bytes());
        for session in &self.session_values {
            out.extend_from_slice(session.as_bytes());
        }
        for offset in &self.offsets {
            out.extend_from_slice(&offset.to_le_bytes());
        }
        let counts = self.texts.iter().map(|dictionary| dictionary.values.len());
        let columns = self.text_ids.iter().zip(counts);
        let sessions = std::iter::once((&self.session_ids, self.session_values.len()));
        for (ids, count) in columns.chain(sessions) {
            write_ids(&mut out, ids, count);
        }
        out.extend_from_slice(&(self.bots.len() as u32).to_le_bytes());
        for bot in &self.bots {
            out.extend_from_slice(&bot.to_le_bytes());
        }
        NewSegment {
            hour_start: self.hour_start,
            events: i32::try_from(n).unwrap_or(i32::MAX),
            data: out,
        }
    }
}

/// The narrowest width that holds ids up to `count`, then the ids.
fn write_ids(out: &mut Vec<u8>, ids: &[u32], count: usize) {
    let width: u8 = match count {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        _ => 4,
    };
    out.push(width);
    for id in ids {
        out.extend_from_slice(&id.to_le_bytes()[..usize::from(width)]);
    }
}

/// The segments of `events`, one per hour they occurred in.
pub(crate) fn segments_of<'a>(
    events: impl IntoIterator<Item = SegmentEvent<'a>>,
) -> Vec<NewSegment> {
    let mut hours: BTreeMap<i64, SegmentBuilder> = BTreeMap::new();
    for event in events {
        let hour = hour_of(event.at);
        hours
            .entry(hour)
            .or_insert_with(|| SegmentBuilder::new(hour))
            .push(&event);
    }
    hours.into_values().map(SegmentBuilder::finish).collect()
}

/// A stored segment, read in place: its dictionaries borrow the stored bytes.
pub(crate) struct Segment<'a> {
    pub hour_start: i64,
    /// Offsets from the hour's start, microseconds.
    pub offsets: Vec<u32>,
    /// Per text column: the dictionary (id `k` is entry `k - 1`) and each event's id.
    pub texts: [Vec<&'a str>; TEXTS],
    pub text_ids: [Vec<u32>; TEXTS],
    pub sessions: Vec<Uuid>,
    pub session_ids: Vec<u32>,
    /// The indices of the events that are bots, ascending.
    pub bots: Vec<u32>,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptSegment> {
        if self.0.len() < n {
            return Err(CorruptSegment("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CorruptSegment> {
        self.take(N)?
            .try_into()
            .map_err(|_| CorruptSegment("truncated"))
    }

    fn u32(&mut self) -> Result<u32, CorruptSegment> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn count(&mut self) -> Result<usize, CorruptSegment> {
        let count = self.u32()? as usize;
        // Every entry takes at least a byte: a count past the rest is corrupt, and must not
        // become a huge allocation.
        if count > self.0.len() {
            return Err(CorruptSegment("count past the end"));
        }
        Ok(count)
    }

    fn ids(&mut self, n: usize, count: usize) -> Result<Vec<u32>, CorruptSegment> {
        let width = usize::from(self.array::<1>()?[0]);
        if !matches!(width, 1 | 2 | 4) {
            return Err(CorruptSegment("id width"));
        }
        let bytes = self.take(n * width)?;
        // One loop per width, so that each compiles to a plain widening copy.
        let ids: Vec<u32> = match width {
            1 => bytes.iter().map(|byte| u32::from(*byte)).collect(),
            2 => bytes
                .chunks_exact(2)
                .map(|pair| u32::from(u16::from_le_bytes([pair[0], pair[1]])))
                .collect(),
            _ => bytes
                .chunks_exact(4)
                .map(|quad| u32::from_le_bytes([quad[0], quad[1], quad[2], quad[3]]))
                .collect(),
        };
        if ids.iter().copied().max().unwrap_or(0) as usize > count {
            return Err(CorruptSegment("id past its dictionary"));
        }
        Ok(ids)
    }
}

impl<'a> Segment<'a> {
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, CorruptSegment> {
        let mut reader = Reader(bytes);
        let version = reader.array::<1>()?[0];
        if version != VERSION && version != VERSION_WITHOUT_BOTS {
            return Err(CorruptSegment("unknown version"));
        }
        let hour_start = i64::from_le_bytes(reader.array()?);
        let n = reader.u32()? as usize;
        let mut texts: [Vec<&'a str>; TEXTS] = Default::default();
        for dictionary in &mut texts {
            let count = reader.count()?;
            let lengths: Vec<usize> = reader
                .take(count * 4)?
                .chunks_exact(4)
                .map(|len| u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize)
                .collect();
            let total = lengths
                .iter()
                .try_fold(0usize, |sum, len| sum.checked_add(*len))
                .ok_or(CorruptSegment("text lengths overflow"))?;
            // One UTF-8 check for the whole dictionary; each text must then start and end
            // on a character boundary.
            let all = std::str::from_utf8(reader.take(total)?)
                .map_err(|_| CorruptSegment("text is not UTF-8"))?;
            dictionary.reserve(count);
            let mut start = 0;
            for len in lengths {
                let text = all
                    .get(start..start + len)
                    .ok_or(CorruptSegment("text split inside a character"))?;
                dictionary.push(text);
                start += len;
            }
        }
        let session_count = reader.count()?;
        let mut sessions = Vec::with_capacity(session_count);
        for _ in 0..session_count {
            sessions.push(Uuid::from_bytes(reader.array()?));
        }
        let offsets = reader
            .take(n * 4)?
            .chunks_exact(4)
            .map(|chunk| u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .collect();
        let mut text_ids: [Vec<u32>; TEXTS] = Default::default();
        for (column, ids) in text_ids.iter_mut().enumerate() {
            *ids = reader.ids(n, texts[column].len())?;
        }
        let session_ids = reader.ids(n, sessions.len())?;
        let mut bots = Vec::new();
        if version == VERSION {
            let count = reader.count()?;
            bots = reader
                .take(count * 4)?
                .chunks_exact(4)
                .map(|chunk| u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
                .collect();
            if bots.iter().any(|bot| *bot as usize >= n) || !bots.is_sorted() {
                return Err(CorruptSegment("bot index"));
            }
        }
        if !reader.0.is_empty() {
            return Err(CorruptSegment("bytes past the end"));
        }
        Ok(Self {
            hour_start,
            offsets,
            texts,
            text_ids,
            sessions,
            session_ids,
            bots,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.offsets.len()
    }

    /// The time of event `i`.
    pub(crate) fn at(&self, i: usize) -> DateTime<Utc> {
        let micros = self.hour_start * 1_000_000 + i64::from(self.offsets[i]);
        DateTime::from_timestamp_micros(micros).unwrap_or_default()
    }

    /// Whether each event is a bot.
    pub(crate) fn bot_flags(&self) -> Vec<bool> {
        let mut flags = vec![false; self.len()];
        for bot in &self.bots {
            flags[*bot as usize] = true;
        }
        flags
    }

    /// The fields of event `i`.
    pub(crate) fn event(&self, i: usize) -> SegmentEvent<'a> {
        let text = |column: usize| {
            let id = self.text_ids[column][i] as usize;
            id.checked_sub(1).map(|k| self.texts[column][k])
        };
        SegmentEvent {
            at: self.at(i),
            texts: std::array::from_fn(text),
            session: (self.session_ids[i] as usize)
                .checked_sub(1)
                .map(|k| self.sessions[k]),
            bot: self.bots.binary_search(&(i as u32)).is_ok(),
        }
    }
}

/// One segment of the events of `segments` (all of `hour_start`) that occurred at or after
/// `keep_from`; `None` when none did.
pub(crate) fn merge<'a>(
    hour_start: i64,
    segments: &[Segment<'a>],
    keep_from: Option<DateTime<Utc>>,
) -> Option<NewSegment> {
    let mut builder = SegmentBuilder::new(hour_start);
    for segment in segments {
        for i in 0..segment.len() {
            let event = segment.event(i);
            if keep_from.is_none_or(|from| event.at >= from) {
                builder.push(&event);
            }
        }
    }
    (!builder.is_empty()).then(|| builder.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(at: &str, event_type: &str, path: Option<&str>, session: Option<Uuid>) -> MetricRow {
        MetricRow {
            occurred_at: at.parse().expect("time"),
            event_type: event_type.into(),
            path: path.map(Into::into),
            referrer_host: Some("news.example".into()),
            utm_source: None,
            country: Some("DE".into()),
            device_type: Some("mobile".into()),
            browser_name: Some("Firefox".into()),
            user_id: None,
            session_id: session,
            is_bot: false,
        }
    }

    #[test]
    fn a_segment_gives_back_what_it_was_given() {
        let session = Uuid::now_v7();
        let rows = [
            row(
                "2026-12-01T10:00:00.000001Z",
                "page_viewed",
                Some("/a"),
                Some(session),
            ),
            row("2026-12-01T10:59:59.999999Z", "clicked", None, None),
            row(
                "2026-12-01T11:30:00Z",
                "page_viewed",
                Some("/b"),
                Some(session),
            ),
        ];
        let segments = segments_of(rows.iter().map(SegmentEvent::of_row));
        assert_eq!(segments.len(), 2, "one segment per hour");
        assert_eq!(segments[0].events, 2);
        let first = Segment::decode(&segments[0].data).expect("decode");
        assert_eq!(first.hour_start, hour_of(rows[0].occurred_at));
        let back = first.event(0);
        assert_eq!(back.at, rows[0].occurred_at);
        assert_eq!(back.texts[EVENT_TYPE], Some("page_viewed"));
        assert_eq!(back.texts[PATH], Some("/a"));
        assert_eq!(back.texts[COUNTRY], Some("DE"));
        assert_eq!(back.texts[USER_ID], None);
        assert_eq!(back.session, Some(session));
        let second = first.event(1);
        assert_eq!(second.at, rows[1].occurred_at);
        assert_eq!((second.texts[PATH], second.session), (None, None));
    }

    #[test]
    fn wide_dictionaries_take_wider_ids() {
        let rows: Vec<MetricRow> = (0..70_000)
            .map(|n| {
                let mut row = row("2026-12-01T10:00:00Z", "page_viewed", None, None);
                row.path = Some(format!("/p/{n}"));
                row
            })
            .collect();
        let segment = segments_of(rows.iter().map(SegmentEvent::of_row)).remove(0);
        let read = Segment::decode(&segment.data).expect("decode");
        assert_eq!(read.event(69_999).texts[PATH], Some("/p/69999"));
        assert_eq!(read.event(300).texts[PATH], Some("/p/300"));
    }

    #[test]
    fn merging_keeps_every_event_or_those_after_a_cutoff() {
        let rows = [
            row("2026-12-01T10:05:00Z", "page_viewed", Some("/a"), None),
            row("2026-12-01T10:45:00Z", "page_viewed", Some("/b"), None),
        ];
        let parts: Vec<NewSegment> = rows
            .iter()
            .flat_map(|row| segments_of([SegmentEvent::of_row(row)]))
            .collect();
        let decoded: Vec<Segment> = parts
            .iter()
            .map(|part| Segment::decode(&part.data).expect("decode"))
            .collect();
        let hour = parts[0].hour_start;
        let merged = merge(hour, &decoded, None).expect("merged");
        assert_eq!(merged.events, 2);
        let cutoff = "2026-12-01T10:30:00Z".parse().expect("time");
        let trimmed = merge(hour, &decoded, Some(cutoff)).expect("trimmed");
        let trimmed = Segment::decode(&trimmed.data).expect("decode");
        assert_eq!(trimmed.len(), 1);
        assert_eq!(trimmed.event(0).texts[PATH], Some("/b"));
        let late = "2026-12-01T11:00:00Z".parse().expect("time");
        assert!(merge(hour, &decoded, Some(late)).is_none());
    }

    #[test]
    fn bots_are_kept_flagged_through_merges_and_old_segments_have_none() {
        let mut bot = row("2026-12-01T10:20:00Z", "page_viewed", Some("/b"), None);
        bot.is_bot = true;
        let rows = [
            row("2026-12-01T10:10:00Z", "page_viewed", Some("/a"), None),
            bot,
        ];
        let segment = segments_of(rows.iter().map(SegmentEvent::of_row)).remove(0);
        let read = Segment::decode(&segment.data).expect("decode");
        assert_eq!(read.bots, vec![1]);
        assert_eq!(read.bot_flags(), vec![false, true]);
        assert!(read.event(1).bot && !read.event(0).bot);
        let merged = merge(segment.hour_start, &[read], None).expect("merged");
        let merged = Segment::decode(&merged.data).expect("decode");
        assert_eq!(merged.bots, vec![1]);

        let plain = segments_of([SegmentEvent::of_row(&rows[0])]).remove(0);
        let mut version_1 = plain.data[..plain.data.len() - 4].to_vec();
        version_1[0] = VERSION_WITHOUT_BOTS;
        let old = Segment::decode(&version_1).expect("a version 1 segment");
        assert_eq!((old.len(), old.bots.len()), (1, 0));
    }

    #[test]
    fn corrupt_bytes_are_an_error_not_a_panic() {
        let row = row("2026-12-01T10:00:00Z", "page_viewed", Some("/a"), None);
        let segment = segments_of([SegmentEvent::of_row(&row)]).remove(0);
        for cut in 0..segment.data.len() {
            assert!(
                Segment::decode(&segment.data[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut bad = segment.data.clone();
        bad[0] = 9;
        assert!(Segment::decode(&bad).is_err());
        let mut huge = segment.data;
        huge[13..17].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Segment::decode(&huge).is_err());
    }
}
