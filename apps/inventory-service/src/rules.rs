//! The stock rules, without I/O: reserve every line of an order or none, commit the reservation
//! when the order is confirmed, release it (or restock what was committed) when the order is
//! cancelled, never reserve for an order cancelled before this service saw it created; and what
//! an admin may set a product's stock to. Every decision has one shape: the book and an event
//! in, the book after it and the [`Reaction`] out.
//!
//! ```text
//! (none) --order.created, all lines available--> RESERVED --order.confirmed--> COMMITTED
//! (none) --order.created, a line missing--> FAILED
//! RESERVED | COMMITTED --order.cancelled--> RELEASED (stock back on the shelf)
//! (none) --order.cancelled--> cancelled mark --order.created--> FAILED (ORDER_CANCELLED, announced
//!                                                                 as released with no items)
//! (none) --order.confirmed--> not yet: handed over again until the reservation exists
//! ```
//! Oversell is impossible across instances: the store locks the product rows a batch touches
//! (in product order, so that concurrent batches cannot deadlock) before the rules run, and the
//! table refuses `reserved > on_hand`.

// A new variant of a domain enum must be decided on wherever one is matched: no `_` arms.
#![deny(clippy::wildcard_enum_match_arm)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use shared_events::{
    InventoryCommitted, InventoryFailed, InventoryFailureReason, InventoryReleased,
    InventoryReserved, OrderCreated, ProductId, Reaction, StockLine, UnavailableItem,
};
use uuid::Uuid;

/// The most stock one product may hold.
pub const MAX_ON_HAND: i64 = 1_000_000_000;

shared_events::text_enum!(ReservationStatus {
    Reserved = "RESERVED",
    Committed = "COMMITTED",
    Released = "RELEASED",
    Failed = "FAILED",
});

shared_events::text_enum!(
    /// Why a reservation failed: stock, or an order cancelled before it was seen created.
    ReservationFailure {
        InsufficientStock = "INSUFFICIENT_STOCK",
        UnknownProduct = "UNKNOWN_PRODUCT",
        OrderCancelled = "ORDER_CANCELLED",
    }
);

impl From<InventoryFailureReason> for ReservationFailure {
    fn from(reason: InventoryFailureReason) -> ReservationFailure {
        match reason {
            InventoryFailureReason::InsufficientStock => ReservationFailure::InsufficientStock,
            InventoryFailureReason::UnknownProduct => ReservationFailure::UnknownProduct,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Unknown,
    CancelledFirst,
    Reserved,
    Committed,
    Released,
    Failed,
}

/// What an input decides for an order's reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Reserve,
    /// Record the reservation as failed without touching stock: the order was cancelled first.
    Skip,
    Commit,
    Release {
        restock: bool,
    },
    MarkCancelled,
    /// Not reserved yet (the confirmation overtook the creation): try again later.
    NotYet,
}

pub fn on_created(standing: Standing) -> Option<Decision> {
    match standing {
        Standing::Unknown => Some(Decision::Reserve),
        Standing::CancelledFirst => Some(Decision::Skip),
        Standing::Reserved | Standing::Committed | Standing::Released | Standing::Failed => None,
    }
}

pub fn on_confirmed(standing: Standing) -> Option<Decision> {
    match standing {
        Standing::Reserved => Some(Decision::Commit),
        Standing::Unknown => Some(Decision::NotYet),
        Standing::CancelledFirst | Standing::Committed | Standing::Released | Standing::Failed => {
            None
        }
    }
}

pub fn on_cancelled(standing: Standing) -> Option<Decision> {
    match standing {
        Standing::Unknown => Some(Decision::MarkCancelled),
        Standing::Reserved => Some(Decision::Release { restock: false }),
        Standing::Committed => Some(Decision::Release { restock: true }),
        Standing::CancelledFirst | Standing::Released | Standing::Failed => None,
    }
}

/// Whether every requested line is available: `Err` names the reason and each short line.
pub fn check(
    requested: &BTreeMap<ProductId, u32>,
    stock: &HashMap<ProductId, i64>,
) -> Result<(), (InventoryFailureReason, Vec<UnavailableItem>)> {
    let unknown: Vec<UnavailableItem> = requested
        .iter()
        .filter(|(p, _)| !stock.contains_key(*p))
        .map(|(p, q)| UnavailableItem {
            product_id: p.clone(),
            requested: *q,
            available: 0,
        })
        .collect();
    if !unknown.is_empty() {
        return Err((InventoryFailureReason::UnknownProduct, unknown));
    }
    let short: Vec<UnavailableItem> = requested
        .iter()
        .filter_map(|(p, q)| {
            let available = stock.get(p).copied().unwrap_or(0);
            (available < i64::from(*q)).then(|| UnavailableItem {
                product_id: p.clone(),
                requested: *q,
                available,
            })
        })
        .collect();
    if short.is_empty() {
        Ok(())
    } else {
        Err((InventoryFailureReason::InsufficientStock, short))
    }
}

/// A reservation: part of the state the rules decide on (a row in the store,
/// `routes::ReservationView` in the API).
#[derive(Clone, Debug, PartialEq)]
pub struct Reservation {
    pub order_id: Uuid,
    pub reservation_id: Uuid,
    pub status: ReservationStatus,
    pub reason: Option<ReservationFailure>,
    pub items: Vec<StockLine>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub saga_id: Uuid,
}

/// What is on a product's shelf and how much of it orders hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Shelf {
    pub on_hand: i64,
    pub reserved: i64,
}

