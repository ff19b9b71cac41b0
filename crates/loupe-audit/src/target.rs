use crate::event::AuditEvent;

/// The resources Loupe analyses. Everything else is [`Resource::Other`] and is only counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Pod,
    PodStatus,
    PodBinding,
    PodEviction,
    /// Other pod subresources (`exec`, `attach`, `log`, `resize`, `ephemeralcontainers`…).
    PodOther,
    /// Core `v1` Events.
    CoreEvent,
    /// `events.k8s.io/v1` (and `v1beta1`) Events, the scheduler's API.
    EventsApiEvent,
    Node,
    NodeStatus,
    Pvc,
    PvcStatus,
    Other,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Pod => "pods",
            Resource::PodStatus => "pods/status",
            Resource::PodBinding => "pods/binding",
            Resource::PodEviction => "pods/eviction",
            Resource::PodOther => "pods/*",
            Resource::CoreEvent => "events",
            Resource::EventsApiEvent => "events.k8s.io/events",
            Resource::Node => "nodes",
            Resource::NodeStatus => "nodes/status",
            Resource::Pvc => "persistentvolumeclaims",
            Resource::PvcStatus => "persistentvolumeclaims/status",
            Resource::Other => "other",
        }
    }
}

/// What an event is about, read from its envelope only (no body is touched).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub resource: Resource,
    /// `get`, `list` and `watch`: never a change of state.
    pub read_only: bool,
}

impl Target {
    pub fn of(event: &AuditEvent<'_>) -> Target {
        let read_only = matches!(&*event.verb, "get" | "list" | "watch" | "");
        let resource = match &event.object_ref {
            None => Resource::Other,
            Some(r) => classify(&r.api_group, &r.resource, &r.subresource),
        };
        Target {
            resource,
            read_only,
        }
    }

    /// Whether the analyses need this event: a change to a resource they follow.
    pub fn is_relevant(self) -> bool {
        !self.read_only && self.resource != Resource::Other
    }
}

fn classify(group: &str, resource: &str, subresource: &str) -> Resource {
    match (group, resource, subresource) {
        ("", "pods", "") => Resource::Pod,
        ("", "pods", "status") => Resource::PodStatus,
        ("", "pods", "binding") => Resource::PodBinding,
        ("", "pods", "eviction") => Resource::PodEviction,
        ("", "pods", _) => Resource::PodOther,
        ("", "events", _) => Resource::CoreEvent,
        ("events.k8s.io", "events", _) => Resource::EventsApiEvent,
        ("", "nodes", "") => Resource::Node,
        ("", "nodes", "status") => Resource::NodeStatus,
        ("", "persistentvolumeclaims", "") => Resource::Pvc,
        ("", "persistentvolumeclaims", "status") => Resource::PvcStatus,
        _ => Resource::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_group_resource_and_subresource() {
        assert_eq!(classify("", "pods", ""), Resource::Pod);
        assert_eq!(classify("", "pods", "status"), Resource::PodStatus);
        assert_eq!(classify("", "pods", "binding"), Resource::PodBinding);
        assert_eq!(classify("", "pods", "exec"), Resource::PodOther);
        assert_eq!(
            classify("events.k8s.io", "events", ""),
            Resource::EventsApiEvent
        );
        assert_eq!(classify("", "events", ""), Resource::CoreEvent);
        assert_eq!(
            classify("coordination.k8s.io", "leases", ""),
            Resource::Other
        );
        assert_eq!(classify("apps", "pods", ""), Resource::Other);
    }

    #[test]
    fn reads_are_never_relevant() {
        let line = r#"{"level":"Metadata","auditID":"a","stage":"ResponseComplete","verb":"watch","objectRef":{"resource":"pods"},"stageTimestamp":"2024-01-01T00:00:00Z"}"#;
        let e = crate::decode(line).unwrap();
        assert_eq!(e.target().resource, Resource::Pod);
        assert!(!e.target().is_relevant());
    }
}
