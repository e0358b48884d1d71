//! Replays of several hosts: one [`Processor`] per host, so that each host's connections,
//! open counts and averages are its own, and one snapshot of all of them, each series
//! labelled with its host (see `model`, "The `host` label").
//!
//! A replay of one host (one recording, or several recordings of the same host) has one
//! processor and no `host` label, so its series are exactly a single recording's.

use crate::model::Snapshot;
use crate::processor::{Processor, ProcessorOptions, Totals};

/// The `host` value of the hosts beyond the bound.
pub const OTHER: &str = "other";

/// The processors of a replay, one per host.
pub struct Hosts {
    processors: Vec<Processor>,
}

impl Hosts {
    /// One processor for everything, without a `host` label.
    pub fn single(p: Processor) -> Self {
        Hosts { processors: vec![p] }
    }

    /// Processors for `hosts` (the `host` of each input with its row count), at most
    /// `opts.top_n` of them by rows (ties by name) with a label of their own and the rest
    /// together as [`OTHER`]; returns them with, for each input, the index of its processor.
    /// Inputs of only one host get [`Hosts::single`].
    pub fn for_inputs(opts: &ProcessorOptions, hosts: &[(&str, u64)]) -> (Self, Vec<usize>) {
        let mut rows: Vec<(&str, u64)> = Vec::new();
        for &(h, n) in hosts {
            match rows.iter_mut().find(|(name, _)| *name == h) {
                Some(r) => r.1 += n,
                None => rows.push((h, n)),
            }
        }
        if rows.len() <= 1 {
            return (Hosts::single(Processor::new(opts.clone())), vec![0; hosts.len()]);
        }
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let keep = opts.top_n.max(1).min(rows.len());
        let mut names: Vec<&str> = rows[..keep].iter().map(|r| r.0).collect();
        names.sort_unstable();
        if keep < rows.len() {
            names.push(OTHER);
        }
        let processors = names
            .iter()
            .map(|n| {
                let mut p = Processor::new(opts.clone());
                p.set_host(*n);
                p
            })
            .collect();
        let index =
            hosts.iter().map(|(h, _)| names[..keep].iter().position(|n| n == h).unwrap_or(names.len() - 1)).collect();
        (Hosts { processors }, index)
    }

    /// The processor of host `i` (an index [`Hosts::for_inputs`] returned).
    pub fn host(&mut self, i: usize) -> &mut Processor {
        let last = self.processors.len() - 1;
        &mut self.processors[i.min(last)]
    }

    /// Feeds events to the first host's processor (the only one of a single-host replay).
    pub fn process_all(&mut self, events: &[gespann_common::Event]) {
        self.host(0).process_all(events);
    }

    /// [`Processor::process`] on the first host.
    pub fn process(&mut self, e: &gespann_common::Event) {
        self.host(0).process(e);
    }

    /// Moves every host's clock forward.
    pub fn advance_clock(&mut self, now_ns: i64) {
        for p in &mut self.processors {
            p.advance_clock(now_ns);
        }
    }

    /// The recorder's lost-event count, for a single-host replay (or the first host).
    pub fn set_events_lost(&mut self, lost: u64) {
        self.host(0).set_events_lost(lost);
    }

    /// Marks the replay complete on every host.
    pub fn set_finished(&mut self) {
        for p in &mut self.processors {
            p.set_finished();
        }
    }

    pub fn options(&self) -> &ProcessorOptions {
        self.processors[0].options()
    }

    /// The totals over every host.
    pub fn totals(&self) -> Totals {
        let mut all = Totals::default();
        for p in &self.processors {
            all.add(&p.totals());
        }
        all
    }

    /// Every host's series, family by family.
    pub fn snapshot(&self) -> Snapshot {
        let mut snaps = self.processors.iter().map(Processor::snapshot);
        let Some(mut first) = snaps.next() else { return Snapshot::default() };
        for s in snaps {
            for (into, from) in first.families.iter_mut().zip(s.families) {
                debug_assert_eq!(into.metric, from.metric);
                into.series.extend(from.series);
            }
        }
        first
    }
}
