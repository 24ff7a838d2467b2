//! What the pod template says about its containers: environment (where connection settings such
//! as `PGSSLMODE` live), command lines, probes, referenced Secrets, and whether it looks like a
//! database.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::document::{ContainerInfo, EnvInfo, KeyRef};
use super::strings;

/// Init containers first (they run first), then the regular ones.
pub(crate) fn containers(spec: &PodSpec) -> Vec<ContainerInfo> {
    let init = spec.init_containers.iter().flatten().map(|c| container(c, true));
    init.chain(spec.containers.iter().map(|c| container(c, false))).collect()
}

fn container(c: &Container, init: bool) -> ContainerInfo {
    let env: Vec<EnvInfo> = c
        .env
        .iter()
        .flatten()
        .map(|e| {
            let from = e.value_from.as_ref();
            EnvInfo {
                name: e.name.clone(),
                value: e.value.clone(),
                from_secret: from
                    .and_then(|f| f.secret_key_ref.as_ref())
                    .map(|r| KeyRef { name: r.name.clone(), key: r.key.clone() }),
                from_config_map: from
                    .and_then(|f| f.config_map_key_ref.as_ref())
                    .map(|r| KeyRef { name: r.name.clone(), key: r.key.clone() }),
            }
        })
        .collect();
    let args: Vec<String> = c.command.iter().flatten().chain(c.args.iter().flatten()).cloned().collect();
    let facts = strings::analyse(&env, &args);
    ContainerInfo {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        init,
        readiness_probe: c.readiness_probe.is_some(),
        liveness_probe: c.liveness_probe.is_some(),
        env,
        args,
        pgsslmode: facts.pgsslmode,
        connections: facts.connections,
        literal_credentials: facts.literal_credentials,
    }
}

/// Names of the Secrets the pod template references: env `secretKeyRef`, `envFrom.secretRef`
/// (all containers, init and ephemeral included), `secret` and projected volumes, and
/// `imagePullSecrets`. Sorted and unique; names only.
pub(crate) fn secret_names(spec: &PodSpec) -> Vec<String> {
    let mut names = BTreeSet::new();
    let mut from_container =
        |env: Option<&Vec<k8s_openapi::api::core::v1::EnvVar>>,
         env_from: Option<&Vec<k8s_openapi::api::core::v1::EnvFromSource>>| {
            for e in env.into_iter().flatten() {
                if let Some(r) = e.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref()) {
                    names.insert(r.name.clone());
                }
            }
            for e in env_from.into_iter().flatten() {
                if let Some(r) = &e.secret_ref {
                    names.insert(r.name.clone());
                }
            }
        };
    for c in spec.init_containers.iter().flatten().chain(&spec.containers) {
        from_container(c.env.as_ref(), c.env_from.as_ref());
    }
    for c in spec.ephemeral_containers.iter().flatten() {
        from_container(c.env.as_ref(), c.env_from.as_ref());
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            names.insert(name);
        }
        let sources = v.projected.as_ref().and_then(|p| p.sources.as_ref());
        for source in sources.into_iter().flatten() {
            if let Some(s) = &source.secret {
                names.insert(s.name.clone());
            }
        }
    }
    for r in spec.image_pull_secrets.iter().flatten() {
        names.insert(r.name.clone());
    }
    names.remove("");
    names.into_iter().collect()
}

/// Image repository names (last path segment, before tag and digest) that are databases.
/// A repository matches when it is one of these, or one of these followed by `-`/`_` and a
/// variant (`postgresql-repmgr`, `timescaledb-ha`), unless the variant names a tool that sits
/// next to a database rather than storing data (see [`NOT_A_DATABASE`]).
const DATABASE_IMAGES: &[&str] = &[
    "postgres",
    "postgresql",
    "postgis",
    "mysql",
    "mariadb",
    "percona",
    "mongo",
    "mongodb",
    "redis",
    "valkey",
    "cockroach",
    "cockroachdb",
    "timescaledb",
    "timescaledb-ha",
    "cassandra",
    "scylla",
    "neo4j",
    "couchdb",
    "clickhouse-server",
    "mssql-server",
    "oracle-database",
    "cloudnative-pg",
];

/// Words in an image variant that mark companions of a database (metrics exporters, operators,
/// admin UIs, clients), which hold no data of their own.
const NOT_A_DATABASE: &[&str] = &["exporter", "operator", "express", "commander", "insight", "client", "cli", "ui"];

