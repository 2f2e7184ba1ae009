//! The gate on the real checked-in files, changed the way they would be regenerated after a
//! change to the code (`export-schemas`, `UPDATE_OPENAPI=1`): the drift tests would then pass,
//! and the gate is what still fails the change. The baseline is the working tree's files; the
//! gate's own run (scripts/test.sh) compares them with the last release.

use std::path::Path;

use compat_gate::{Releases, Report, Snapshot, compare};
use serde_json::{Value, json};

const ORDER_CREATED: &str = "order.created.v1.schema.json";
const ORDER_SERVICE: &str = "order-service.json";

fn checked_in() -> Snapshot {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    Snapshot::working_tree(&repo).expect("the checked-in files")
}

/// `base` with one event schema rewritten by `change`.
fn event_changed(base: &Snapshot, file: &str, change: impl FnOnce(&mut Value)) -> Snapshot {
    let mut out = base.clone();
    let text = out.events.get_mut(file).expect("the event's schema");
    *text = changed(text, change);
    out
}

/// `base` with one OpenAPI document rewritten by `change`.
fn document_changed(base: &Snapshot, file: &str, change: impl FnOnce(&mut Value)) -> Snapshot {
    let mut out = base.clone();
    let text = out.openapi.get_mut(file).expect("the service's document");
    *text = changed(text, change);
    out
}

fn changed(text: &str, change: impl FnOnce(&mut Value)) -> String {
    let mut value: Value = serde_json::from_str(text).expect("JSON");
    change(&mut value);
    serde_json::to_string_pretty(&value).expect("JSON") + "\n"
}

fn gate(old: &Snapshot, new: &Snapshot) -> Report {
    compare(old, new, &Releases::default()).expect("the gate decides")
}

fn at<'a>(value: &'a mut Value, pointer: &str) -> &'a mut Value {
    value
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}"))
}

fn required_list<'a>(value: &'a mut Value, pointer: &str) -> &'a mut Vec<Value> {
    at(value, pointer).as_array_mut().expect("required")
}

/// The one breach of `subject` at `field`, in words.
fn the_breach(report: &Report, subject: &str, field: &str) -> String {
    let found: Vec<_> = report.breaches_of(subject, field).collect();
    assert_eq!(
        found.len(),
        1,
        "one breach of {subject} {field}, got {:#?}",
        report.breaches
    );
    found[0].what.clone()
}

#[test]
fn the_checked_in_files_pass_against_themselves() {
    let base = checked_in();
    let report = gate(&base, &base);
    assert!(report.passed(), "{:#?}", report.breaches);
    assert!(report.additive.is_empty(), "{:#?}", report.additive);
    assert_eq!(report.events, base.events.len());
    assert_eq!(report.documents, base.openapi.len());
    assert!(report.events >= 12 && report.documents >= 4 && report.routes >= 40);
}

#[test]
fn renaming_customer_id_fails_naming_the_event_and_the_field() {
    let base = checked_in();
    let new = event_changed(&base, ORDER_CREATED, |schema| {
        let properties = at(schema, "/$defs/OrderCreated/properties")
            .as_object_mut()
            .expect("properties");
        let customer = properties.remove("customerId").expect("customerId");
        properties.insert("customer".into(), customer);
        for name in required_list(schema, "/$defs/OrderCreated/required") {
            if name == "customerId" {
                *name = json!("customer");
            }
        }
    });
    let report = gate(&base, &new);
    assert_eq!(
        the_breach(&report, "order.created.v1", "payload.customerId"),
        "removed or renamed"
    );
    assert!(
        the_breach(&report, "order.created.v1", "payload.customer").starts_with("new and required")
    );
}

#[test]
fn retyping_quantity_to_a_string_fails() {
    let base = checked_in();
    let new = event_changed(&base, ORDER_CREATED, |schema| {
        *at(schema, "/$defs/Quantity") = json!({ "type": "string" });
    });
    let report = gate(&base, &new);
    let what = the_breach(&report, "order.created.v1", "payload.items[].quantity");
    assert!(
        what.contains("type integer removed") && what.contains("type string added"),
        "{what}"
    );
}

