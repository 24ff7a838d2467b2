//! Running the operator against the test bed: CRDs installed, the operator's own ClusterRole
//! (charts/crm-risk-operator/files) bound to the test bed's non-admin identity, and the operator
//! started in this process with that identity's client, so every API call it makes is checked
//! by RBAC.

use std::process::Stdio;
use std::time::Duration;

use std::io::Write as _;

use anyhow::{Context, Result, bail};

use crate::{ControlPlane, repo_root};

/// `kubectl apply --server-side` of a YAML text (multi-document), optionally in a namespace.
pub fn kubectl_apply(cp: &ControlPlane, yaml: &str, namespace: Option<&str>) -> Result<String> {
    let mut cmd = cp.kubectl();
    cmd.args(["apply", "--server-side", "--force-conflicts", "--field-manager", "crmrisk-e2e", "-f", "-"]);
    if let Some(ns) = namespace {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    child.stdin.take().context("stdin")?.write_all(yaml.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("kubectl apply failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run kubectl with args; error with its stderr when it fails.
pub fn kubectl(cp: &ControlPlane, args: &[&str]) -> Result<String> {
    let out = cp.kubectl().args(args).output()?;
    if !out.status.success() {
        bail!("kubectl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn read(path: &str) -> Result<String> {
    let p = repo_root().join(path);
    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
}

/// Install the crmrisk CRDs and the Velero stand-in CRDs, and wait until they are served.
pub fn ensure_crds(cp: &ControlPlane, crds_yaml: &str) -> Result<()> {
    kubectl_apply(cp, crds_yaml, None)?;
    kubectl_apply(cp, &read("examples/crds/velero.yaml")?, None)?;
    kubectl(
        cp,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/crmriskpolicies.crmrisk.io",
            "crd/crmriskreports.crmrisk.io",
            "crd/crmriskexceptions.crmrisk.io",
            "crd/schedules.velero.io",
            "crd/backupstoragelocations.velero.io",
        ],
    )?;
    Ok(())
}

/// The operator's identity in a test: a ServiceAccount `crm-risk-operator` in `namespace` (as
/// the chart deploys it), bound to the operator's ClusterRole
/// (charts/crm-risk-operator/files/clusterrole.yaml) and to its Lease Role
/// (charts/crm-risk-operator/files/lease-role.yaml) in that namespace, and nothing else.
/// Returns a client that authenticates with a token of that ServiceAccount.
pub async fn operator_client(cp: &ControlPlane, namespace: &str) -> Result<kube::Client> {
    kubectl_apply(cp, &read("charts/crm-risk-operator/files/clusterrole.yaml")?, None)?;
    kubectl_apply(cp, "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: crm-risk-operator}\n", Some(namespace))?;
    kubectl_apply(
        cp,
        &format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: crm-risk-operator-{namespace}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: crm-risk-operator}}\n\
             subjects: [{{kind: ServiceAccount, name: crm-risk-operator, namespace: {namespace}}}]\n"
        ),
        None,
    )?;
    kubectl_apply(cp, &read("charts/crm-risk-operator/files/lease-role.yaml")?, Some(namespace))?;
    let token = kubectl(cp, &["create", "token", "crm-risk-operator", "-n", namespace, "--duration", "2h"])?;
    let mut kc = kube::config::Kubeconfig::read_from(&cp.kubeconfig)?;
    for auth in &mut kc.auth_infos {
        auth.auth_info =
            Some(kube::config::AuthInfo { token: Some(token.trim().to_owned().into()), ..Default::default() });
    }
    let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// The risky example stack, moved into `namespace` (cluster-scoped names get a suffix).
pub fn risky_stack(namespace: &str) -> Result<String> {
    Ok(read("examples/risky/crm.yaml")?
        .replace("crm-risky", namespace)
        .replace("namespace: velero", &format!("namespace: {namespace}"))
        .replace("name: crm-web-admin", &format!("name: crm-web-admin-{namespace}")))
}

/// Poll an HTTP GET on 127.0.0.1 (the operator's telemetry endpoint) and return the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await??;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((code, body))
}
