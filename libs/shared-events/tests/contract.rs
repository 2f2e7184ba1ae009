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
    assert_eq!(EventKind::ALL.len(), 12);
    let mut subjects: Vec<_> = EventKind::ALL.iter().map(|k| k.subject()).collect();
    for kind in EventKind::ALL {
        let prefix = kind.stream().subjects().trim_end_matches('>');
        assert!(kind.subject().starts_with(prefix), "{kind:?}");
        assert_eq!(EventKind::from_subject(kind.subject()), Some(*kind));
    }
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 12);
    assert_eq!(EventKind::OrderCreated.subject(), "order.created.v1");
    assert_eq!(EventKind::SagaAborted.stream().name(), "SAGAS");
}

#[test]
fn an_envelope_reads_back_as_written_with_camel_case_fields() {
    let env = Envelope::new(created(), Uuid::now_v7(), None, "order-service");
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
    let mut json: serde_json::Value = serde_json::from_slice(&env.to_bytes()).unwrap();
    json["traceParent"] = "00-abc".into();
    json["payload"]["giftWrap"] = true.into();
    json["payload"]["items"][0]["colour"] = "red".into();
    let decoded = Envelope::decode(&serde_json::to_vec(&json).unwrap()).unwrap();
    assert_eq!(decoded, env);
}

#[test]
fn an_unknown_major_version_is_a_typed_error() {
    let env = Envelope::new(created(), Uuid::now_v7(), None, "order-service");
    let mut json: serde_json::Value = serde_json::from_slice(&env.to_bytes()).unwrap();
    json["version"] = 2.into();
    match Envelope::decode(&serde_json::to_vec(&json).unwrap()) {
        Err(DecodeError::UnknownVersion {
            event_type,
            version,
        }) => {
            assert_eq!(event_type, "order.created");
            assert_eq!(version, 2);
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
    let mut json: serde_json::Value = serde_json::from_slice(&env.to_bytes()).unwrap();
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