#[test]
fn a_new_required_field_fails() {
    let base = checked_in();
    let new = event_changed(&base, ORDER_CREATED, |schema| {
        at(schema, "/$defs/OrderCreated/properties")["channel"] = json!({ "type": "string" });
        required_list(schema, "/$defs/OrderCreated/required").push(json!("channel"));
    });
    let report = gate(&base, &new);
    assert!(
        the_breach(&report, "order.created.v1", "payload.channel").starts_with("new and required")
    );
}

#[test]
fn an_existing_field_made_required_fails() {
    let base = checked_in();
    let new = event_changed(&base, "order.cancelled.v1.schema.json", |schema| {
        required_list(schema, "/$defs/OrderCancelled/required").push(json!("detail"));
    });
    let report = gate(&base, &new);
    assert_eq!(
        the_breach(&report, "order.cancelled.v1", "payload.detail"),
        "now required"
    );
}

#[test]
fn removing_a_field_fails() {
    let base = checked_in();
    let new = event_changed(&base, ORDER_CREATED, |schema| {
        at(schema, "/$defs/OrderCreated/properties")
            .as_object_mut()
            .expect("properties")
            .remove("currency");
        required_list(schema, "/$defs/OrderCreated/required").retain(|n| n != "currency");
    });
    let report = gate(&base, &new);
    assert_eq!(
        the_breach(&report, "order.created.v1", "payload.currency"),
        "removed or renamed"
    );
}

#[test]
fn a_new_optional_field_passes() {
    let base = checked_in();
    let new = event_changed(&base, ORDER_CREATED, |schema| {
        at(schema, "/$defs/OrderCreated/properties")["note"] =
            json!({ "type": ["string", "null"] });
    });
    let report = gate(&base, &new);
    assert!(report.passed(), "{:#?}", report.breaches);
    let added: Vec<String> = report.additive.iter().map(ToString::to_string).collect();
    assert_eq!(
        added,
        ["order.created.v1: payload.note: new optional property"]
    );
}

#[test]
fn a_removed_enum_value_fails_and_a_new_one_passes() {
    let base = checked_in();
    let new = event_changed(&base, "saga.aborted.v1.schema.json", |schema| {
        let values = at(schema, "/$defs/AbortReason/enum")
            .as_array_mut()
            .expect("enum");
        values.retain(|v| v != "OPERATOR");
        values.push(json!("FRAUD"));
    });
    let report = gate(&base, &new);
    assert_eq!(
        the_breach(&report, "saga.aborted.v1", "payload.reason"),
        "enum value \"OPERATOR\" removed"
    );
    assert!(
        report
            .additive
            .iter()
            .any(|a| a.to_string() == "saga.aborted.v1: payload.reason: new enum value \"FRAUD\"")
    );
}

#[test]
fn a_changed_const_fails() {
    let base = checked_in();
    let new = event_changed(&base, ORDER_CREATED, |schema| {
        *at(schema, "/properties/version") = json!({ "const": 2 });
    });
    let report = gate(&base, &new);
    assert_eq!(
        the_breach(&report, "order.created.v1", "version"),
        "const 1 removed; const 2 added"
    );
}

#[test]
fn a_new_major_beside_the_old_one_passes() {
    let base = checked_in();
    let mut new = base.clone();
    let v2 = changed(&base.events[ORDER_CREATED], |schema| {
        schema["$id"] = json!("order.created.v3.schema.json");
        schema["title"] = json!("order.created.v3");
        *at(schema, "/properties/version") = json!({ "const": 3 });
        *at(schema, "/$defs/Money") = json!({ "type": "integer", "minimum": 0 });
    });
    new.events.insert("order.created.v3.schema.json".into(), v2);
    let report = gate(&base, &new);
    assert!(report.passed(), "{:#?}", report.breaches);
    let added: Vec<String> = report.additive.iter().map(ToString::to_string).collect();
    assert_eq!(added, ["order.created.v3: new event schema"]);
}

