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
/// apart, kept sorted as they come: a row older than the newest is put in place, moving the
/// few rows it overtakes. At a release the newest drain's rows become the next run; the few of
/// them older than the runs before them are put in place there first. Releasing hands the
/// oldest rows out in one vector: a whole run's buffer as it is; of the run the watermark falls
/// in, the smaller part is moved (in bulk). Every row is moved about once in all, so the
/// cost of a tick is the rows it handles, not the whole window.
#[derive(Debug)]
pub struct Reorder {
    /// Sorted runs: each sorted by time, and every row of a run at or before every row of the
    /// runs after it. Double-ended so that a release takes rows off the front of a run
    /// without moving the rest.
    runs: VecDeque<VecDeque<Event>>,
    /// Rows pushed since the last release: sorted by time while `sorted`.
    incoming: VecDeque<Event>,
    /// False once a row came that was too far out of order to put in place at push.
    sorted: bool,
    /// Rows in `runs`.
    in_runs: usize,
    /// The time of the newest row released so far.
    released_upto: i64,
    late_rows: u64,
}

/// How many rows a push may move to put an out-of-order row in place; a row further back
/// leaves `incoming` to be sorted at the release.
const PLACE_AT_MOST: usize = 64;

impl Default for Reorder {
    fn default() -> Self {
        Reorder {
            runs: VecDeque::new(),
            incoming: VecDeque::with_capacity(1 << 12),
            sorted: true,
            in_runs: 0,
            released_upto: i64::MIN,
            late_rows: 0,
        }
    }
}

/// Where a row of time `ts` goes in `rows` (sorted) to keep it sorted: after the rows of equal
/// time, which came first.
fn place_in(rows: &VecDeque<Event>, ts: i64) -> usize {
    rows.partition_point(|e| e.ts_ns <= ts)
}

impl Reorder {
    pub fn push(&mut self, e: Event) {
        if e.ts_ns < self.released_upto {
            self.late_rows += 1;
        }
        match self.incoming.back() {
            Some(b) if self.sorted && b.ts_ns > e.ts_ns => {
                // Out of order: in place if it overtakes only a few rows.
                let at = place_in(&self.incoming, e.ts_ns);
                if self.incoming.len() - at <= PLACE_AT_MOST {
                    self.incoming.insert(at, e);
                } else {
                    self.sorted = false;
                    self.incoming.push_back(e);
                }
            }
            _ => self.incoming.push_back(e),
        }
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
        self.in_runs = self.runs.iter().map(VecDeque::len).sum();
        self.incoming.retain(|p| p.conn_id != conn_id);
    }

    /// Turns the rows pushed since the last release into the newest run. Those older than the
    /// newest row of the runs (a record stamped on one CPU after a newer one of another CPU
    /// had been drained) are first put in place among the runs. Equal times keep arrival
    /// order, as a stable sort of every waiting row would.
    fn merge(&mut self) {
        if self.incoming.is_empty() {
            return;
        }
        if !self.sorted {
            self.incoming.make_contiguous().sort_by_key(|e| e.ts_ns);
            self.sorted = true;
        }
        self.in_runs += self.incoming.len();
        while let Some(newest) = self.runs.back().and_then(|r| r.back()).map(|b| b.ts_ns) {
            if self.incoming.front().is_none_or(|f| f.ts_ns >= newest) {
                break;
            }
            let e = self.incoming.pop_front().expect("a front row");
            // The last run whose oldest row is at or before `e` takes it; none: the first.
            let i = self.runs.iter().rposition(|r| r.front().is_some_and(|f| f.ts_ns <= e.ts_ns)).unwrap_or(0);
            let run = &mut self.runs[i];
            let at = place_in(run, e.ts_ns);
            run.insert(at, e);
        }
        if !self.incoming.is_empty() {
            let room = self.incoming.len() + self.incoming.len() / 4;
            let run = std::mem::replace(&mut self.incoming, VecDeque::with_capacity(room));
            self.runs.push_back(run);
        }
    }

    /// Rows at or before `watermark` (wall-clock ns), in time order; later rows stay.
    pub fn release(&mut self, watermark: i64) -> Vec<Event> {
        self.merge();
        let mut total = 0;
        for run in &self.runs {
            let n = run.partition_point(|e| e.ts_ns <= watermark);
            total += n;
            if n < run.len() {
                break;
            }
        }
        // Run by run, each moved the cheap way: a whole run's buffer handed over; of a run the
        // watermark falls in, the smaller part moved (in bulk, or row by row if it is the part
        // released); batches of several runs appended in bulk.
        let mut ready: Vec<Event> = Vec::new();
        let mut left = total;
        while left > 0 {
            let front = self.runs.front_mut().expect("counted rows");
            let n = left.min(front.len());
            left -= n;
            let mut part: Vec<Event> = if n == front.len() {
                Vec::from(self.runs.pop_front().expect("a front run"))
            } else if n > front.len() / 2 {
                let rest = front.split_off(n);
                Vec::from(std::mem::replace(front, rest))
            } else {
                front.drain(..n).collect()
            };
            if ready.is_empty() {
                ready = part;
                ready.reserve(left);
            } else {
                ready.append(&mut part);
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
        // Small drains (every out-of-order row put in place as it comes) and large ones (some
        // rows too far back for that, so the drain is sorted at the release).
        stable_sort_holds(40);
        stable_sort_holds(400);
    }

    fn stable_sort_holds(max_drain: u64) {
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
            for _ in 0..rnd(max_drain) {
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
