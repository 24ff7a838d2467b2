//! Errors from turning loose objects into the indexed set the builder reads.

/// Why an object could not be taken in. Every variant names the object as precisely as the input
/// allows, because the user has to find it among hundreds of manifests.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The value is not a Kubernetes object at all (not a JSON object, or no `apiVersion`/`kind`).
    #[error("not a Kubernetes object: {reason}")]
    NotAnObject { reason: String },

    /// A known kind whose fields have the wrong types (e.g. `replicas: "three"`).
    #[error("malformed {kind} {name}: {source}")]
    Malformed {
        kind: String,
        /// `namespace/name`, `name`, or `<unnamed>`.
        name: String,
        #[source]
        source: serde_json::Error,
    },

    /// A known kind that lacks a part the builder cannot do without (e.g. a Deployment without
    /// `spec`).
    #[error("{kind} {name} has no {field}")]
    MissingField { kind: String, name: String, field: &'static str },
}

/// `namespace/name` or `name` for messages; `<unnamed>` when the object has no name.
pub(crate) fn display_name(namespace: Option<&str>, name: Option<&str>) -> String {
    let name = name.filter(|n| !n.is_empty()).unwrap_or("<unnamed>");
    match namespace.filter(|n| !n.is_empty()) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}