#[test]
fn removing_an_event_major_fails_unless_it_is_retired() {
    let base = checked_in();
    let mut new = base.clone();
    new.events.remove(ORDER_CREATED);
    let report = gate(&base, &new);
    assert!(the_breach(&report, "order.created.v1", "").contains("is gone"));

    let releases = compat_gate::releases::parse(
        "| version | commit | date | notes |\n|---|---|---|---|\n\
         | 0.1.0 | 81c6e2c | 2026-12-04 | |\n\n\
         | subject | retired in | notes |\n|---|---|---|\n\
         | order.created.v1 | 0.3.0 | order.created.v2 replaces it |\n",
    )
    .expect("releases");
    let report = compare(&base, &new, &releases).expect("the gate decides");
    assert!(report.passed(), "{:#?}", report.breaches);
}

#[test]
fn removing_a_response_field_of_get_order_fails() {
    let base = checked_in();
    let new = document_changed(&base, ORDER_SERVICE, |doc| {
        at(doc, "/components/schemas/Order/properties")
            .as_object_mut()
            .expect("properties")
            .remove("updatedAt");
        required_list(doc, "/components/schemas/Order/required").retain(|n| n != "updatedAt");
    });
    let report = gate(&base, &new);
    assert_eq!(
        the_breach(&report, "GET /orders/{order_id}", "response 200: updatedAt"),
        "removed or renamed"
    );
}

#[test]
fn a_new_required_request_field_on_post_orders_fails() {
    let base = checked_in();
    let new = document_changed(&base, ORDER_SERVICE, |doc| {
        at(doc, "/components/schemas/CreateOrder/properties")["channel"] =
            json!({ "type": "string" });
        required_list(doc, "/components/schemas/CreateOrder/required").push(json!("channel"));
    });
    let report = gate(&base, &new);
    assert!(
        the_breach(&report, "POST /orders", "request body: channel")
            .starts_with("new and required")
    );
    assert_eq!(report.breaches.len(), 1, "{:#?}", report.breaches);
}

#[test]
fn a_change_behind_a_nullable_reference_is_seen() {
    // `cancellationReason` is `oneOf: [null, AbortReason]`, which json-schema-diff alone skips.
    let base = checked_in();
    let new = document_changed(&base, ORDER_SERVICE, |doc| {
        at(doc, "/components/schemas/AbortReason/enum")
            .as_array_mut()
            .expect("enum")
            .retain(|v| v != "OPERATOR");
    });
    let report = gate(&base, &new);
    assert_eq!(
        the_breach(
            &report,
            "GET /orders/{order_id}",
            "response 200: cancellationReason"
        ),
        "enum value \"OPERATOR\" removed"
    );
}

#[test]
fn a_changed_money_precision_fails() {
    // `multipleOf` is one of the keywords json-schema-diff does not compare.
    let base = checked_in();
    let new = document_changed(&base, ORDER_SERVICE, |doc| {
        *at(doc, "/components/schemas/Money/multipleOf") = json!(0.001);
    });
    let report = gate(&base, &new);
    assert_eq!(
        the_breach(&report, "POST /orders", "request body: items[].unitPrice"),
        "multipleOf 0.01 became 0.001"
    );
}

#[test]
fn a_removed_route_fails_and_a_new_path_passes() {
    let base = checked_in();
    let new = document_changed(&base, ORDER_SERVICE, |doc| {
        let paths = at(doc, "/paths").as_object_mut().expect("paths");
        let get_one = paths.remove("/orders/{order_id}").expect("the route");
        paths.insert("/v2/orders/{order_id}".into(), get_one);
    });
    let report = gate(&base, &new);
    assert_eq!(
        the_breach(&report, "GET /orders/{order_id}", ""),
        "route removed"
    );
    assert_eq!(report.breaches.len(), 1, "{:#?}", report.breaches);
    assert!(
        report
            .additive
            .iter()
            .any(|a| a.to_string() == "GET /v2/orders/{order_id} (order-service): new route")
    );
}
