//! The wire contract: subjects, envelopes, tolerant decoding, and the checked-in JSON Schemas.

use schemars::JsonSchema;
use serde::Serialize;
use shared_events::schema;
use shared_events::*;
use uuid::Uuid;

fn created() -> OrderCreated {
    OrderCreated {
        order_id: Uuid::now_v7(),
        saga_id: Uuid::now_v7(),
        customer_id: "c-1".parse().expect("customer"),
        items: vec![OrderLine {
            product_id: "p-1".parse().expect("product"),
            quantity: Quantity::new(2).expect("quantity"),
            unit_price: "19.99".parse().expect("money"),
        }],
        total_amount: "39.98".parse().expect("money"),
        currency: Currency::euro(),
    }
}

#[test]
fn every_event_has_a_subject_in_its_stream_and_subjects_are_unique() {
    assert_eq!(EventKind::ALL.len(), 16);
    let mut subjects: Vec<_> = EventKind::ALL.iter().map(|k| k.subject()).collect();
    for kind in EventKind::ALL {
        let prefix = kind.stream().subjects().trim_end_matches('>');
        assert!(kind.subject().starts_with(prefix), "{kind:?}");
        assert_eq!(EventKind::from_subject(kind.subject()), Some(*kind));
    }
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 16);
    assert_eq!(EventKind::OrderCreatedV2.subject(), "order.created.v2");
    assert_eq!(EventKind::OrderCreatedV2.stream().name(), "ORDERS");
    assert_eq!(
        EventKind::PaymentRefunded.majors().collect::<Vec<_>>(),
        [EventKind::PaymentRefunded, EventKind::PaymentRefundedV2]
    );
    assert_eq!(
        EventKind::SagaAborted.majors().collect::<Vec<_>>(),
        [EventKind::SagaAborted]
    );
    assert_eq!(EventKind::OrderCreated.subject(), "order.created.v1");
    assert_eq!(EventKind::SagaAborted.stream().name(), "SAGAS");
}

/// `created()` as it travels in the first major.
fn v1(env: &Envelope) -> Vec<u8> {
    env.encode(EventKind::OrderCreated).expect("v1 carries it")
}

#[test]
fn an_envelope_reads_back_as_written_with_camel_case_fields() {
    let mut env = Envelope::new(created(), Uuid::now_v7(), None, "order-service");
    assert_eq!(env.version, 2, "a new event is in its newest major");
    env.version = 1;
    let bytes = env.to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json["eventType"], "order.created");
    assert_eq!(json["version"], 1);
    assert_eq!(json["causationId"], serde_json::Value::Null);
    assert_eq!(json["payload"]["totalAmount"], serde_json::json!(39.98));
    assert_eq!(
        json["payload"]["items"][0]["unitPrice"],
        serde_json::json!(19.99)
    );
    assert_eq!(Envelope::decode(&bytes).unwrap(), env);
}

#[test]
fn unknown_fields_are_ignored_in_envelope_and_payload() {
    let env = Envelope::new(created(), Uuid::now_v7(), None, "order-service");
    let mut json: serde_json::Value = serde_json::from_slice(&v1(&env)).unwrap();
    json["traceParent"] = "00-abc".into();
    json["payload"]["giftWrap"] = true.into();
    json["payload"]["items"][0]["colour"] = "red".into();
    let decoded = Envelope::decode(&serde_json::to_vec(&json).unwrap()).unwrap();
    assert_eq!(decoded.payload, env.payload);
    assert_eq!(decoded.version, 1);
}

#[test]
fn an_unknown_major_version_is_a_typed_error() {
    let env = Envelope::new(created(), Uuid::now_v7(), None, "order-service");
    let mut json: serde_json::Value = serde_json::from_slice(&v1(&env)).unwrap();
    json["version"] = 3.into();
    match Envelope::decode(&serde_json::to_vec(&json).unwrap()) {
        Err(DecodeError::UnknownVersion {
            event_type,
            version,
        }) => {
            assert_eq!(event_type, "order.created");
            assert_eq!(version, 3);
        }
        other => panic!("expected UnknownVersion, got {other:?}"),
    }
    json["eventType"] = "order.teleported".into();
    let err = Envelope::decode(&serde_json::to_vec(&json).unwrap()).unwrap_err();
    assert_eq!(err.code(), "UNKNOWN_EVENT_TYPE");
}

