//! The names of the kernel's RST reasons (`enum sk_rst_reason`): the `tcp_send_reset`
//! tracepoint passes a number, its format file in tracefs lists the names. Read once per
//! recording.

use std::collections::HashMap;
use std::sync::Arc;

/// Names of `enum sk_rst_reason`, read from the `tcp_send_reset` tracepoint's format.
#[derive(Clone, Debug, Default)]
pub struct ResetReasons(HashMap<u32, Arc<str>>);

impl ResetReasons {
    /// Parses `__print_symbolic(REC->reason, { 0, "NOT_SPECIFIED" }, ...)` out of a format file.
    pub fn from_format(format: &str) -> ResetReasons {
        let mut map = HashMap::new();
        if let Some(i) = format.find("__print_symbolic(REC->reason") {
            let mut rest = &format[i..];
            while let Some(open) = rest.find("{ ") {
                rest = &rest[open + 2..];
                let Some(comma) = rest.find(',') else { break };
                let Ok(n) = rest[..comma].trim().parse::<u32>() else {
                    break;
                };
                let after = &rest[comma + 1..];
                let (Some(q1), Some(_)) = (after.find('"'), after.find('}')) else {
                    break;
                };
                let name_start = &after[q1 + 1..];
                let Some(q2) = name_start.find('"') else {
                    break;
                };
                map.insert(n, Arc::from(&name_start[..q2]));
                rest = &name_start[q2..];
            }
        }
        ResetReasons(map)
    }

    pub fn load() -> ResetReasons {
        std::fs::read_to_string("/sys/kernel/tracing/events/tcp/tcp_send_reset/format")
            .map(|f| ResetReasons::from_format(&f))
            .unwrap_or_default()
    }

    pub(crate) fn name(&self, reason: u32) -> Arc<str> {
        self.0.get(&reason).cloned().unwrap_or_else(|| Arc::from(format!("REASON_{reason}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_reason_names_come_from_the_tracepoint_format() {
        let r = ResetReasons::from_format(
            r#"print fmt: "x", REC->state ? __print_symbolic(REC->state, { 1, "TCP_ESTABLISHED" }) : "UNKNOWN", __print_symbolic(REC->reason, { 0, "NOT_SPECIFIED" }, { 1, "NO_SOCKET" }, { 12, "TCP_ABORT_ON_LINGER" })"#,
        );
        assert_eq!(&*r.name(12), "TCP_ABORT_ON_LINGER");
        assert_eq!(&*r.name(1), "NO_SOCKET");
        assert_eq!(&*r.name(99), "REASON_99");
    }
}
