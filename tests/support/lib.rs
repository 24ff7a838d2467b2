//! Test bed for the end-to-end tests: one real control plane (etcd, kube-apiserver,
//! kube-controller-manager) per test binary, started by `tests/controlplane/up.sh` and torn
//! down by its watchdog when the test process exits (also on panic or kill), and one
//! namespace per test.
//!
//! Set `CRMRISK_TEST_CONTROLPLANE=<dir printed by up.sh>` to reuse a control plane that is
//! already running (it is then left running). The ambient `KUBECONFIG` is deliberately not
//! used: these tests create and delete objects, and must never run against a real cluster
//! by accident.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub mod operator;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// A running control plane and the identities the tests use.
#[derive(Debug)]
pub struct ControlPlane {
    /// State directory of up.sh: kubeconfigs, PKI, logs (`logs/kube-apiserver.log`, ...).
    pub dir: PathBuf,
    /// Admin (system:masters) kubeconfig.
    pub kubeconfig: PathBuf,
    /// Kubeconfig of an authenticated user that is bound to nothing.
    pub nobody_kubeconfig: PathBuf,
    /// User name of that identity, for RoleBindings in tests.
    pub nobody_user: String,
    /// Directory holding kube-apiserver, kube-controller-manager, etcd and kubectl.
    pub bin: PathBuf,
    /// Server URL, https://127.0.0.1:<port>.
    pub server: String,
}

/// Root of the repository (the workspace).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn read_env_file(dir: &Path) -> Result<ControlPlane> {
    let text = std::fs::read_to_string(dir.join("env"))
        .with_context(|| format!("reading {}/env (was it made by up.sh?)", dir.display()))?;
    let get = |key: &str| -> Result<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .with_context(|| format!("{key} missing in {}/env", dir.display()))
    };
    Ok(ControlPlane {
        dir: dir.to_path_buf(),
        kubeconfig: get("KUBECONFIG")?.into(),
        nobody_kubeconfig: get("NOBODY_KUBECONFIG")?.into(),
        nobody_user: get("NOBODY_USER")?,
        bin: get("BIN")?.into(),
        server: get("SERVER")?,
    })
}

/// Keep the state directories (and so the logs) of the last few runs; remove older ones.
fn prune_old_runs(parent: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    let mut runs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("controlplane-"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .filter(|(_, p)| !p.join("running").exists())
        .collect();
    runs.sort();
    let n = runs.len().saturating_sub(keep);
    for (_, p) in runs.into_iter().take(n) {
        let _ = std::fs::remove_dir_all(p);
    }
}

/// `target/testbed/`: state directories (and logs) of recent runs, next to the test binary.
fn testbed_parent() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test binary>
    let target = exe.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
    target.join("testbed")
}

fn start() -> Result<ControlPlane> {
    if let Ok(dir) = std::env::var("CRMRISK_TEST_CONTROLPLANE") {
        eprintln!("[testbed] reusing the control plane in {dir}");
        return read_env_file(Path::new(&dir));
    }
    let parent = testbed_parent();
    std::fs::create_dir_all(&parent)?;
    prune_old_runs(&parent, 4);
    let dir = parent.join(format!("controlplane-{}", std::process::id()));
    let script = repo_root().join("tests/controlplane/up.sh");
    eprintln!("[testbed] starting a control plane in {}", dir.display());
    let status = Command::new(&script)
        .arg("--dir")
        .arg(&dir)
        .arg("--watch-pid")
        .arg(std::process::id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!("{} failed ({status}); logs are in {}/logs", script.display(), dir.display());
    }
    read_env_file(&dir)
}

impl ControlPlane {
    /// The control plane of this test binary, started on first use.
    pub fn shared() -> &'static ControlPlane {
        static CP: OnceLock<ControlPlane> = OnceLock::new();
        CP.get_or_init(|| match start() {
            Ok(cp) => cp,
            Err(e) => panic!("could not start the test control plane: {e:#}"),
        })
    }

    async fn client_for(&self, kubeconfig: &Path) -> Result<Client> {
        let kc = Kubeconfig::read_from(kubeconfig)?;
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// A client with cluster-admin rights (system:masters).
    pub async fn admin_client(&self) -> Client {
        self.client_for(&self.kubeconfig).await.expect("admin client")
    }

    /// A client for the identity that has no permissions of its own.
    pub async fn nobody_client(&self) -> Client {
        self.client_for(&self.nobody_kubeconfig).await.expect("non-admin client")
    }

    /// `kubectl` preconfigured with the admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new(self.bin.join("kubectl"));
        c.arg("--kubeconfig").arg(&self.kubeconfig);
        c
    }

    /// Path of a control plane component's log, for failure messages.
    pub fn log_path(&self, component: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{component}.log"))
    }

    /// Stop the kube-apiserver (etcd and the controller-manager keep running).
    pub fn stop_apiserver(&self) -> Result<()> {
        self.apiserver("stop")
    }

    /// Start the kube-apiserver again on the same port and wait until it is ready.
    pub fn start_apiserver(&self) -> Result<()> {
        self.apiserver("start")
    }

    fn apiserver(&self, verb: &str) -> Result<()> {
        let status =
            Command::new(repo_root().join("tests/controlplane/apiserver.sh")).arg(verb).arg(&self.dir).status()?;
        if !status.success() {
            bail!("apiserver.sh {verb} failed: see {}", self.log_path("kube-apiserver").display());
        }
        Ok(())
    }
}

/// A namespace of its own for one test, deleted when dropped (also when the test panics).
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    /// Create `<prefix>-<pid>-<n>`: unique across tests and concurrent test binaries.
    pub async fn create(client: &Client, prefix: &str) -> TestNamespace {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": { "name": name, "labels": { "crmrisk.io/test": "true" } }
        }))
        .expect("namespace object");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        TestNamespace { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let cp = ControlPlane::shared();
        let _ = cp
            .kubectl()
            .args(["delete", "namespace", &self.name, "--wait=false", "--ignore-not-found"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Poll `f` until it returns `Some`, for at most `timeout`; the error names what was awaited.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