impl Shelf {
    pub fn available(self) -> i64 {
        self.on_hand - self.reserved
    }
}

/// Why an admin may not set a product's stock to a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetStockError {
    OutOfRange,
    /// Orders hold more than that.
    BelowReserved {
        reserved: i64,
    },
}

/// The set-stock rule: `on_hand` is what is on the shelf now, 0 to [`MAX_ON_HAND`], and never
/// less than what orders hold. A product not stocked before starts with nothing reserved.
pub fn set_stock(current: Option<Shelf>, on_hand: i64) -> Result<Shelf, SetStockError> {
    if !(0..=MAX_ON_HAND).contains(&on_hand) {
        return Err(SetStockError::OutOfRange);
    }
    let reserved = current.map_or(0, |s| s.reserved);
    if reserved > on_hand {
        return Err(SetStockError::BelowReserved { reserved });
    }
    Ok(Shelf { on_hand, reserved })
}

/// What can happen to a reservation, with the time it happens.
pub enum Input<'a> {
    /// The order was created: a reservation of this id is made for it (or a failed one).
    Created {
        order: &'a OrderCreated,
        reservation_id: Uuid,
        at: DateTime<Utc>,
    },
    Confirmed {
        order_id: Uuid,
        at: DateTime<Utc>,
    },
    Cancelled {
        order_id: Uuid,
        at: DateTime<Utc>,
    },
}

/// The reservations and stock a batch's orders touch: read once under locks, changed in memory
/// by the rules, written back in one statement ([`Book::changes`] says what to write).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Book {
    reservations: HashMap<Uuid, Reservation>,
    cancelled_first: HashSet<Uuid>,
    stock: HashMap<ProductId, Shelf>,
    created: Vec<Uuid>,
    moved: Vec<Uuid>,
    marked: Vec<Uuid>,
    touched: BTreeSet<ProductId>,
}

/// What a book's decisions changed, for the store to write.
pub struct Changes<'a> {
    /// Products whose stock moved, with their shelves now.
    pub shelves: Vec<(&'a ProductId, Shelf)>,
    /// New reservations.
    pub created: Vec<&'a Reservation>,
    /// Reservations stored before whose status moved, once each.
    pub moved: Vec<&'a Reservation>,
    /// Orders whose cancellation came before their creation.
    pub marked: &'a [Uuid],
}

/// Every line of the order, one per product.
fn lines(order: &OrderCreated) -> BTreeMap<ProductId, u32> {
    let mut requested: BTreeMap<ProductId, u32> = BTreeMap::new();
    for line in &order.items {
        *requested.entry(line.product_id.clone()).or_default() += line.quantity.get();
    }
    requested
}

impl Book {
    /// The book of what is stored: the orders' reservations, the orders cancelled first, and
    /// the shelves of every product they touch.
    pub fn new(
        reservations: HashMap<Uuid, Reservation>,
        cancelled_first: HashSet<Uuid>,
        stock: HashMap<ProductId, Shelf>,
    ) -> Book {
        Book {
            reservations,
            cancelled_first,
            stock,
            ..Book::default()
        }
    }

    pub fn standing(&self, order_id: Uuid) -> Standing {
        match self.reservations.get(&order_id).map(|r| r.status) {
            Some(ReservationStatus::Reserved) => Standing::Reserved,
            Some(ReservationStatus::Committed) => Standing::Committed,
            Some(ReservationStatus::Released) => Standing::Released,
            Some(ReservationStatus::Failed) => Standing::Failed,
            None if self.cancelled_first.contains(&order_id) => Standing::CancelledFirst,
            None => Standing::Unknown,
        }
    }

