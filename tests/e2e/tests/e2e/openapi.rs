//! Each service's OpenAPI 3.1 document is generated from its code, served at `GET /openapi.json`,
//! and checked into `docs/openapi/<service>.json`; this test fails when they drift apart.
//!
//! After changing an API: `UPDATE_OPENAPI=1 cargo test -p e2e --test e2e openapi::` rewrites the files.

use std::path::PathBuf;

use crate::common::*;
use serde_json::Value;
use service_kit::api::render;

fn documents() -> Vec<(Svc, &'static str, utoipa::openapi::OpenApi)> {
    vec![
        (Svc::Order, order_service::SERVICE, order_service::openapi()),
        (
            Svc::Payment,
            payment_service::SERVICE,
            payment_service::openapi(),
        ),
        (
            Svc::Inventory,
            inventory_service::SERVICE,
            inventory_service::openapi(),
        ),
        (
            Svc::Saga,
            saga_coordinator::SERVICE,
            saga_coordinator::openapi(),
        ),
    ]
}

fn checked_in(service: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/openapi")
        .join(format!("{service}.json"))
}

#[test]
fn the_checked_in_documents_are_the_codes() {
    let update = std::env::var_os("UPDATE_OPENAPI").is_some();
    let mut drifted = Vec::new();
    for (_, service, document) in documents() {
        let text = render(&document);
        let path = checked_in(service);
        if update {
            std::fs::create_dir_all(path.parent().expect("docs/openapi")).expect("mkdir");
            std::fs::write(&path, &text).expect("write the document");
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != text {
            drifted.push(path.display().to_string());
        }
        let json: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(json["openapi"], "3.1.0", "{service}");
        assert!(
            json["paths"]
                .as_object()
                .is_some_and(|p| p.contains_key("/openapi.json")),
            "{service} describes its own description"
        );
    }
    assert!(
        drifted.is_empty(),
        "out of date (run `UPDATE_OPENAPI=1 cargo test -p e2e --test e2e openapi::`): {drifted:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_serves_its_document() {
    let stack = Stack::start(Options::default()).await;
    for (svc, service, document) in documents() {
        let (status, served) = stack.get(svc, "/openapi.json").await;
        assert_eq!(status, 200, "{service}");
        assert_eq!(
            served,
            serde_json::to_value(&document).expect("JSON"),
            "{service} serves another document than its code describes"
        );
    }
}
