//! How the workload is reached and protected on the network: Services selecting its pods,
//! Ingresses routing to those Services, NetworkPolicies and PodDisruptionBudgets selecting its
//! pods, and service-mesh mTLS.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::DynamicObject;

use super::backup::PeerAuthenticationSpec;
use super::document::{
    IngressInfo, IstioInfo, LinkerdInfo, Mesh, NetworkPolicyInfo, PdbInfo, ServiceInfo, ServicePortInfo,
};
use super::objects::ObjectSource;
use super::selector;
use super::workload::Workload;

/// Annotations dropped from documents: this one repeats the whole object and only costs memory.
pub(crate) const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub(crate) fn without_last_applied(annotations: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let mut out = annotations.cloned().unwrap_or_default();
    out.remove(LAST_APPLIED);
    out
}

/// Services in the workload's namespace whose (non-empty) selector matches the pod labels.
pub(crate) fn services(w: &Workload, src: &dyn ObjectSource) -> Vec<ServiceInfo> {
    src.services(w.namespace())
        .iter()
        .filter_map(|svc| {
            let spec = svc.spec.as_ref()?;
            if !selector::service_selects(spec.selector.as_ref(), &w.pod_labels) {
                return None;
            }
            Some(ServiceInfo {
                name: svc.metadata.name.clone().unwrap_or_default(),
                type_: spec.type_.clone().unwrap_or_else(|| "ClusterIP".to_string()),
                ports: spec
                    .ports
                    .iter()
                    .flatten()
                    .map(|p| ServicePortInfo {
                        name: p.name.clone(),
                        port: p.port,
                        app_protocol: p.app_protocol.clone(),
                    })
                    .collect(),
            })
        })
        .collect()
}

/// Ingresses in the namespace with a rule path or default backend pointing at one of `services`.
pub(crate) fn ingresses(namespace: &str, services: &[ServiceInfo], src: &dyn ObjectSource) -> Vec<IngressInfo> {
    if services.is_empty() {
        return Vec::new();
    }
    let routes_to_us = |backend: &IngressBackend| {
        backend.service.as_ref().is_some_and(|s| services.iter().any(|svc| svc.name == s.name))
    };
    src.ingresses(namespace).iter().filter(|ing| ingress_backends(ing).any(routes_to_us)).map(ingress_info).collect()
}

fn ingress_backends(ing: &Ingress) -> impl Iterator<Item = &IngressBackend> {
    let spec = ing.spec.as_ref();
    let default = spec.and_then(|s| s.default_backend.as_ref());
    let paths = spec
        .and_then(|s| s.rules.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|r| r.http.as_ref())
        .flat_map(|http| http.paths.iter().map(|p| &p.backend));
    default.into_iter().chain(paths)
}

fn ingress_info(ing: &Arc<Ingress>) -> IngressInfo {
    let spec = ing.spec.as_ref();
    let hosts: BTreeSet<String> =
        spec.and_then(|s| s.rules.as_ref()).into_iter().flatten().filter_map(|r| r.host.clone()).collect();
    let tls_hosts: BTreeSet<String> = spec
        .and_then(|s| s.tls.as_ref())
        .into_iter()
        .flatten()
        // A TLS entry without hosts covers every host the controller serves (Ingress API docs).
        .flat_map(|t| match t.hosts.as_deref() {
            Some(h) if !h.is_empty() => h.to_vec(),
            _ => vec!["*".to_owned()],
        })
        .collect();
    let legacy_class = ing.metadata.annotations.as_ref().and_then(|a| a.get("kubernetes.io/ingress.class"));
    IngressInfo {
        name: ing.metadata.name.clone().unwrap_or_default(),
        class_name: spec.and_then(|s| s.ingress_class_name.clone()).or_else(|| legacy_class.cloned()),
        hosts: hosts.into_iter().filter(|h| !h.is_empty()).collect(),
        tls_hosts: tls_hosts.into_iter().filter(|h| !h.is_empty()).collect(),
        annotations: without_last_applied(ing.metadata.annotations.as_ref()),
    }
}

/// NetworkPolicies in the namespace whose `podSelector` matches the pod labels (a missing or empty
/// selector selects every pod in the namespace).
pub(crate) fn network_policies(w: &Workload, src: &dyn ObjectSource) -> Vec<NetworkPolicyInfo> {
    src.network_policies(w.namespace())
        .iter()
        .filter_map(|np| {
            let spec = np.spec.as_ref();
            let selects =
                spec.and_then(|s| s.pod_selector.as_ref()).is_none_or(|s| selector::matches(s, &w.pod_labels));
            if !selects {
                return None;
            }
            let policy_types = match spec.and_then(|s| s.policy_types.clone()) {
                Some(types) if !types.is_empty() => types,
                _ => {
                    let mut types = vec!["Ingress".to_string()];
                    if spec.and_then(|s| s.egress.as_ref()).is_some_and(|e| !e.is_empty()) {
                        types.push("Egress".to_string());
                    }
                    types
                }
            };
            Some(NetworkPolicyInfo { name: np.metadata.name.clone().unwrap_or_default(), policy_types })
        })
        .collect()
}

