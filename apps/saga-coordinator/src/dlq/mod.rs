//! Every service's dead letters, in one place: the DLQ stream indexed into the `dead_letters`
//! table as they come ([`index`]), the table ([`store`]), and what operators see and do over
//! HTTP ([`routes`]: list, show, replay, discard).

pub mod index;
pub mod routes;
pub mod store;

use shared_events::text_enum;

text_enum!(
    /// Where a dead letter stands: waiting for an operator, sent again, or dropped.
    DlqStatus {
        Dead = "DEAD",
        Replayed = "REPLAYED",
        Discarded = "DISCARDED",
    }
);

impl DlqStatus {
    /// Only a `DEAD` entry may be replayed or discarded: each entry is acted on once.
    pub fn can_act(self) -> bool {
        self == DlqStatus::Dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dead_letter_still_dead_may_be_replayed_or_discarded() {
        assert!(DlqStatus::Dead.can_act());
        assert!(!DlqStatus::Replayed.can_act());
        assert!(!DlqStatus::Discarded.can_act());
    }
}
