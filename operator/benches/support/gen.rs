//! A deterministic generator of realistic CRM clusters for benchmarks: `n` workloads spread over
//! namespaces of about 20, each with what surrounds a workload in practice (ServiceAccounts,
//! Roles and bindings, PVCs and StorageClasses, Services and Ingresses, NetworkPolicies,
//! PodDisruptionBudgets, Velero Schedules, CloudNativePG Clusters, Istio PeerAuthentications),
//! with enough variety that every rule area has work to do and many rules fire.
//!
//! Shared by the criterion bench (`benches/engine.rs`) and the OPA comparison
//! (`examples/bench_inputs.rs`), which include it with `#[path]`, so both measure the same
//! inputs. The same `(n, seed)` always gives the same objects.

#![allow(dead_code)]

use serde_json::{Value, json};

/// Workloads per namespace.
pub const PER_NAMESPACE: usize = 20;
/// The seed the benchmarks use.
pub const SEED: u64 = 0x5EED_C0DE_2026_0001;

/// xorshift64*: small and deterministic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The role a workload plays; decides image, kind, ports and what it connects to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Web,
    Api,
    Worker,
    Postgres,
    Mysql,
    Redis,
    Search,
    Reports,
}

const ROLES: [Role; 8] =
    [Role::Web, Role::Api, Role::Worker, Role::Postgres, Role::Mysql, Role::Redis, Role::Search, Role::Reports];

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Web => "web",
            Role::Api => "api",
            Role::Worker => "worker",
            Role::Postgres => "pg",
            Role::Mysql => "mysql",
            Role::Redis => "cache",
            Role::Search => "search",
            Role::Reports => "reports",
        }
    }

    fn image(self, rng: &mut Rng) -> String {
        match self {
            Role::Web => format!("registry.example.com/crm/web:2.{}.{}", rng.below(10), rng.below(10)),
            Role::Api => format!("registry.example.com/crm/api:3.{}", rng.below(20)),
            Role::Worker => {
                rng.pick(&["registry.example.com/crm/worker:latest", "registry.example.com/crm/worker:1.4"]).to_string()
            }
            Role::Postgres => rng.pick(&["postgres:16.4", "postgres:15", "bitnami/postgresql:16"]).to_string(),
            Role::Mysql => rng.pick(&["mysql:8.0", "mariadb:11.4"]).to_string(),
            Role::Redis => rng.pick(&["redis:7.4", "valkey/valkey:8"]).to_string(),
            Role::Search => "docker.elastic.co/elasticsearch/elasticsearch:8.15.0".to_string(),
            Role::Reports => "registry.example.com/crm/reports:0.9".to_string(),
        }
    }

    fn port(self) -> i64 {
        match self {
            Role::Web | Role::Api | Role::Worker | Role::Reports => 8080,
            Role::Postgres => 5432,
            Role::Mysql => 3306,
            Role::Redis => 6379,
            Role::Search => 9200,
        }
    }

    fn stateful(self) -> bool {
        matches!(self, Role::Postgres | Role::Mysql | Role::Search | Role::Redis)
    }
}

const STORAGE_CLASSES: [&str; 4] = ["gp2", "gp3-encrypted", "standard-rwo", "local-path"];

/// Cluster-wide objects: StorageClasses, ClusterRoles, Velero locations.
fn cluster_objects(out: &mut Vec<Value>) {
    out.push(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "gp2", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "kubernetes.io/aws-ebs", "parameters": {"type": "gp2"}}));
    out.push(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "gp3-encrypted"},
        "provisioner": "ebs.csi.aws.com",
        "parameters": {"type": "gp3", "encrypted": "true", "kmsKeyId": "arn:aws:kms:eu-west-1:111122223333:key/abcd"}}));
    out.push(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "standard-rwo"},
        "provisioner": "pd.csi.storage.gke.io", "parameters": {"type": "pd-balanced"}}));
    out.push(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "local-path"},
        "provisioner": "rancher.io/local-path"}));
    out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "cluster-admin"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]}));
    out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "view"},
        "rules": [{"apiGroups": ["", "apps"], "resources": ["pods", "services", "deployments", "configmaps"], "verbs": ["get", "list", "watch"]}]}));
    out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "crm-aggregate"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"crm.example.com/aggregate": "true"}}]}}));
    out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "crm-secret-reader", "labels": {"crm.example.com/aggregate": "true"}},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}]}));
    out.push(json!({"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
        "metadata": {"name": "default", "namespace": "velero"},
        "spec": {"provider": "aws", "objectStorage": {"bucket": "crm-backups"}, "config": {"region": "eu-west-1"}, "accessMode": "ReadWrite"}}));
    out.push(json!({"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
        "metadata": {"name": "in-cluster", "namespace": "velero"},
        "spec": {"provider": "velero.io/local", "objectStorage": {"bucket": "local"}, "accessMode": "ReadOnly"}}));
}

