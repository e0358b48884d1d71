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
/// place in the one ring buffer), so the buffer keeps the rows of each past drain as a sorted
/// run of its own, the runs in time order one after the other, and the newest drain's rows
/// apart. A drain's rows are sorted among themselves and become the next run; only when they
/// overlap the runs before them are the overlapping rows (the newer end of those runs) merged
/// with them. Releasing hands the oldest runs out as they are, without copying, and splits the
/// run the watermark falls into. The cost of a tick is the rows it handles (each moved about
/// once), not the whole window.
#[derive(Debug)]
pub struct Reorder {
    /// Sorted runs: each sorted by time, and every row of a run at or before every row of the
    /// runs after it.
    runs: VecDeque<Vec<Event>>,
    /// Rows pushed since the last release, in arrival order.
    incoming: Vec<Event>,
    /// Rows in `runs`.
    in_runs: usize,
    /// The time of the newest row released so far.
    released_upto: i64,
    late_rows: u64,
}

impl Default for Reorder {
    fn default() -> Self {
        Reorder {
            runs: VecDeque::new(),
            incoming: Vec::with_capacity(1 << 12),
            in_runs: 0,
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
        self.in_runs + self.incoming.len()
    }

    /// The newest waiting row of `conn_id` that `pred` accepts, to amend it.
    pub fn last_of(&mut self, conn_id: u64, pred: impl Fn(&Event) -> bool) -> Option<&mut Event> {
        let hit = |p: &&mut Event| p.conn_id == conn_id && pred(p);
        self.incoming
            .iter_mut()
            .rev()
            .find(hit)
            .or_else(|| self.runs.iter_mut().rev().flat_map(|r| r.iter_mut().rev()).find(hit))
    }

    /// Every waiting row of `conn_id`.
    pub fn rows_of(&mut self, conn_id: u64) -> impl Iterator<Item = &mut Event> {
        self.runs.iter_mut().flatten().chain(self.incoming.iter_mut()).filter(move |p| p.conn_id == conn_id)
    }

    /// Drops the waiting rows of `conn_id` (a connection found twice keeps one identity).
    pub fn forget(&mut self, conn_id: u64) {
        for run in &mut self.runs {
            run.retain(|p| p.conn_id != conn_id);
        }
        self.runs.retain(|r| !r.is_empty());
        self.in_runs = self.runs.iter().map(Vec::len).sum();
        self.incoming.retain(|p| p.conn_id != conn_id);
    }

    /// Turns the rows pushed since the last release into the newest run, merging them with the
    /// rows of earlier runs they overlap. Equal times keep arrival order, as a stable sort of
    /// every waiting row would.
    fn merge(&mut self) {
        if self.incoming.is_empty() {
            return;
        }
        // Room for about as many rows as this drain brought: growing by doubling copies rows.
        let room = self.incoming.len() + self.incoming.len() / 4;
        let mut run = std::mem::replace(&mut self.incoming, Vec::with_capacity(room));
        run.sort_by_key(|e| e.ts_ns);
        self.in_runs += run.len();
        let first = run[0].ts_ns;
        if self.runs.back().and_then(|r| r.last()).is_none_or(|b| b.ts_ns <= first) {
            self.runs.push_back(run);
            return;
        }
        // The rows of earlier runs newer than the new run's oldest, oldest first.
        let mut older: Vec<Vec<Event>> = Vec::new();
        while let Some(back) = self.runs.back_mut() {
            let split = back.partition_point(|e| e.ts_ns <= first);
            if split == 0 {
                older.push(self.runs.pop_back().expect("a back run"));
            } else {
                older.push(back.split_off(split));
                break;
            }
        }
        let tail: Vec<Event> = older.into_iter().rev().flatten().collect();
        let mut merged = Vec::with_capacity(tail.len() + run.len());
        let (mut a, mut b) = (tail.into_iter().peekable(), run.into_iter().peekable());
        loop {
            let from_tail = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => x.ts_ns <= y.ts_ns,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            merged.push(if from_tail { a.next() } else { b.next() }.expect("peeked"));
        }
        self.runs.push_back(merged);
    }

    /// Rows at or before `watermark` (wall-clock ns), in time order; later rows stay.
    pub fn release(&mut self, watermark: i64) -> Vec<Event> {
        self.merge();
        let mut ready: Vec<Event> = Vec::new();
        while let Some(front) = self.runs.front_mut() {
            let n = front.partition_point(|e| e.ts_ns <= watermark);
            if n == 0 {
                break;
            }
            let whole = n == front.len();
            let out = if whole {
                self.runs.pop_front().expect("a front run")
            } else {
                let rest = front.split_off(n);
                std::mem::replace(front, rest)
            };
            if ready.is_empty() {
                ready = out;
            } else {
                ready.extend(out);
            }
            if !whole {
                break;
            }
        }
        self.in_runs -= ready.len();
        self.note_released(&ready);
        ready
    }

    /// Everything waiting, in time order.
    pub fn release_all(&mut self) -> Vec<Event> {
        self.release(i64::MAX)
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

    /// Drains of nearly ordered rows (some overlapping several earlier drains, some late, many
    /// at equal times) released at watermarks that fall inside runs: every release is what a
    /// stable sort of all waiting rows by time would hand out.
    #[test]
    fn releases_are_a_stable_sort_of_the_waiting_rows() {
        let mut seed = 7u64;
        let mut rnd = move |m: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        let mut r = Reorder::default();
        let mut waiting: Vec<Event> = Vec::new();
        let mut id = 0;
        let mut now = 1_000i64;
        for _ in 0..300 {
            for _ in 0..rnd(40) {
                // Mostly recent, some far back (across runs), times often equal.
                let back = if rnd(10) == 0 { rnd(600) } else { rnd(30) } as i64;
                let e = at((now - back) / 3 * 3, id);
                id += 1;
                waiting.push(e.clone());
                r.push(e);
            }
            now += 20;
            if rnd(3) > 0 {
                let watermark = now - 100 - rnd(50) as i64;
                waiting.sort_by_key(|e| e.ts_ns);
                let n = waiting.partition_point(|e| e.ts_ns <= watermark);
                let want: Vec<u64> = waiting.drain(..n).map(|e| e.conn_id).collect();
                let got: Vec<u64> = r.release(watermark).iter().map(|e| e.conn_id).collect();
                assert_eq!(got, want);
                assert_eq!(r.len(), waiting.len());
            }
        }
        waiting.sort_by_key(|e| e.ts_ns);
        let got: Vec<u64> = r.release_all().iter().map(|e| e.conn_id).collect();
        assert_eq!(got, waiting.iter().map(|e| e.conn_id).collect::<Vec<_>>());
    }
}
