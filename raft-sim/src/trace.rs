//! The event trace: a running digest of every event (always on, cheap) and, on request, a
//! readable log line per event.

use std::fmt::Write as _;

/// Digest plus optional readable lines.
#[derive(Debug)]
pub struct Trace {
    digest: u64,
    events: u64,
    lines: Option<Vec<String>>,
}

impl Trace {
    /// A trace; `readable` keeps a line per event.
    pub fn new(readable: bool) -> Self {
        Trace {
            digest: 0xcbf2_9ce4_8422_2325,
            events: 0,
            lines: readable.then(Vec::new),
        }
    }

    /// Folds an event into the digest: its time, a kind code and two details.
    pub fn event(&mut self, now_us: u64, code: u64, a: u64, b: u64) {
        self.events += 1;
        for word in [now_us, code, a, b] {
            for byte in word.to_le_bytes() {
                self.digest ^= u64::from(byte);
                self.digest = self.digest.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }

    /// Whether readable lines are kept.
    pub fn readable(&self) -> bool {
        self.lines.is_some()
    }

    /// Adds a readable line (ignored unless readable). Also folded into the digest, so
    /// everything written is covered.
    pub fn line(&mut self, now_us: u64, text: impl FnOnce() -> String) {
        if let Some(lines) = self.lines.as_mut() {
            let mut line = String::new();
            let _ = write!(line, "{:>10}.{:03}ms  ", now_us / 1000, now_us % 1000);
            line.push_str(&text());
            lines.push(line);
        }
    }

    /// Number of events folded in.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The digest as 16 hex digits.
    pub fn digest_hex(&self) -> String {
        format!("{:016x}", self.digest)
    }

    /// The readable lines (empty unless readable).
    pub fn take_lines(&mut self) -> Vec<String> {
        self.lines.take().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_every_field_and_order() {
        let digest = |events: &[(u64, u64, u64, u64)]| {
            let mut t = Trace::new(false);
            for &(a, b, c, d) in events {
                t.event(a, b, c, d);
            }
            t.digest_hex()
        };
        let base = digest(&[(1, 2, 3, 4), (5, 6, 7, 8)]);
        assert_eq!(base, digest(&[(1, 2, 3, 4), (5, 6, 7, 8)]));
        assert_ne!(base, digest(&[(5, 6, 7, 8), (1, 2, 3, 4)]));
        assert_ne!(base, digest(&[(1, 2, 3, 4), (5, 6, 7, 9)]));
        assert_eq!(base.len(), 16);
    }
}