/// The objects of a cluster with `n` workloads (plus everything around them).
pub fn generate(n: usize, seed: u64) -> Vec<Value> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n * 8);
    cluster_objects(&mut out);
    let namespaces = n.div_ceil(PER_NAMESPACE);
    for ns_index in 0..namespaces {
        let ns = format!("crm-{ns_index:04}");
        let first = ns_index * PER_NAMESPACE;
        let count = PER_NAMESPACE.min(n - first);
        namespace_objects(&mut rng, &ns, ns_index, &mut out);
        for i in 0..count {
            workload_objects(&mut rng, &ns, first + i, &mut out);
        }
    }
    // Velero Schedules: one per 10 namespaces (by namespace list), plus a cluster-wide one by
    // label, so the cluster-wide list stays realistic (dozens, not thousands).
    for group in 0..namespaces.div_ceil(10) {
        let included: Vec<String> =
            (group * 10..((group + 1) * 10).min(namespaces)).map(|i| format!("crm-{i:04}")).collect();
        let (schedule, ttl) =
            *rng.pick(&[("0 2 * * *", "720h0m0s"), ("0 */6 * * *", "168h0m0s"), ("0 3 * * 0", "72h0m0s")]);
        out.push(json!({"apiVersion": "velero.io/v1", "kind": "Schedule",
            "metadata": {"name": format!("crm-group-{group}"), "namespace": "velero"},
            "spec": {"schedule": schedule, "paused": rng.chance(5),
                "template": {"includedNamespaces": included, "ttl": ttl, "snapshotVolumes": rng.chance(70),
                    "storageLocation": if rng.chance(85) { "default" } else { "in-cluster" }}}}));
    }
    out.push(json!({"apiVersion": "velero.io/v1", "kind": "Schedule",
        "metadata": {"name": "tier-critical", "namespace": "velero"},
        "spec": {"schedule": "0 * * * *", "template": {"labelSelector": {"matchLabels": {"crmrisk.io/business-impact": "critical"}},
            "ttl": "336h0m0s", "storageLocation": "default"}}}));
    out
}

fn namespace_objects(rng: &mut Rng, ns: &str, index: usize, out: &mut Vec<Value>) {
    let classification = *rng.pick(&["internal", "confidential", "restricted", "public"]);
    let impact = *rng.pick(&["low", "medium", "high", "critical"]);
    let istio = index.is_multiple_of(5);
    let mut labels = json!({"app.kubernetes.io/part-of": "crm", "crmrisk.io/data-classification": classification,
        "crmrisk.io/business-impact": impact, "team": format!("team-{}", index % 7)});
    if istio {
        labels["istio-injection"] = json!("enabled");
    }
    out.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}));
    if istio {
        let mode = *rng.pick(&["STRICT", "PERMISSIVE", "STRICT"]);
        out.push(json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "default", "namespace": ns}, "spec": {"mtls": {"mode": mode}}}));
    }
    out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "config-reader", "namespace": ns},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]}));
    out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "ops", "namespace": ns},
        "rules": [{"apiGroups": ["", "apps"], "resources": ["secrets", "deployments", "pods"], "verbs": ["*"]}]}));
    if rng.chance(70) {
        out.push(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "default-deny", "namespace": ns},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}));
    }
}