#[test]
fn garbage_and_bad_payloads_are_typed_errors() {
    assert_eq!(
        Envelope::decode(b"not json").unwrap_err().code(),
        "MALFORMED"
    );
    assert_eq!(Envelope::decode(b"{}").unwrap_err().code(), "MALFORMED");
    let env = Envelope::new(created(), Uuid::now_v7(), None, "order-service");
    let mut json: serde_json::Value = serde_json::from_slice(&v1(&env)).unwrap();
    json["payload"]["totalAmount"] = serde_json::json!(1.999);
    let err = Envelope::decode(&serde_json::to_vec(&json).unwrap()).unwrap_err();
    assert_eq!(err.code(), "INVALID_PAYLOAD");
}

#[test]
fn checked_in_schemas_match_the_types() {
    let problems = schema::drift(&schema::default_dir());
    assert!(
        problems.is_empty(),
        "docs/events is out of date; run `cargo run -p shared-events --bin export-schemas`:\n{}",
        problems.join("\n")
    );
}

/// `order.created.v1` as it would be with one more field: what a developer adding a field
/// produces before regenerating the docs.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct OrderCreatedWithNewField {
    #[serde(flatten)]
    base: OrderCreated,
    gift_wrap: bool,
}

#[test]
fn adding_a_field_without_regenerating_the_schemas_is_drift() {
    let dir = schema::default_dir();
    let kind = EventKind::OrderCreated;
    assert!(schema::check(&dir, kind, &schema::of(kind)).is_ok());
    let changed = schema::envelope_schema::<OrderCreatedWithNewField>(kind);
    let err = schema::check(&dir, kind, &changed).unwrap_err();
    assert!(err.contains("order.created.v1"), "{err}");
}

#[test]
fn schemas_describe_money_as_an_exact_number_and_pin_type_and_version() {
    let schema = schema::of(EventKind::PaymentConfirmed);
    let text = serde_json::to_string(&schema).unwrap();
    assert!(text.contains("\"multipleOf\":0.01"), "{text}");
    assert_eq!(schema.get("title").unwrap(), "payment.confirmed.v1");
    let props = schema.get("properties").unwrap();
    assert_eq!(props["eventType"]["const"], "payment.confirmed");
    assert_eq!(props["version"]["const"], 1);
}

/// Decodes every copy of `env` and checks each is the same event.
fn copies_of(env: &Envelope, majors: &str) -> Vec<(EventKind, serde_json::Value)> {
    let majors = Majors::parse(majors).expect("majors");
    env.copies(&majors)
        .expect("some major carries it")
        .into_iter()
        .map(|(kind, body)| {
            let decoded = Envelope::decode(&body).expect("a copy decodes");
            assert_eq!(
                decoded.payload, env.payload,
                "{kind:?} reads back as the same event"
            );
            assert_eq!(
                decoded.event_id, env.event_id,
                "one event id for every copy"
            );
            assert_eq!(decoded.subject(), kind.subject());
            (kind, serde_json::from_slice(&body).expect("json"))
        })
        .collect()
}

#[test]
fn an_event_with_a_second_major_is_published_in_both_with_one_event_id() {
    let env = Envelope::new(created(), Uuid::now_v7(), None, "order-service");
    let copies = copies_of(&env, "1,2");
    let kinds: Vec<EventKind> = copies.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, [EventKind::OrderCreated, EventKind::OrderCreatedV2]);
    let (v1, v2) = (&copies[0].1, &copies[1].1);
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["payload"]["totalAmount"], serde_json::json!(39.98));
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["eventType"], "order.created");
    assert_eq!(v2["payload"]["totalAmount"], serde_json::json!(3998));
    assert_eq!(
        v2["payload"]["items"][0]["unitPrice"],
        serde_json::json!(1999)
    );
    assert_eq!(v2["payload"]["currency"], "EUR");
    // The old major retired by configuration.
    let kinds: Vec<EventKind> = copies_of(&env, "2").iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, [EventKind::OrderCreatedV2]);
    let kinds: Vec<EventKind> = copies_of(&env, "1").iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, [EventKind::OrderCreated]);
}

