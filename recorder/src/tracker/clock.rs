//! Record timestamps are CLOCK_MONOTONIC (what `bpf_ktime_get_ns` reads); rows carry wall-clock
//! time. One offset, taken when the recording starts, maps one to the other.

/// Maps CLOCK_MONOTONIC (what `bpf_ktime_get_ns` reads) to wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    offset_ns: i64,
}

impl Clock {
    pub fn now() -> Clock {
        let mono = monotonic_ns() as i64;
        let wall = realtime_ns();
        Clock { offset_ns: wall - mono }
    }

    pub fn fixed(offset_ns: i64) -> Clock {
        Clock { offset_ns }
    }

    pub fn wall(&self, mono_ns: u64) -> i64 {
        mono_ns as i64 + self.offset_ns
    }
}

pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC) as u64
}

pub fn realtime_ns() -> i64 {
    clock_ns(libc::CLOCK_REALTIME)
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}
