//! Merging an hour's metric segments. Every written batch adds a segment to each hour it
//! touches, so a busy hour gathers hundreds; a report would decode each. Compaction merges
//! them size-tiered — [`FAN_IN`] segments of about the same size into one, so an event is
//! rewritten about log₄(its hour's segments) times, not once per batch — and an hour that
//! has [`CLOSED_AFTER`] behind it into as few as hold it. No merge writes more than
//! [`MAX_MERGED_EVENTS`], so the memory a merge takes is bounded however busy the hour: a
//! merge of four segments of the top tier used to write a million events of a busy hour in
//! one go (a transient quarter of a gigabyte), and a closed hour's last merge more.
//!
//! A merge reads the segments, merges them off the async threads, then replaces them in
//! one short transaction that fails if any is gone (another node's compactor, or
//! retention, got there first): the database's writer lock is held for two statements,
//! never for the merge.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::segment::{self, HOUR_SECONDS, Segment};
use super::{StorageError, corrupt};
use crate::storage::Segments;

/// Segments of one size tier merged at once.
pub const FAN_IN: usize = 4;
/// Segments with this many events or more are not merged again.
pub const MAX_MERGED_EVENTS: i32 = 1 << 18;
/// How long after an hour ends its segments are merged into one (late events may still
/// add segments later; those are merged the next time).
pub const CLOSED_AFTER: chrono::Duration = chrono::Duration::minutes(5);

/// A stored segment, without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub id: i64,
    pub hour_start: i64,
    pub events: i32,
}

/// Which segments a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentListing {
    /// Those of every hour that has more than one.
    Crowded,
    /// Those of one hour (its start, unix seconds).
    Hour(i64),
}

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Segments merged away.
    pub merged: usize,
    /// Segments written in their place.
    pub written: usize,
}

/// The groups of ids to merge among one hour's `segments`: in an open hour, [`FAN_IN`] of
/// one size tier (fewer in the top tier, where [`FAN_IN`] would pass the cap); in a closed
/// hour, all of them. Either way in groups of at most [`MAX_MERGED_EVENTS`] events, oldest
/// first.
pub(crate) fn plan(segments: &[SegmentInfo], closed: bool) -> Vec<Vec<i64>> {
    let small = segments
        .iter()
        .filter(|segment| segment.events < MAX_MERGED_EVENTS);
    if closed {
        return groups_within_cap(small, usize::MAX)
            .into_iter()
            .map(|(ids, _)| ids)
            .collect();
    }
    let mut tiers: BTreeMap<u32, Vec<&SegmentInfo>> = BTreeMap::new();
    for segment in small {
        let tier = segment.events.max(1).ilog(FAN_IN as i32);
        tiers.entry(tier).or_default().push(segment);
    }
    let mut groups = Vec::new();
    for (tier, members) in tiers {
        // The least a segment of this tier holds: a group that cannot take one more is
        // merged even when it has fewer than FAN_IN.
        let floor = (FAN_IN as i64).pow(tier);
        groups.extend(
            groups_within_cap(members.into_iter(), FAN_IN)
                .into_iter()
                .filter(|(ids, events)| {
                    ids.len() >= FAN_IN || events + floor > i64::from(MAX_MERGED_EVENTS)
                })
                .map(|(ids, _)| ids),
        );
    }
    groups
}

/// Consecutive groups of at most `most` segments and [`MAX_MERGED_EVENTS`] events, each of
/// two or more (a lone segment has nothing to merge with), with their events.
fn groups_within_cap<'a>(
    segments: impl Iterator<Item = &'a SegmentInfo>,
    most: usize,
) -> Vec<(Vec<i64>, i64)> {
    let mut groups = Vec::new();
    let (mut group, mut events) = (Vec::new(), 0i64);
    for segment in segments {
        let size = i64::from(segment.events);
        if group.len() == most || events + size > i64::from(MAX_MERGED_EVENTS) {
            groups.push((std::mem::take(&mut group), events));
            events = 0;
        }
        group.push(segment.id);
        events += size;
    }
    groups.push((group, events));
    groups.retain(|(group, _)| group.len() >= 2);
    groups
}

/// One compaction pass over every hour with more than one segment, as of `now`.
pub async fn compact<S: Segments + ?Sized>(
    store: &S,
    now: DateTime<Utc>,
) -> Result<Compacted, StorageError> {
    let mut hours: BTreeMap<i64, Vec<SegmentInfo>> = BTreeMap::new();
    for info in store.metric_segment_list(SegmentListing::Crowded).await? {
        hours.entry(info.hour_start).or_default().push(info);
    }
    let mut compacted = Compacted::default();
    for (hour, segments) in hours {
        let closed = hour + HOUR_SECONDS + CLOSED_AFTER.num_seconds() <= now.timestamp();
        for ids in plan(&segments, closed) {
            if merge(store, hour, &ids, None).await? {
                compacted.merged += ids.len();
                compacted.written += 1;
            }
        }
    }
    Ok(compacted)
}

