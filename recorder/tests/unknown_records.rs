//! A ring-buffer record of a kind this build does not know (an object newer than the recorder)
//! is dropped and counted, never turned into a row.

use gespann_common::raw::{RawEvent, kind};
use gespann_recorder::tracker::{Clock, Followup, ResetReasons, Tracker};

#[test]
fn unknown_record_kinds_are_counted_not_recorded() {
    let mut t = Tracker::new(Clock::fixed(0), ResetReasons::default());
    for k in [0u8, kind::AMEND_ERROR + 1, 200] {
        let r = RawEvent { kind: k, conn_id: 1, ts_ns: 10, ..Default::default() };
        assert!(matches!(t.on_raw(&r), Followup::None));
    }
    assert_eq!(t.stats().unknown_records, 3);
    assert_eq!(t.stats().rows, 0);
    assert!(t.drain_all().is_empty());
}