    pub fn reservation(&self, order_id: Uuid) -> Option<&Reservation> {
        self.reservations.get(&order_id)
    }

    pub fn shelf(&self, product_id: &ProductId) -> Option<Shelf> {
        self.stock.get(product_id).copied()
    }

    /// The book after `input`, and the event to publish (or `NotYet`).
    pub fn apply(mut self, input: Input<'_>) -> (Book, Reaction) {
        let reaction = match input {
            Input::Created {
                order,
                reservation_id,
                at,
            } => self.created(order, reservation_id, at),
            Input::Confirmed { order_id, at } => self.confirmed(order_id, at),
            Input::Cancelled { order_id, at } => self.cancelled(order_id, at),
        };
        (self, reaction)
    }

    fn record(
        &mut self,
        new: (&OrderCreated, Uuid, DateTime<Utc>),
        status: ReservationStatus,
        reason: Option<ReservationFailure>,
        items: Vec<StockLine>,
    ) -> Uuid {
        let (order, reservation_id, now) = new;
        self.reservations.insert(
            order.order_id,
            Reservation {
                order_id: order.order_id,
                reservation_id,
                status,
                reason,
                items,
                created_at: now,
                updated_at: now,
                saga_id: order.saga_id,
            },
        );
        self.created.push(order.order_id);
        reservation_id
    }

    /// Moves each line's quantity: `on_hand += on_hand_delta * q`, `reserved += reserved_delta * q`.
    fn shift(&mut self, items: &[StockLine], on_hand_delta: i64, reserved_delta: i64) {
        for line in items {
            let q = i64::from(line.quantity);
            let shelf = self.stock.entry(line.product_id.clone()).or_default();
            shelf.on_hand += on_hand_delta * q;
            shelf.reserved += reserved_delta * q;
            self.touched.insert(line.product_id.clone());
        }
    }

    /// `order.created`: reserve every line or none.
    fn created(
        &mut self,
        order: &OrderCreated,
        reservation_id: Uuid,
        at: DateTime<Utc>,
    ) -> Reaction {
        let new = (order, reservation_id, at);
        let requested = lines(order);
        let items: Vec<StockLine> = requested
            .iter()
            .map(|(p, q)| StockLine {
                product_id: p.clone(),
                quantity: *q,
            })
            .collect();
        match on_created(self.standing(order.order_id)) {
            Some(Decision::Reserve) => {}
            Some(Decision::Skip) => {
                let reservation_id = self.record(
                    new,
                    ReservationStatus::Failed,
                    Some(ReservationFailure::OrderCancelled),
                    items,
                );
                // The answer to the order: nothing was held, so nothing is released. Without
                // it the saga would wait for this service until its deadline.
                return Reaction::Emit(
                    InventoryReleased {
                        order_id: order.order_id,
                        saga_id: order.saga_id,
                        reservation_id,
                        items: Vec::new(),
                    }
                    .into(),
                );
            }
            // Not what a creation decides, or nothing to do.
            Some(
                Decision::Commit
                | Decision::Release { .. }
                | Decision::MarkCancelled
                | Decision::NotYet,
            )
            | None => return Reaction::Nothing,
        }
        let available: HashMap<ProductId, i64> = requested
            .keys()
            .filter_map(|p| self.stock.get(p).map(|s| (p.clone(), s.available())))
            .collect();
        match check(&requested, &available) {
            Ok(()) => {
                self.shift(&items, 0, 1);
                let reservation_id =
                    self.record(new, ReservationStatus::Reserved, None, items.clone());
                Reaction::Emit(
                    InventoryReserved {
                        order_id: order.order_id,
                        saga_id: order.saga_id,
                        reservation_id,
                        items,
                    }
                    .into(),
                )
            }
            Err((reason, unavailable_items)) => {
                self.record(new, ReservationStatus::Failed, Some(reason.into()), items);
                Reaction::Emit(
                    InventoryFailed {
                        order_id: order.order_id,
                        saga_id: order.saga_id,
                        reason,
                        unavailable_items,
                    }
                    .into(),
                )
            }
        }
    }

