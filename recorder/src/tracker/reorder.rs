//! The reorder buffer: rows wait here until they are older than the watermark, so that rows
//! from different CPUs (which fill the ring buffer concurrently) and the kernel's amendments
//! (which arrive just after the row they change) can be put right before a row is written.
//!
//! A row that arrives older than a row already released cannot be put in order any more: it is
//! still handed out (it is a fact), and counted in [`Reorder::late_rows`], which the recording's
//! metadata carries, so an out-of-order file never goes unnoticed.

use std::collections::VecDeque;

use gespann_common::Event;

/// Rows arrive nearly in time order (the kernel stamps a record right after reserving its
/// place in the one ring buffer), so the buffer keeps the rows of past drains sorted in a
/// deque and the newest drain's rows apart: releasing takes from the front, and a drain's rows
/// are merged in by appending them, sorting only when they overlap what is there. The cost of
/// a tick is the rows it handles, not the whole window.
#[derive(Debug)]
pub struct Reorder {
    /// Sorted by time.
    sorted: VecDeque<Event>,
    /// Rows pushed since the last release, in arrival order.
    incoming: Vec<Event>,
    /// The time of the newest row released so far.
    released_upto: i64,
    late_rows: u64,
}

impl Default for Reorder {
    fn default() -> Self {
        Reorder {
            sorted: VecDeque::with_capacity(1 << 16),
            incoming: Vec::with_capacity(1 << 14),
            released_upto: i64::MIN,
            late_rows: 0,
        }
    }
}

impl Reorder {
    pub fn push(&mut self, e: Event) {
        if e.ts_ns < self.released_upto {
            self.late_rows += 1;
        }
        self.incoming.push(e);
    }

    /// Rows that arrived after a newer row had been released (so they are out of order).
    pub fn late_rows(&self) -> u64 {
        self.late_rows
    }

    pub fn len(&self) -> usize {
        self.sorted.len() + self.incoming.len()
    }

    /// The newest waiting row of `conn_id` that `pred` accepts, to amend it.
    pub fn last_of(&mut self, conn_id: u64, pred: impl Fn(&Event) -> bool) -> Option<&mut Event> {
        let hit = |p: &&mut Event| p.conn_id == conn_id && pred(p);
        self.incoming.iter_mut().rev().find(hit).or_else(|| self.sorted.iter_mut().rev().find(hit))
    }

    /// Every waiting row of `conn_id`.
    pub fn rows_of(&mut self, conn_id: u64) -> impl Iterator<Item = &mut Event> {
        self.sorted.iter_mut().chain(self.incoming.iter_mut()).filter(move |p| p.conn_id == conn_id)
    }

    /// Drops the waiting rows of `conn_id` (a connection found twice keeps one identity).
    pub fn forget(&mut self, conn_id: u64) {
        self.sorted.retain(|p| p.conn_id != conn_id);
        self.incoming.retain(|p| p.conn_id != conn_id);
    }

    /// Merges the rows pushed since the last release into the sorted deque.
    fn merge(&mut self) {
        if self.incoming.is_empty() {
            return;
        }
        self.incoming.sort_by_key(|e| e.ts_ns);
        let overlaps = self.sorted.back().is_some_and(|b| b.ts_ns > self.incoming[0].ts_ns);
        self.sorted.extend(self.incoming.drain(..));
        if overlaps {
            self.sorted.make_contiguous().sort_by_key(|e| e.ts_ns);
        }
    }

    /// Rows at or before `watermark` (wall-clock ns), in time order; later rows stay.
    pub fn release(&mut self, watermark: i64) -> Vec<Event> {
        self.merge();
        let n = self.sorted.partition_point(|e| e.ts_ns <= watermark);
        let ready: Vec<Event> = self.sorted.drain(..n).collect();
        self.note_released(&ready);
        ready
    }

    /// Everything waiting, in time order.
    pub fn release_all(&mut self) -> Vec<Event> {
        self.merge();
        let ready: Vec<Event> = self.sorted.drain(..).collect();
        self.note_released(&ready);
        ready
    }

    fn note_released(&mut self, rows: &[Event]) {
        if let Some(last) = rows.last() {
            self.released_upto = self.released_upto.max(last.ts_ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ts_ns: i64, conn_id: u64) -> Event {
        Event { ts_ns, conn_id, ..Event::default() }
    }

    #[test]
    fn rows_are_released_in_time_order_up_to_the_watermark() {
        let mut r = Reorder::default();
        for (ts, id) in [(30, 3), (10, 1), (20, 2), (40, 4)] {
            r.push(at(ts, id));
        }
        let out: Vec<u64> = r.release(30).iter().map(|e| e.conn_id).collect();
        assert_eq!(out, vec![1, 2, 3]);
        assert_eq!(r.len(), 1);
        assert_eq!(r.late_rows(), 0);
    }

    #[test]
    fn rows_of_a_later_drain_that_overlap_earlier_ones_are_merged_in_order() {
        let mut r = Reorder::default();
        for (ts, id) in [(10, 1), (30, 3)] {
            r.push(at(ts, id));
        }
        assert!(r.release(5).is_empty());
        for (ts, id) in [(20, 2), (40, 4)] {
            r.push(at(ts, id));
        }
        let amended = r.last_of(3, |_| true).map(|e| e.conn_id);
        assert_eq!(amended, Some(3), "rows of earlier drains can still be amended");
        let out: Vec<u64> = r.release(35).iter().map(|e| e.conn_id).collect();
        assert_eq!(out, vec![1, 2, 3]);
        assert_eq!((r.len(), r.late_rows()), (1, 0));
    }

    #[test]
    fn a_row_older_than_one_released_is_counted_late_and_still_handed_out() {
        let mut r = Reorder::default();
        r.push(at(100, 1));
        assert_eq!(r.release(150).len(), 1);
        r.push(at(100, 2)); // same time as the last released: still in order
        r.push(at(90, 3)); // older: out of order
        assert_eq!(r.late_rows(), 1);
        let out: Vec<u64> = r.release_all().iter().map(|e| e.conn_id).collect();
        assert_eq!(out, vec![3, 2]);
    }
}