/// Well-known database ports: PostgreSQL, MySQL/MariaDB, MongoDB, Redis, CockroachDB SQL,
/// Cassandra CQL, SQL Server.
const DATABASE_PORTS: &[i32] = &[5432, 3306, 27017, 6379, 26257, 9042, 1433];

/// Does any container (init containers excluded: a `wait-for-postgres` init container does not
/// make a web app a database) run a database image or expose a database port?
pub(crate) fn is_database(spec: &PodSpec) -> bool {
    spec.containers.iter().any(|c| {
        c.image.as_deref().is_some_and(is_database_image)
            || c.ports.iter().flatten().any(|p| DATABASE_PORTS.contains(&p.container_port))
    })
}

fn is_database_image(image: &str) -> bool {
    // Strip the digest, then the tag (a `:` after the last `/`, so registry ports survive).
    let image = image.split('@').next().unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or_default();
    let repo = last.split(':').next().unwrap_or_default().to_ascii_lowercase();
    DATABASE_IMAGES.iter().any(|db| {
        repo == *db
            || repo.strip_prefix(db).is_some_and(|rest| {
                (rest.starts_with('-') || rest.starts_with('_'))
                    && !rest.split(['-', '_']).any(|word| NOT_A_DATABASE.contains(&word))
            })
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(spec: serde_json::Value) -> PodSpec {
        serde_json::from_value(spec).unwrap()
    }

    #[test]
    fn database_images_and_ports() {
        for image in [
            "postgres:16",
            "docker.io/library/postgres",
            "bitnami/postgresql:15.4.0",
            "registry.local:5000/bitnami/postgresql-repmgr:15",
            "mysql@sha256:abc",
            "mariadb:11",
            "mongo:7",
            "redis:7-alpine",
            "cockroachdb/cockroach:v23.1.0",
            "timescale/timescaledb:latest-pg16",
            "ghcr.io/cloudnative-pg/postgresql:16",
        ] {
            assert!(is_database_image(image), "{image}");
        }
        for image in [
            "nginx",
            "crm/api:1.2",
            "redisinsight:2",
            "postgres-exporter-but-named/app",
            "mongoose-app",
            "quay.io/prometheuscommunity/postgres-exporter:v0.15",
            "oliver006/redis_exporter",
            "mongo-express:1",
        ] {
            assert!(!is_database_image(image), "{image}");
        }
        assert!(is_database(&pod(
            json!({"containers": [{"name": "x", "image": "acme/db", "ports": [{"containerPort": 5432}]}]})
        )));
        assert!(!is_database(&pod(
            json!({"containers": [{"name": "x", "image": "acme/web", "ports": [{"containerPort": 8080}]}],
            "initContainers": [{"name": "wait", "image": "postgres:16"}]})
        )));
    }

    #[test]
    fn secrets_are_collected_from_every_reference() {
        let spec = pod(json!({
            "containers": [{"name": "a",
                "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                        {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "c"}}}],
                "envFrom": [{"secretRef": {"name": "api-keys"}}, {"configMapRef": {"name": "cfg"}}]}],
            "initContainers": [{"name": "i", "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "p"}}}]}],
            "volumes": [{"name": "tls", "secret": {"secretName": "tls-cert"}},
                        {"name": "p", "projected": {"sources": [{"secret": {"name": "bundle"}}, {"configMap": {"name": "x"}}]}},
                        {"name": "cfg", "configMap": {"name": "cfg"}}],
            "imagePullSecrets": [{"name": "regcred"}]
        }));
        assert_eq!(secret_names(&spec), ["api-keys", "bundle", "db", "regcred", "tls-cert"]);
    }

    #[test]
    fn containers_carry_env_args_and_probes() {
        let spec = pod(json!({
            "initContainers": [{"name": "migrate", "image": "crm/migrate", "command": ["migrate"], "args": ["--url", "postgres://crm-pg-rw/crm"]}],
            "containers": [{"name": "api", "image": "crm/api", "readinessProbe": {"httpGet": {"port": 80}},
                "env": [{"name": "PGSSLMODE", "value": "require"},
                        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]}]
        }));
        let c = containers(&spec);
        assert_eq!(c.len(), 2);
        assert!(c[0].init && !c[1].init);
        assert_eq!(c[0].args, ["migrate", "--url", "postgres://crm-pg-rw/crm"]);
        assert!(c[1].readiness_probe && !c[1].liveness_probe);
        assert_eq!(c[1].env[0].value.as_deref(), Some("require"));
        assert_eq!(c[1].env[1].from_secret, Some(KeyRef { name: "db".into(), key: "pw".into() }));
    }
}
