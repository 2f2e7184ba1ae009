//! The simulated payment gateway. Its decision for an order is a pure function of the seed and the
//! order id, so a redelivered event, a restart or a second instance all get the same answer, and an
//! experiment with a fixed seed repeats exactly.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// The share of charges the gateway approves, in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SuccessRate(f64);

impl SuccessRate {
    /// 90% of charges approved.
    pub const DEFAULT: SuccessRate = SuccessRate(0.9);

    pub fn new(rate: f64) -> Result<SuccessRate, String> {
        if rate.is_finite() && (0.0..=1.0).contains(&rate) {
            Ok(SuccessRate(rate))
        } else {
            Err("must be a number from 0 to 1".into())
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl FromStr for SuccessRate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let rate: f64 = s
            .trim()
            .parse()
            .map_err(|_| "must be a number from 0 to 1".to_owned())?;
        SuccessRate::new(rate)
    }
}

impl fmt::Display for SuccessRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The longest the simulated gateway may take to answer: its wait holds a batch's transaction
/// open, and a consumer's deliveries are redelivered after 30 s without an ack.
pub const MAX_LATENCY_MS: u64 = 10_000;

/// The gateway's answer time, 0 to [`MAX_LATENCY_MS`] milliseconds.
pub fn latency(ms: u64) -> Result<std::time::Duration, String> {
    if ms <= MAX_LATENCY_MS {
        Ok(std::time::Duration::from_millis(ms))
    } else {
        Err(format!(
            "must be a whole number of milliseconds from 0 to {MAX_LATENCY_MS}"
        ))
    }
}

shared_events::text_enum!(
    /// Why the gateway declines a charge.
    Decline {
        CardDeclined = "CARD_DECLINED",
        InsufficientFunds = "INSUFFICIENT_FUNDS",
        ExpiredCard = "EXPIRED_CARD",
        FraudSuspected = "FRAUD_SUSPECTED",
    }
);

/// The gateway's answer to a charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Decline(Decline),
}

/// What the gateway answers when it declines, each as likely as the others.
pub const DECLINE_REASONS: [Decline; 4] = [
    Decline::CardDeclined,
    Decline::InsufficientFunds,
    Decline::ExpiredCard,
    Decline::FraudSuspected,
];

/// The gateway as configured when a charge is made: its seed and approval rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gateway {
    pub seed: u64,
    pub rate: SuccessRate,
}

impl Gateway {
    /// The answer for `order_id`: [`decide`] with this gateway's seed and rate.
    pub fn decide(&self, order_id: Uuid) -> Verdict {
        decide(self.seed, order_id, self.rate)
    }
}

/// SplitMix64's finaliser: a fixed, well-mixing 64-bit permutation.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The gateway's answer for `order_id`. Only the id's random half counts, not its timestamp: an
/// experiment that places the same orders again (same `Idempotency-Key`s, so the same random half,
/// see order-service) on fresh databases gets the very same answers.
pub fn decide(seed: u64, order_id: Uuid, rate: SuccessRate) -> Verdict {
    let (_, random_half) = order_id.as_u64_pair();
    let h = mix(mix(seed) ^ random_half);
    // The top 53 bits as a uniform number in [0, 1).
    let draw = (h >> 11) as f64 / (1u64 << 53) as f64;
    if draw < rate.get() {
        Verdict::Approve
    } else {
        Verdict::Decline(DECLINE_REASONS[(h & 3) as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_and_order_always_get_the_same_answer() {
        let rate = SuccessRate::new(0.5).unwrap();
        for _ in 0..100 {
            let order = Uuid::now_v7();
            assert_eq!(decide(7, order, rate), decide(7, order, rate));
        }
    }

    #[test]
    fn rates_zero_and_one_are_absolute() {
        for _ in 0..1000 {
            let order = Uuid::now_v7();
            assert_eq!(
                decide(1, order, SuccessRate::new(1.0).unwrap()),
                Verdict::Approve
            );
            assert!(matches!(
                decide(1, order, SuccessRate::new(0.0).unwrap()),
                Verdict::Decline(_)
            ));
        }
    }

    #[test]
    fn over_10000_orders_the_approved_share_is_within_four_standard_deviations_of_the_rate() {
        for (seed, rate) in [(1u64, 0.9), (2, 0.5), (3, 0.95), (4, 0.1)] {
            let n = 10_000.0;
            // Fixed order ids (10,000 of them, spread by `mix`): the test gives the same answer
            // every run instead of failing by chance once in a few thousand.
            let approved = (0..10_000u64)
                .filter(|&i| {
                    let order = Uuid::from_u64_pair(i, mix(i ^ 0x5EED));
                    decide(seed, order, SuccessRate::new(rate).unwrap()) == Verdict::Approve
                })
                .count() as f64;
            let sd = (rate * (1.0 - rate) / n).sqrt();
            let share = approved / n;
            assert!(
                (share - rate).abs() <= 4.0 * sd,
                "seed {seed}: {share} vs {rate} (sd {sd})"
            );
        }
    }

    #[test]
    fn another_seed_gives_other_answers() {
        let rate = SuccessRate::new(0.5).unwrap();
        let orders: Vec<Uuid> = (0..200).map(|_| Uuid::now_v7()).collect();
        let differ = orders
            .iter()
            .filter(|o| decide(1, **o, rate) != decide(2, **o, rate))
            .count();
        assert!(differ > 20, "{differ}");
    }

    #[test]
    fn the_timestamp_half_of_the_order_id_does_not_change_the_answer() {
        let rate = SuccessRate::new(0.5).unwrap();
        for _ in 0..100 {
            let (hi, lo) = Uuid::now_v7().as_u64_pair();
            let later = Uuid::from_u64_pair(hi.wrapping_add(1 << 20), lo);
            assert_eq!(
                decide(3, Uuid::from_u64_pair(hi, lo), rate),
                decide(3, later, rate)
            );
        }
    }

    #[test]
    fn rates_outside_zero_to_one_are_refused() {
        for bad in ["1.5", "-0.1", "NaN", "inf", "ninety", ""] {
            assert!(bad.parse::<SuccessRate>().is_err(), "{bad}");
        }
        assert_eq!("0.9".parse::<SuccessRate>().unwrap().get(), 0.9);
    }
}