#[test]
fn each_copy_has_its_own_message_id() {
    let id = Uuid::now_v7();
    assert_eq!(EventKind::OrderCreated.message_id(id), id.to_string());
    assert_eq!(EventKind::OrderCreatedV2.message_id(id), format!("{id}-v2"));
}

#[test]
fn an_event_without_a_second_major_keeps_its_first_when_only_the_second_is_published() {
    let confirmed = OrderConfirmed {
        order_id: Uuid::now_v7(),
        saga_id: Uuid::now_v7(),
        payment_id: Uuid::now_v7(),
        reservation_id: Uuid::now_v7(),
    };
    let env = Envelope::new(confirmed, Uuid::now_v7(), None, "order-service");
    let kinds: Vec<EventKind> = copies_of(&env, "2").iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, [EventKind::OrderConfirmed]);
}

#[test]
fn amounts_travel_in_minor_units_of_each_currency() {
    let mut order = created();
    order.currency = Currency::parse("JPY").unwrap();
    order.items[0].unit_price = "1999".parse().unwrap();
    order.total_amount = "3998".parse().unwrap();
    let env = Envelope::new(order, Uuid::now_v7(), None, "order-service");
    let copies = copies_of(&env, "1,2");
    assert_eq!(
        copies[1].1["payload"]["totalAmount"],
        serde_json::json!(3998)
    );
    assert_eq!(
        copies[0].1["payload"]["totalAmount"],
        serde_json::json!(3998)
    );

    // Fils: three decimals, which only the second major carries.
    let refund = PaymentRefunded {
        order_id: Uuid::now_v7(),
        saga_id: Uuid::now_v7(),
        payment_id: Uuid::now_v7(),
        amount: "1.234".parse().unwrap(),
        currency: Currency::parse("BHD").unwrap(),
    };
    let env = Envelope::new(refund, Uuid::now_v7(), None, "payment-service");
    let copies = copies_of(&env, "1,2");
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].0, EventKind::PaymentRefundedV2);
    assert_eq!(copies[0].1["payload"]["amount"], serde_json::json!(1234));
    // Even when only the first is asked for: the event is never dropped.
    assert_eq!(copies_of(&env, "1")[0].0, EventKind::PaymentRefundedV2);

    // Cents in yen (taken before amounts were checked against the currency): only v1 has them.
    let mut old = created();
    old.currency = Currency::parse("JPY").unwrap();
    let env = Envelope::new(old, Uuid::now_v7(), None, "order-service");
    let copies = copies_of(&env, "1,2");
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].0, EventKind::OrderCreated);
}

#[test]
fn a_v1_amount_with_three_decimals_and_a_v2_amount_that_is_not_whole_are_invalid() {
    let env = Envelope::new(created(), Uuid::now_v7(), None, "order-service");
    let mut json: serde_json::Value =
        serde_json::from_slice(&env.encode(EventKind::OrderCreatedV2).unwrap()).unwrap();
    json["payload"]["totalAmount"] = serde_json::json!(39.98);
    let err = Envelope::decode(&serde_json::to_vec(&json).unwrap()).unwrap_err();
    assert_eq!(err.code(), "INVALID_PAYLOAD");
    json["payload"]["totalAmount"] = serde_json::json!(-5);
    let err = Envelope::decode(&serde_json::to_vec(&json).unwrap()).unwrap_err();
    assert_eq!(err.code(), "INVALID_PAYLOAD");
}

#[test]
fn the_second_major_schema_has_integer_amounts() {
    let schema = schema::of(EventKind::OrderCreatedV2);
    assert_eq!(schema.get("title").unwrap(), "order.created.v2");
    let text = serde_json::to_string(&schema).unwrap();
    assert!(text.contains("\"MinorUnits\""), "{text}");
    let props = schema.get("properties").unwrap();
    assert_eq!(props["version"]["const"], 2);
    let defs = schema.get("$defs").unwrap();
    assert_eq!(defs["MinorUnits"]["type"], "integer");
}