/// Drops the events before `cutoff` from the segments of the hour `cutoff` falls in
/// (retention deletes the hours wholly before it); whether anything was dropped.
pub async fn trim<S: Segments + ?Sized>(
    store: &S,
    cutoff: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let hour = segment::hour_of(cutoff);
    if hour == cutoff.timestamp() && cutoff.timestamp_subsec_nanos() == 0 {
        return Ok(false);
    }
    let ids: Vec<i64> = store
        .metric_segment_list(SegmentListing::Hour(hour))
        .await?
        .iter()
        .map(|segment| segment.id)
        .collect();
    if ids.is_empty() {
        return Ok(false);
    }
    merge(store, hour, &ids, Some(cutoff)).await
}

/// Replaces the segments `ids` of `hour` by one of their events at or after `keep_from`
/// (all of them without it). With `keep_from`, nothing is rewritten when no event is before
/// it. Whether the segments were replaced.
async fn merge<S: Segments + ?Sized>(
    store: &S,
    hour: i64,
    ids: &[i64],
    keep_from: Option<DateTime<Utc>>,
) -> Result<bool, StorageError> {
    let blobs = store.read_metric_segments(ids).await?;
    if blobs.len() != ids.len() {
        return Ok(false);
    }
    let merged = tokio::task::spawn_blocking(move || {
        let segments = blobs
            .iter()
            .map(|blob| Segment::decode(blob))
            .collect::<Result<Vec<_>, _>>()?;
        let before = segments.iter().map(Segment::len).sum::<usize>();
        let merged = segment::merge(hour, &segments, keep_from);
        let after = merged.as_ref().map_or(0, |merged| merged.events as usize);
        Ok::<_, segment::CorruptSegment>((merged, before != after))
    })
    .await
    .map_err(|error| StorageError::Unavailable(format!("segment merge stopped: {error}")))?
    .map_err(corrupt)?;
    let (merged, dropped_some) = merged;
    if keep_from.is_some() && !dropped_some {
        return Ok(false);
    }
    store.replace_metric_segments(ids, merged.as_ref()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(events: &[i32]) -> Vec<SegmentInfo> {
        events
            .iter()
            .enumerate()
            .map(|(id, events)| SegmentInfo {
                id: id as i64,
                hour_start: 0,
                events: *events,
            })
            .collect()
    }

    #[test]
    fn an_open_hour_merges_segments_of_one_size_four_at_a_time() {
        assert!(
            plan(&sizes(&[10, 12, 9]), false).is_empty(),
            "three are left"
        );
        assert_eq!(
            plan(&sizes(&[10, 12, 9, 15, 100]), false),
            vec![vec![0, 1, 2, 3]]
        );
        assert_eq!(
            plan(&sizes(&[40, 50, 60, 63, 1, 2, 3, 1]), false),
            vec![vec![4, 5, 6, 7], vec![0, 1, 2, 3]]
        );
    }

    #[test]
    fn a_closed_hour_becomes_one_segment_up_to_the_size_cap() {
        assert_eq!(plan(&sizes(&[10, 5_000]), true), vec![vec![0, 1]]);
        assert!(plan(&sizes(&[7]), true).is_empty());
        let big = MAX_MERGED_EVENTS;
        assert_eq!(plan(&sizes(&[big, 3, big, 4]), true), vec![vec![1, 3]]);
        assert!(plan(&sizes(&[big, big, big, big]), false).is_empty());
    }

    /// No merge writes more than the cap: the top tier of an open hour merges as many as
    /// fit, and a closed hour's segments go into as few segments of at most the cap.
    #[test]
    fn no_merge_writes_more_than_the_cap() {
        let quarter = MAX_MERGED_EVENTS / 4;
        let top = [quarter + 1, quarter * 2, quarter + 5, quarter, quarter * 3];
        assert_eq!(
            plan(&sizes(&top), false),
            vec![vec![0, 1]],
            "the top tier merges as many as fit; 2 and 3 wait for one more that fits"
        );
        let closed = plan(
            &sizes(&[quarter * 3, quarter * 2, 100, quarter * 2, 7]),
            true,
        );
        assert_eq!(closed, vec![vec![1, 2], vec![3, 4]]);
        for closed in [false, true] {
            let many: Vec<i32> = (0..200).map(|n| 1_000 + (n * 7_919) % quarter).collect();
            let segments = sizes(&many);
            for group in plan(&segments, closed) {
                let events: i32 = group.iter().map(|id| many[*id as usize]).sum();
                assert!(events <= MAX_MERGED_EVENTS, "{events} events in one merge");
            }
        }
    }
}
