//! Exponential backoff with jitter, for everything that retries.

use std::time::Duration;

/// The delay before retry number `attempt` (1 for the first retry): `base * 2^(attempt-1)`,
/// capped at `max`, with up to a quarter taken off at random so that many retriers spread out.
pub fn delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let full = base.saturating_mul(1u32 << exp).min(max);
    let jitter = full.mul_f64(fastrand::f64() * 0.25);
    full - jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_stay_at_the_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        let first = delay(1, base, max);
        assert!(first <= base && first >= base.mul_f64(0.75), "{first:?}");
        let fourth = delay(4, base, max);
        assert!(fourth <= Duration::from_millis(800) && fourth >= Duration::from_millis(600));
        let late = delay(60, base, max);
        assert!(late <= max && late >= max.mul_f64(0.75), "{late:?}");
    }
}
