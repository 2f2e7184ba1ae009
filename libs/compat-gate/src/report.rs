//! What the gate found: breaches, which fail it, and additive changes, which pass. Each names the
//! event or route, and the field.

use std::fmt;

/// Where a change is: the event major or the HTTP operation a reader of the last release uses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    /// An event major, by subject: `order.created.v1`.
    Event(String),
    /// One operation of a service's HTTP API: `GET /orders/{order_id}` of `order-service`.
    Route {
        service: String,
        method: String,
        path: String,
    },
    /// A service's whole OpenAPI document (`docs/openapi/<service>.json`).
    Document(String),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Event(subject) => f.write_str(subject),
            Subject::Route {
                service,
                method,
                path,
            } => write!(f, "{method} {path} ({service})"),
            Subject::Document(service) => write!(f, "docs/openapi/{service}.json"),
        }
    }
}

/// One change to one field of one subject.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub subject: Subject,
    /// The field's path inside the subject (`payload.items[].quantity`, `response 200: orderId`),
    /// or empty when the change is to the subject as a whole (a route removed).
    pub field: String,
    /// What changed, in words: `removed or renamed`, `type integer removed; type string added`.
    pub what: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.subject, self.what)
        } else {
            write!(f, "{}: {}: {}", self.subject, self.field, self.what)
        }
    }
}

/// Everything the gate compared and found.
#[derive(Debug, Default)]
pub struct Report {
    /// Changes a reader or writer of the last release would trip over: any one fails the gate.
    pub breaches: Vec<Finding>,
    /// Changes the rules allow within a major: new optional fields, new enum values, new event
    /// majors, new routes, new services.
    pub additive: Vec<Finding>,
    /// Event schemas of the last release that were compared (retired majors not counted).
    pub events: usize,
    /// OpenAPI documents of the last release that were compared.
    pub documents: usize,
    /// Operations (method and path) of the last release that were compared.
    pub routes: usize,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.breaches.is_empty()
    }

    pub(crate) fn breach(
        &mut self,
        subject: &Subject,
        field: impl Into<String>,
        what: impl Into<String>,
    ) {
        self.breaches.push(Finding {
            subject: subject.clone(),
            field: field.into(),
            what: what.into(),
        });
    }

    pub(crate) fn additive(
        &mut self,
        subject: &Subject,
        field: impl Into<String>,
        what: impl Into<String>,
    ) {
        self.additive.push(Finding {
            subject: subject.clone(),
            field: field.into(),
            what: what.into(),
        });
    }

    /// Adds a schema's judgement, each field's path put after `prefix` (`response 200`).
    pub(crate) fn add_judgement(
        &mut self,
        subject: &Subject,
        prefix: &str,
        judgement: crate::rules::Judgement,
    ) {
        let join = |field: String| match (prefix.is_empty(), field.is_empty()) {
            (true, _) => field,
            (false, true) => prefix.to_owned(),
            (false, false) => format!("{prefix}: {field}"),
        };
        for (field, what) in judgement.breaches {
            self.breach(subject, join(field), what);
        }
        for (field, what) in judgement.additive {
            self.additive(subject, join(field), what);
        }
    }

    /// The breaches of `subject` (`order.created.v1`, or a route as `GET /orders/{order_id}`)
    /// at `field` (`payload.customerId`, `response 200: orderId`; empty for the whole subject).
    pub fn breaches_of<'a>(
        &'a self,
        subject: &'a str,
        field: &'a str,
    ) -> impl Iterator<Item = &'a Finding> {
        self.breaches.iter().filter(move |b| {
            let name = b.subject.to_string();
            let same = name == subject || name.starts_with(&format!("{subject} ("));
            same && b.field == field
        })
    }
}
