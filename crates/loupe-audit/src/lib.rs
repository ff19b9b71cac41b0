//! The kube-apiserver audit log, as data.
//!
//! [`decode`] reads one `audit.k8s.io` Event (v1, v1beta1, or the old files that carry no
//! `apiVersion`) into an [`AuditEvent`] that borrows from the input. Request and response
//! bodies stay text ([`Body`]) until a caller asks for them with [`AuditEvent::request`]
//! or [`AuditEvent::response`], so the bulk of the log (leases, GETs, watches) costs one
//! envelope scan and nothing more: [`decode`] walks the text itself ([`scan`]) instead of
//! going through serde, reading the envelope's fields and skipping the rest in one pass. [`Target`] classifies an event by resource and verb
//! before any body is looked at.
//!
//! [`objects`] holds the borrowed subsets of the Kubernetes objects the analyses read.

mod body_scan;
mod event;
pub mod objects;
pub mod scan;
mod target;
mod time;

pub use event::{
    decode, decode_event_list, AuditEvent, Body, DecodeError, Level, ObjectRef, ResponseStatus,
    Stage, UserInfo,
};
pub use serde_json::value::RawValue;
pub use target::{Resource, Target};
pub use time::{format_micros, parse_time_micros, push_micros, Micros};