/// PodDisruptionBudgets in the namespace selecting the pods. In `policy/v1` a missing selector
/// selects nothing and an empty one selects every pod in the namespace.
pub(crate) fn pod_disruption_budgets(w: &Workload, src: &dyn ObjectSource) -> Vec<PdbInfo> {
    src.pod_disruption_budgets(w.namespace())
        .iter()
        .filter_map(|pdb| {
            let spec = pdb.spec.as_ref()?;
            let sel: &LabelSelector = spec.selector.as_ref()?;
            selector::matches(sel, &w.pod_labels).then(|| PdbInfo {
                name: pdb.metadata.name.clone().unwrap_or_default(),
                min_available: spec.min_available.clone(),
                max_unavailable: spec.max_unavailable.clone(),
            })
        })
        .collect()
}

/// The mesh root namespace, where a selector-less PeerAuthentication applies mesh-wide.
const ISTIO_ROOT_NAMESPACE: &str = "istio-system";

/// Sidecar injection and the effective Istio mTLS mode. Malformed PeerAuthentications (only
/// possible from a source that skipped validation) are skipped and reported in `warnings`.
pub(crate) fn mesh(
    w: &Workload,
    namespace: Option<&Arc<Namespace>>,
    src: &dyn ObjectSource,
    warnings: &mut Vec<String>,
) -> Mesh {
    let ns_labels = namespace.and_then(|n| n.metadata.labels.as_ref());
    let ns_annotations = namespace.and_then(|n| n.metadata.annotations.as_ref());
    let ns_label = |k: &str| ns_labels.and_then(|l| l.get(k)).map(String::as_str);
    let pod_flag = |k: &str| w.pod_labels.get(k).or_else(|| w.pod_annotations.get(k)).map(String::as_str);

    // Istio: the pod's `sidecar.istio.io/inject` (label, or the older annotation) wins; otherwise
    // the namespace's `istio-injection=enabled`, or an `istio.io/rev` revision label unless
    // injection is explicitly disabled.
    let istio_injected = match pod_flag("sidecar.istio.io/inject") {
        Some("true") => true,
        Some("false") => false,
        _ => match ns_label("istio-injection") {
            Some("enabled") => true,
            Some("disabled") => false,
            _ => ns_label("istio.io/rev").is_some_and(|r| !r.is_empty()),
        },
    };

    // Linkerd: the pod template annotation wins over the namespace annotation.
    let linkerd_flag = w.pod_annotations.get("linkerd.io/inject").map(String::as_str);
    let linkerd_injected = match linkerd_flag {
        Some("enabled") => true,
        Some("disabled") => false,
        _ => ns_annotations.and_then(|a| a.get("linkerd.io/inject")).is_some_and(|v| v == "enabled"),
    };

    Mesh {
        istio: IstioInfo {
            injected: istio_injected,
            peer_authentication_mode: peer_authentication_mode(w, src, warnings),
        },
        linkerd: LinkerdInfo { injected: linkerd_injected },
    }
}

/// The most specific PeerAuthentication mode that is set: one selecting the workload's pods, then
/// the namespace-wide one, then the mesh-wide one in the root namespace. A level whose mode is
/// missing or `UNSET` inherits from the next, as in Istio. Several policies on one level: the
/// oldest wins in Istio; manifests rarely carry timestamps, so we take the first by name.
fn peer_authentication_mode(w: &Workload, src: &dyn ObjectSource, warnings: &mut Vec<String>) -> Option<String> {
    let mut read = |namespace: &str| -> Vec<(Arc<DynamicObject>, PeerAuthenticationSpec)> {
        src.istio_peer_authentications(namespace)
            .into_iter()
            .filter_map(|pa| match PeerAuthenticationSpec::read(&pa) {
                Ok(spec) => Some((pa, spec)),
                Err(e) => {
                    warnings.push(e);
                    None
                }
            })
            .collect()
    };
    let local = read(w.namespace());
    let mut candidates: Vec<Option<String>> = Vec::new();
    // Workload-specific.
    candidates.extend(local.iter().filter(|(_, s)| s.selects(&w.pod_labels) == Some(true)).map(|(_, s)| s.mode()));
    // Namespace-wide.
    candidates.extend(local.iter().filter(|(_, s)| s.selects(&w.pod_labels).is_none()).map(|(_, s)| s.mode()));
    // Mesh-wide.
    if w.namespace() != ISTIO_ROOT_NAMESPACE {
        let root = read(ISTIO_ROOT_NAMESPACE);
        candidates.extend(root.iter().filter(|(_, s)| s.selects(&w.pod_labels).is_none()).map(|(_, s)| s.mode()));
    }
    candidates.into_iter().flatten().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress(tls: serde_json::Value) -> Arc<Ingress> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "crm", "namespace": "crm"},
                "spec": {"tls": tls, "rules": [{"host": "crm.example.com"}]}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn tls_entry_without_hosts_covers_every_host() {
        assert_eq!(ingress_info(&ingress(serde_json::json!([{"secretName": "tls"}]))).tls_hosts, ["*"]);
        assert_eq!(
            ingress_info(&ingress(serde_json::json!([{"hosts": ["crm.example.com"], "secretName": "tls"}]))).tls_hosts,
            ["crm.example.com"]
        );
        assert!(ingress_info(&ingress(serde_json::json!([]))).tls_hosts.is_empty());
    }
}