/// A workload and the objects that belong to it alone.
fn workload_objects(rng: &mut Rng, ns: &str, index: usize, out: &mut Vec<Value>) {
    let role = ROLES[index % ROLES.len()];
    let name = format!("{}-{index}", role.name());
    let kind = if role.stateful() {
        if rng.chance(85) { "StatefulSet" } else { "Deployment" }
    } else if rng.chance(5) {
        "DaemonSet"
    } else if role == Role::Reports && rng.chance(50) {
        "CronJob"
    } else {
        "Deployment"
    };
    let replicas = 1 + rng.below(5) as i64;

    // ServiceAccount: the namespace default (30%), or an own one, sometimes over-privileged.
    let sa = if rng.chance(30) {
        "default".to_owned()
    } else {
        let sa = format!("{name}-sa");
        let mut obj = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}});
        if rng.chance(50) {
            obj["automountServiceAccountToken"] = json!(false);
        }
        out.push(obj);
        sa
    };
    let subject = json!([{"kind": "ServiceAccount", "name": sa, "namespace": ns}]);
    let binding_role = match rng.below(10) {
        0 => Some("ops"),
        1..=5 => Some("config-reader"),
        _ => None,
    };
    if let Some(r) = binding_role {
        out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": format!("{name}-{r}"), "namespace": ns}, "subjects": subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": r}}));
    }
    // One ClusterRoleBinding per 25 workloads: cluster-wide lists stay realistic.
    if index.is_multiple_of(25) {
        let cluster_role = *rng.pick(&["cluster-admin", "view", "crm-aggregate", "crm-secret-reader"]);
        out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": format!("{ns}-{name}-{cluster_role}")}, "subjects": subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role}}));
    }

    // Environment: connection strings with varying TLS, credentials literal or from Secrets.
    let mut env = vec![json!({"name": "LOG_LEVEL", "value": "info"})];
    for k in 0..rng.below(8) {
        env.push(json!({"name": format!("FEATURE_{k}"), "value": if rng.chance(50) { "on" } else { "off" }}));
    }
    let mut cnpg_cluster = None;
    if matches!(role, Role::Web | Role::Api | Role::Worker | Role::Reports) {
        let sslmode = *rng.pick(&["disable", "prefer", "require", "verify-full", "verify-full"]);
        let host = if rng.chance(30) {
            let cluster = format!("{name}-pg");
            let url = format!("postgres://crm@{cluster}-rw:5432/crm?sslmode={sslmode}");
            cnpg_cluster = Some(cluster);
            url
        } else {
            format!("postgres://crm@pg-{}:5432/crm?sslmode={sslmode}", index / 8 * 8 + 3)
        };
        env.push(json!({"name": "DATABASE_URL", "value": host}));
        env.push(json!({"name": "REDIS_URL", "value": format!("rediss://cache-{}:6379/0", index / 8 * 8 + 5)}));
    }
    let secret_env = |var: &str| json!({"name": var, "valueFrom": {"secretKeyRef": {"name": format!("{name}-credentials"), "key": "password"}}});
    match role {
        Role::Postgres => env.push(if rng.chance(20) {
            json!({"name": "POSTGRES_PASSWORD", "value": "changeme"})
        } else {
            secret_env("POSTGRES_PASSWORD")
        }),
        Role::Mysql => env.push(secret_env("MYSQL_ROOT_PASSWORD")),
        _ if rng.chance(20) => env.push(json!({"name": "DB_PASSWORD", "value": "s3cret"})),
        _ => env.push(secret_env("DB_PASSWORD")),
    }

    let mut container = json!({"name": role.name(), "image": role.image(rng), "env": env,
        "ports": [{"containerPort": role.port()}]});
    if rng.chance(70) {
        container["readinessProbe"] = json!({"tcpSocket": {"port": role.port()}});
        container["livenessProbe"] = json!({"tcpSocket": {"port": role.port()}});
    }
    if role == Role::Redis && rng.chance(50) {
        container["args"] = json!(["--appendonly", "yes"]);
    }
    let labels = json!({"app": name, "app.kubernetes.io/part-of": "crm", "tier": role.name()});
    let mut pod_spec = json!({"containers": [container]});
    if sa != "default" {
        pod_spec["serviceAccountName"] = json!(sa);
    }
    // Zone spread in each form DR-004 accepts (and a hostname-only one it does not), so the
    // VM-vs-interpreter comparison covers every alternative of `lib.zone_spread`.
    if rng.chance(40) {
        pod_spec["topologySpreadConstraints"] = json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": name}}}]);
    } else if rng.chance(30) {
        let key = *rng.pick(&["topology.kubernetes.io/zone", "kubernetes.io/hostname"]);
        let term = json!({"topologyKey": key, "labelSelector": {"matchLabels": {"app": name}}});
        pod_spec["affinity"] = if rng.chance(50) {
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}})
        } else {
            json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]}})
        };
    }
    let mut meta_labels = labels.clone();
    if rng.chance(15) {
        meta_labels["crmrisk.io/business-impact"] = json!("critical");
    }
    let mount = json!([{"name": "data", "mountPath": "/data"}]);
    let mut spec = json!({"selector": {"matchLabels": {"app": name}}});
    let storage_class =
        |rng: &mut Rng| -> Value { if rng.chance(20) { Value::Null } else { json!(rng.pick(&STORAGE_CLASSES)) } };
    match kind {
        "StatefulSet" => {
            pod_spec["containers"][0]["volumeMounts"] = mount;
            let mut claim_spec =
                json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}});
            let sc = storage_class(rng);
            if !sc.is_null() {
                claim_spec["storageClassName"] = sc;
            }
            spec["serviceName"] = json!(name);
            spec["replicas"] = json!(replicas);
            spec["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"}, "spec": claim_spec}]);
        }
        _ => {
            if role.stateful() || rng.chance(20) {
                pod_spec["containers"][0]["volumeMounts"] = mount;
                if rng.chance(70) {
                    let claim = format!("{name}-data");
                    let mut claim_spec =
                        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}});
                    let sc = storage_class(rng);
                    if !sc.is_null() {
                        claim_spec["storageClassName"] = sc;
                    }
                    out.push(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": claim, "namespace": ns}, "spec": claim_spec}));
                    pod_spec["volumes"] = json!([{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]);
                } else {
                    pod_spec["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
                }
            }
            if kind == "Deployment" {
                spec["replicas"] = json!(replicas);
            }
        }
    }
    let template = json!({"metadata": {"labels": labels}, "spec": pod_spec});
    let (api_version, body) = if kind == "CronJob" {
        let mut template = template;
        template["spec"]["restartPolicy"] = json!("OnFailure");
        ("batch/v1", json!({"schedule": "0 4 * * *", "jobTemplate": {"spec": {"template": template}}}))
    } else {
        spec["template"] = template;
        ("apps/v1", spec)
    };
    out.push(json!({"apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "namespace": ns, "labels": meta_labels}, "spec": body}));

    if kind == "CronJob" || kind == "DaemonSet" {
        return;
    }
    out.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": name}, "ports": [{"name": "main", "port": role.port(), "targetPort": role.port()}]}}));
    if role == Role::Web {
        let host = format!("{name}.{ns}.crm.example.com");
        let mut ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": name, "port": {"name": "main"}}}}]}}]}});
        if rng.chance(60) {
            ingress["spec"]["tls"] = json!([{"hosts": [host], "secretName": format!("{name}-tls")}]);
        }
        out.push(ingress);
    }
    if rng.chance(50) {
        let budget = if rng.chance(50) { json!({"minAvailable": 1}) } else { json!({"maxUnavailable": "50%"}) };
        let mut pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": ns}, "spec": {"selector": {"matchLabels": {"app": name}}}});
        for (k, v) in budget.as_object().into_iter().flatten() {
            pdb["spec"][k] = v.clone();
        }
        out.push(pdb);
    }
    if let Some(cluster) = cnpg_cluster {
        let mut spec = json!({"instances": 3});
        if rng.chance(70) {
            spec["backup"] = json!({"retentionPolicy": rng.pick(&["30d", "7d", "3d"]),
                "barmanObjectStore": {"destinationPath": format!("s3://crm-pg/{cluster}")}});
        }
        out.push(json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
            "metadata": {"name": cluster, "namespace": ns}, "spec": spec}));
        if rng.chance(80) {
            out.push(json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "ScheduledBackup",
                "metadata": {"name": format!("{cluster}-nightly"), "namespace": ns},
                "spec": {"schedule": rng.pick(&["0 0 2 * * *", "0 0 */12 * * *", "0 0 3 * * 0"]), "cluster": {"name": cluster}}}));
        }
    }
}
