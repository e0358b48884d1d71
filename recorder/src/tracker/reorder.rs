//! The reorder buffer: rows wait here until they are older than the watermark, so that rows
//! from different CPUs (which fill the ring buffer concurrently) and the kernel's amendments
//! (which arrive just after the row they change) can be put right before a row is written.
//!
//! A row that arrives older than a row already released cannot be put in order any more: it is
//! still handed out (it is a fact), and counted in [`Reorder::late_rows`], which the recording's
//! metadata carries, so an out-of-order file never goes unnoticed.

use gespann_common::Event;

#[derive(Debug)]
pub struct Reorder {
    pending: Vec<Event>,
    /// The time of the newest row released so far.
    released_upto: i64,
    late_rows: u64,
}

impl Default for Reorder {
    fn default() -> Self {
        Reorder { pending: Vec::with_capacity(1 << 16), released_upto: i64::MIN, late_rows: 0 }
    }
}

impl Reorder {
    pub fn push(&mut self, e: Event) {
        if e.ts_ns < self.released_upto {
            self.late_rows += 1;
        }
        self.pending.push(e);
    }

    /// Rows that arrived after a newer row had been released (so they are out of order).
    pub fn late_rows(&self) -> u64 {
        self.late_rows
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// The newest waiting row of `conn_id` that `pred` accepts, to amend it.
    pub fn last_of(&mut self, conn_id: u64, pred: impl Fn(&Event) -> bool) -> Option<&mut Event> {
        self.pending.iter_mut().rev().find(|p| p.conn_id == conn_id && pred(p))
    }

    /// Every waiting row of `conn_id`.
    pub fn rows_of(&mut self, conn_id: u64) -> impl Iterator<Item = &mut Event> {
        self.pending.iter_mut().filter(move |p| p.conn_id == conn_id)
    }

    /// Drops the waiting rows of `conn_id` (a connection found twice keeps one identity).
    pub fn forget(&mut self, conn_id: u64) {
        self.pending.retain(|p| p.conn_id != conn_id);
    }

    /// Rows at or before `watermark` (wall-clock ns), in time order; later rows stay.
    pub fn release(&mut self, watermark: i64) -> Vec<Event> {
        self.pending.sort_by_key(|e| e.ts_ns);
        let split = self.pending.partition_point(|e| e.ts_ns <= watermark);
        let rest = self.pending.split_off(split);
        let ready = std::mem::replace(&mut self.pending, rest);
        self.note_released(&ready);
        ready
    }

    /// Everything waiting, in time order.
    pub fn release_all(&mut self) -> Vec<Event> {
        self.pending.sort_by_key(|e| e.ts_ns);
        let ready = std::mem::take(&mut self.pending);
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