    fn set_status(
        &mut self,
        order_id: Uuid,
        status: ReservationStatus,
        at: DateTime<Utc>,
    ) -> Option<Reservation> {
        let r = self.reservations.get_mut(&order_id)?;
        r.status = status;
        r.updated_at = at;
        if !self.created.contains(&order_id) {
            self.moved.push(order_id);
        }
        Some(r.clone())
    }

    /// `order.confirmed`: stock leaves the shelf.
    fn confirmed(&mut self, order_id: Uuid, at: DateTime<Utc>) -> Reaction {
        match on_confirmed(self.standing(order_id)) {
            Some(Decision::Commit) => {
                let Some(r) = self.set_status(order_id, ReservationStatus::Committed, at) else {
                    return Reaction::Nothing;
                };
                self.shift(&r.items, -1, -1);
                Reaction::Emit(
                    InventoryCommitted {
                        order_id,
                        saga_id: r.saga_id,
                        reservation_id: r.reservation_id,
                    }
                    .into(),
                )
            }
            Some(Decision::NotYet) => {
                Reaction::NotYet(format!("order {order_id} is not reserved yet"))
            }
            // Not what a confirmation decides, or nothing to do.
            Some(
                Decision::Reserve
                | Decision::Skip
                | Decision::Release { .. }
                | Decision::MarkCancelled,
            )
            | None => Reaction::Nothing,
        }
    }

    /// `order.cancelled`: held stock is released, committed stock put back on the shelf.
    fn cancelled(&mut self, order_id: Uuid, at: DateTime<Utc>) -> Reaction {
        match on_cancelled(self.standing(order_id)) {
            Some(Decision::Release { restock }) => {
                let Some(r) = self.set_status(order_id, ReservationStatus::Released, at) else {
                    return Reaction::Nothing;
                };
                if restock {
                    self.shift(&r.items, 1, 0);
                } else {
                    self.shift(&r.items, 0, -1);
                }
                Reaction::Emit(
                    InventoryReleased {
                        order_id,
                        saga_id: r.saga_id,
                        reservation_id: r.reservation_id,
                        items: r.items,
                    }
                    .into(),
                )
            }
            Some(Decision::MarkCancelled) => {
                self.cancelled_first.insert(order_id);
                self.marked.push(order_id);
                Reaction::Nothing
            }
            // Not what a cancellation decides, or nothing to do.
            Some(Decision::Reserve | Decision::Skip | Decision::Commit | Decision::NotYet)
            | None => Reaction::Nothing,
        }
    }

    /// Whether the decisions so far changed anything to write.
    pub fn is_changed(&self) -> bool {
        !(self.touched.is_empty()
            && self.created.is_empty()
            && self.moved.is_empty()
            && self.marked.is_empty())
    }

    /// What the decisions so far changed.
    pub fn changes(&self) -> Changes<'_> {
        let mut moved: Vec<&Reservation> = self
            .moved
            .iter()
            .filter_map(|id| self.reservations.get(id))
            .collect();
        moved.sort_unstable_by_key(|r| r.reservation_id);
        moved.dedup_by_key(|r| r.reservation_id);
        Changes {
            shelves: self
                .touched
                .iter()
                .map(|p| (p, self.stock.get(p).copied().unwrap_or_default()))
                .collect(),
            created: self
                .created
                .iter()
                .filter_map(|id| self.reservations.get(id))
                .collect(),
            moved,
            marked: &self.marked,
        }
    }
}

#[cfg(test)]
#[allow(clippy::wildcard_enum_match_arm)] // a test may panic on whatever else it meets
mod tests {
    use super::*;

    use shared_events::{Currency, Event, OrderLine, Quantity};

    fn id(p: &str) -> ProductId {
        p.parse().unwrap()
    }

    fn req(lines: &[(&str, u32)]) -> BTreeMap<ProductId, u32> {
        lines.iter().map(|(p, q)| (id(p), *q)).collect()
    }

    fn stock(lines: &[(&str, i64)]) -> HashMap<ProductId, i64> {
        lines.iter().map(|(p, q)| (id(p), *q)).collect()
    }

