//! What a decision of a service's rules asks for besides its new state.
//!
//! Every service states its rules the same way, as pure functions with no I/O: state + input →
//! (new state, [`Reaction`]). The caller stores the new state and carries the reaction out.

use crate::events::Event;

#[derive(Clone, Debug, PartialEq)]
pub enum Reaction {
    /// Nothing for others to hear of: the input changed nothing, or changed only what is
    /// stored.
    Nothing,
    /// Publish this event, caused by the input.
    Emit(Event),
    /// The input came before something it depends on: hand it over again later. Says why.
    NotYet(String),
}

impl Reaction {
    /// The event to publish, if any.
    pub fn event(&self) -> Option<&Event> {
        match self {
            Reaction::Emit(event) => Some(event),
            Reaction::Nothing | Reaction::NotYet(_) => None,
        }
    }
}

impl<E: Into<Event>> From<Option<E>> for Reaction {
    fn from(event: Option<E>) -> Reaction {
        event.map_or(Reaction::Nothing, |e| Reaction::Emit(e.into()))
    }
}
