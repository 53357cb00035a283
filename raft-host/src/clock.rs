//! Logical ticks from the driver's clock. The engine asks how many ticks are due at the
//! time it is given, rather than counting wake-ups: a wake-up that comes late (a busy
//! runtime, a suspended process) still delivers every tick that elapsed, so election timers
//! and leases track real (or virtual) time.

use std::time::Duration;

/// Counts the ticks due since the last call. Times are offsets from the driver's epoch.
#[derive(Debug)]
pub(crate) struct TickClock {
    interval: Duration,
    next: Duration,
    /// Most ticks delivered at once after a long stall. Beyond a few election timeouts
    /// more ticks change nothing (every timer has expired), so the rest are skipped.
    catch_up_max: u32,
}

impl TickClock {
    pub(crate) fn new(interval: Duration, now: Duration, catch_up_max: u32) -> Self {
        TickClock {
            interval,
            next: now + interval,
            catch_up_max: catch_up_max.max(1),
        }
    }

    /// When the `ticks`-th tick from now is due (`ticks` counted from 1; 0 counts as 1),
    /// or the last tick one call to [`TickClock::due`] delivers without skipping any, if
    /// that comes sooner.
    pub(crate) fn deadline_after(&self, ticks: u64) -> Duration {
        let ticks = ticks.clamp(1, u64::from(self.catch_up_max));
        // Fits in u32: clamped to `catch_up_max` above.
        self.next + self.interval * (ticks as u32 - 1)
    }

    /// The number of ticks due at `now`; advances the schedule past them.
    pub(crate) fn due(&mut self, now: Duration) -> u32 {
        if now < self.next {
            return 0;
        }
        let behind = now - self.next;
        let ticks = 1 + behind.as_nanos() / self.interval.as_nanos().max(1);
        if ticks > u128::from(self.catch_up_max) {
            self.next = now + self.interval;
            return self.catch_up_max;
        }
        // `ticks` fits in u32 here: it is at most `catch_up_max`.
        let ticks = ticks as u32;
        self.next += self.interval * ticks;
        ticks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: ticks follow elapsed time, not the number of calls; a long stall is capped.
    #[test]
    fn ticks_follow_the_clock() {
        let ms = Duration::from_millis;
        let mut clock = TickClock::new(ms(10), ms(0), 40);
        assert_eq!(clock.due(ms(5)), 0);
        assert_eq!(clock.due(ms(10)), 1);
        assert_eq!(clock.due(ms(12)), 0);
        assert_eq!(
            clock.due(ms(45)),
            3,
            "a late wake-up delivers every due tick"
        );
        assert_eq!(clock.deadline_after(0), ms(50));
        assert_eq!(clock.deadline_after(1), ms(50));
        assert_eq!(clock.deadline_after(3), ms(70), "the third tick from now");
        assert_eq!(
            clock.deadline_after(1_000),
            ms(440),
            "capped at catch_up_max"
        );
        assert_eq!(clock.due(ms(70)), 3, "sleeping to a deadline skips no tick");
        assert_eq!(clock.due(ms(10_000)), 40, "a stall is capped");
        assert_eq!(clock.deadline_after(0), ms(10_010));
    }
}