    fn created(o: &OrderCreated) -> Input<'_> {
        Input::Created {
            order: o,
            reservation_id: Uuid::now_v7(),
            at: Utc::now(),
        }
    }

    fn order(lines: &[(&str, u64)]) -> OrderCreated {
        OrderCreated {
            order_id: Uuid::now_v7(),
            saga_id: Uuid::now_v7(),
            customer_id: "c-1".parse().unwrap(),
            items: lines
                .iter()
                .map(|(p, q)| OrderLine {
                    product_id: id(p),
                    quantity: Quantity::new(*q).unwrap(),
                    unit_price: "1".parse().unwrap(),
                })
                .collect(),
            total_amount: "1".parse().unwrap(),
            currency: Currency::euro(),
        }
    }

    /// A book over shelves `(product, on_hand, reserved)` and no reservations.
    fn shelves(rows: &[(&str, i64, i64)]) -> Book {
        let stock = rows
            .iter()
            .map(|(p, on_hand, reserved)| {
                (
                    id(p),
                    Shelf {
                        on_hand: *on_hand,
                        reserved: *reserved,
                    },
                )
            })
            .collect();
        Book::new(HashMap::new(), HashSet::new(), stock)
    }

    #[test]
    fn an_order_whose_lines_are_all_on_the_shelf_reserves_them_all() {
        let o = order(&[("a", 2), ("b", 1), ("a", 1)]);
        let (book, reaction) = shelves(&[("a", 5, 0), ("b", 1, 0)]).apply(created(&o));
        let reservation = book.reservation(o.order_id).unwrap().clone();
        assert_eq!(reservation.status, ReservationStatus::Reserved);
        assert_eq!(
            book.shelf(&id("a")),
            Some(Shelf {
                on_hand: 5,
                reserved: 3
            })
        );
        assert_eq!(book.shelf(&id("b")).unwrap().available(), 0);
        assert!(
            matches!(reaction, Reaction::Emit(Event::InventoryReserved(r)) if r.items.len() == 2
                && r.reservation_id == reservation.reservation_id)
        );
        let changes = book.changes();
        assert_eq!(changes.shelves.len(), 2);
        assert_eq!(changes.created, vec![&reservation]);
    }

    #[test]
    fn one_missing_unit_fails_the_reservation_and_touches_no_stock() {
        let o = order(&[("a", 2), ("b", 2)]);
        let (book, reaction) = shelves(&[("a", 5, 0), ("b", 3, 2)]).apply(created(&o));
        let reservation = book.reservation(o.order_id).unwrap();
        assert_eq!(reservation.status, ReservationStatus::Failed);
        assert_eq!(
            reservation.reason,
            Some(ReservationFailure::InsufficientStock)
        );
        assert!(
            matches!(reaction, Reaction::Emit(Event::InventoryFailed(f)) if f.unavailable_items[0].available == 1)
        );
        assert!(book.changes().shelves.is_empty());
    }

    #[test]
    fn confirmation_commits_and_cancellation_restocks() {
        let o = order(&[("a", 2)]);
        let (book, _) = shelves(&[("a", 5, 0)]).apply(created(&o));
        let (book, reaction) = book.apply(Input::Confirmed {
            order_id: o.order_id,
            at: Utc::now(),
        });
        assert!(matches!(
            reaction,
            Reaction::Emit(Event::InventoryCommitted(_))
        ));
        assert_eq!(
            book.shelf(&id("a")),
            Some(Shelf {
                on_hand: 3,
                reserved: 0
            })
        );
        let (book, reaction) = book.apply(Input::Cancelled {
            order_id: o.order_id,
            at: Utc::now(),
        });
        assert!(matches!(
            reaction,
            Reaction::Emit(Event::InventoryReleased(_))
        ));
        assert_eq!(
            book.shelf(&id("a")),
            Some(Shelf {
                on_hand: 5,
                reserved: 0
            })
        );
        assert_eq!(
            book.reservation(o.order_id).unwrap().status,
            ReservationStatus::Released
        );
    }

    #[test]
    fn cancelling_a_reservation_gives_back_what_it_held_once() {
        let o = order(&[("a", 4)]);
        let (book, _) = shelves(&[("a", 4, 0)]).apply(created(&o));
        let (book, _) = book.apply(Input::Cancelled {
            order_id: o.order_id,
            at: Utc::now(),
        });
        assert_eq!(
            book.shelf(&id("a")),
            Some(Shelf {
                on_hand: 4,
                reserved: 0
            })
        );
        let (again, reaction) = book.clone().apply(Input::Cancelled {
            order_id: o.order_id,
            at: Utc::now(),
        });
        assert_eq!(reaction, Reaction::Nothing);
        assert_eq!(again.shelf(&id("a")), book.shelf(&id("a")));
        let (late, reaction) = book.apply(Input::Confirmed {
            order_id: o.order_id,
            at: Utc::now(),
        });
        assert_eq!(reaction, Reaction::Nothing);
        assert_eq!(late.shelf(&id("a")).unwrap().on_hand, 4);
    }

    #[test]
    fn a_confirmation_that_overtakes_its_creation_is_not_yet_handled() {
        let o = order(&[("a", 1)]);
        let (book, reaction) = shelves(&[("a", 1, 0)]).apply(Input::Confirmed {
            order_id: o.order_id,
            at: Utc::now(),
        });
        assert!(matches!(reaction, Reaction::NotYet(_)));
        assert!(!book.is_changed());
    }

    #[test]
    fn an_order_cancelled_before_it_is_seen_never_holds_stock() {
        let o = order(&[("a", 1)]);
        let (book, reaction) = shelves(&[("a", 1, 0)]).apply(Input::Cancelled {
            order_id: o.order_id,
            at: Utc::now(),
        });
        assert_eq!(reaction, Reaction::Nothing);
        assert_eq!(book.changes().marked, &[o.order_id]);
        let (book, reaction) = book.apply(created(&o));
        let reservation = book.reservation(o.order_id).unwrap();
        assert_eq!(reservation.status, ReservationStatus::Failed);
        assert_eq!(reservation.reason, Some(ReservationFailure::OrderCancelled));
        assert_eq!(
            reaction,
            Reaction::Emit(
                InventoryReleased {
                    order_id: o.order_id,
                    saga_id: o.saga_id,
                    reservation_id: reservation.reservation_id,
                    items: Vec::new(),
                }
                .into()
            ),
            "the saga hears that nothing is held"
        );
        assert_eq!(book.shelf(&id("a")).unwrap().reserved, 0);
    }

    #[test]
    fn stock_may_be_set_within_range_and_not_below_what_orders_hold() {
        assert_eq!(
            set_stock(None, 7),
            Ok(Shelf {
                on_hand: 7,
                reserved: 0
            })
        );
        let held = Some(Shelf {
            on_hand: 10,
            reserved: 4,
        });
        assert_eq!(
            set_stock(held, 4),
            Ok(Shelf {
                on_hand: 4,
                reserved: 4
            })
        );
        assert_eq!(
            set_stock(held, 3),
            Err(SetStockError::BelowReserved { reserved: 4 })
        );
        for bad in [-1, MAX_ON_HAND + 1] {
            assert_eq!(set_stock(None, bad), Err(SetStockError::OutOfRange));
        }
    }

    #[test]
    fn all_lines_available_reserves() {
        assert!(check(&req(&[("a", 2), ("b", 5)]), &stock(&[("a", 2), ("b", 9)])).is_ok());
    }

    #[test]
    fn one_short_line_fails_the_whole_order_and_names_it() {
        let (reason, items) =
            check(&req(&[("a", 2), ("b", 5)]), &stock(&[("a", 9), ("b", 4)])).unwrap_err();
        assert_eq!(reason, InventoryFailureReason::InsufficientStock);
        assert_eq!(
            items,
            vec![UnavailableItem {
                product_id: id("b"),
                requested: 5,
                available: 4
            }]
        );
    }

    #[test]
    fn an_unknown_product_fails_with_its_own_reason() {
        let (reason, items) = check(&req(&[("a", 1), ("zz", 1)]), &stock(&[("a", 9)])).unwrap_err();
        assert_eq!(reason, InventoryFailureReason::UnknownProduct);
        assert_eq!(items[0].product_id.as_str(), "zz");
    }

    #[test]
    fn transitions_follow_the_reservation_lifecycle() {
        assert_eq!(on_created(Standing::Unknown), Some(Decision::Reserve));
        assert_eq!(on_created(Standing::CancelledFirst), Some(Decision::Skip));
        assert_eq!(on_created(Standing::Reserved), None);
        assert_eq!(on_confirmed(Standing::Reserved), Some(Decision::Commit));
        assert_eq!(on_confirmed(Standing::Unknown), Some(Decision::NotYet));
        assert_eq!(on_confirmed(Standing::Released), None);
        assert_eq!(
            on_cancelled(Standing::Reserved),
            Some(Decision::Release { restock: false })
        );
        assert_eq!(
            on_cancelled(Standing::Committed),
            Some(Decision::Release { restock: true })
        );
        assert_eq!(
            on_cancelled(Standing::Unknown),
            Some(Decision::MarkCancelled)
        );
        assert_eq!(on_cancelled(Standing::Released), None);
        assert_eq!(on_cancelled(Standing::Failed), None);
    }
}
