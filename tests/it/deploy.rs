//! The container and Kubernetes files cannot drift from the binary: each
//! config they mount loads with `Settings::load_from` when exactly the
//! secret files they provide exist; ports, probe commands and paths, the
//! grace period and the security settings agree with that config and with
//! what a running gateway serves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;
use serde_norway::Value;
use switchboard::cli::{Cli, Command};
use switchboard::config::Settings;
use switchboard::healthcheck::HealthcheckArgs;

use crate::helpers::*;

const SECRETS_DIR: &str = "/run/secrets/switchboard/";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml_docs(path: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(&read(path))
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml(path: &str) -> Value {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "{path}");
    docs.remove(0)
}

fn s(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value:?}"))
}

fn seq(value: &Value) -> &Vec<Value> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("not a list: {value:?}"))
}

/// Test values in the format each secret file needs.
fn secret_content(name: &str) -> &'static str {
    match name {
        "encryption_keys" => "k1:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n",
        _ => "test-secret-value-0123456789\n",
    }
}

/// Loads `config` as the container would, with exactly `secrets` present
/// under /run/secrets/switchboard/ (moved to a temp dir): a config that
/// reads a file the manifests do not provide fails here.
fn load_with_secrets(config: &str, secrets: &BTreeSet<String>) -> Settings {
    let dir = TempDir::new();
    for name in secrets {
        std::fs::write(dir.0.join(name), secret_content(name)).unwrap();
    }
    let text = read(config).replace(SECRETS_DIR, &format!("{}/", dir.0.display()));
    for line in text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains("_file"))
    {
        assert!(
            line.contains(&dir.0.display().to_string()),
            "{config}: a secret file outside {SECRETS_DIR}: {line}"
        );
    }
    let path = dir.0.join("switchboard.toml");
    std::fs::write(&path, text).unwrap();
    Settings::load_from(Some(&path), &[]).unwrap_or_else(|e| panic!("{config}: {e}"))
}

fn healthcheck_args(argv: &[&str]) -> HealthcheckArgs {
    let mut full = vec!["switchboard"];
    // The probe runs the installed binary by its absolute path.
    assert!(
        argv[0].ends_with("/switchboard"),
        "the probe does not run switchboard: {argv:?}"
    );
    full.extend_from_slice(&argv[1..]);
    match Cli::try_parse_from(&full)
        .unwrap_or_else(|e| panic!("{argv:?} is not a valid command: {e}"))
        .command
    {
        Some(Command::Healthcheck(args)) => args,
        other => panic!("{argv:?} is not `switchboard healthcheck`: {other:?}"),
    }
}

fn port_of(url: &str) -> (u16, String) {
    let url = url::Url::parse(url).unwrap();
    (url.port_or_known_default().unwrap(), url.path().to_owned())
}

/// Dockerfile instructions with continuation lines joined.
fn dockerfile() -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in read("deploy/Dockerfile").lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                let (word, rest) = current.split_once(' ').unwrap_or((&current, ""));
                instructions.push((word.to_uppercase(), rest.trim().to_owned()));
                current.clear();
            }
        }
    }
    instructions
}

#[tokio::test]
async fn the_image_runs_as_non_root_and_checks_itself_on_the_configured_port() {
    let compose = yaml("deploy/compose.yaml");
    let secrets: BTreeSet<String> = seq(&compose["services"]["switchboard"]["secrets"])
        .iter()
        .map(|secret| {
            s(&secret["target"])
                .strip_prefix("switchboard/")
                .expect("secrets are mounted under /run/secrets/switchboard/")
                .to_owned()
        })
        .collect();
    let settings = load_with_secrets("deploy/config/switchboard.toml", &secrets);
    assert!(!settings.demo, "the container config must not run the demo");

    let instructions = dockerfile();
    let froms: Vec<&String> = instructions
        .iter()
        .filter(|(w, _)| w == "FROM")
        .map(|(_, r)| r)
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(
        froms.last().unwrap().contains("distroless") || froms.last().unwrap().contains("slim"),
        "small runtime image: {froms:?}"
    );
    let runtime_start = instructions.iter().rposition(|(w, _)| w == "FROM").unwrap();
    let runtime = &instructions[runtime_start..];
    let get = |word: &str| -> Vec<&String> {
        runtime
            .iter()
            .filter(|(w, _)| w == word)
            .map(|(_, r)| r)
            .collect()
    };
    let user = get("USER");
    let user = user.last().expect("USER in the runtime stage");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric USER");
    assert_ne!(uid, 0, "the image runs as root");

    let exposed: BTreeSet<u16> = get("EXPOSE")
        .iter()
        .flat_map(|r| r.split_whitespace())
        .map(|p| p.trim_end_matches("/tcp").parse().unwrap())
        .collect();
    assert_eq!(
        exposed,
        BTreeSet::from([
            settings.server.bind.port(),
            settings.server.admin_bind.port()
        ])
    );

    let env = get("ENV")
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let copies = get("COPY");
    let config_copy = copies
        .iter()
        .find(|c| c.contains("deploy/config/switchboard.toml"))
        .expect("the image carries deploy/config/switchboard.toml");
    let config_path = config_copy.split_whitespace().last().unwrap();
    assert!(
        env.contains(&format!("SWITCHBOARD_CONFIG={config_path}")),
        "{env}"
    );
    let binary_copy = copies
        .iter()
        .find(|c| c.starts_with("--from="))
        .expect("the binary comes from the build stage");
    let binary = binary_copy.split_whitespace().last().unwrap();
    let entrypoint: Vec<String> = serde_json::from_str(get("ENTRYPOINT")[0]).unwrap();
    assert_eq!(entrypoint, [binary]);

    let health = get("HEALTHCHECK");
    let exec = health[0]
        .split_once("CMD ")
        .expect("HEALTHCHECK ... CMD [...]")
        .1;
    let argv: Vec<String> = serde_json::from_str(exec).unwrap();
    assert_eq!(argv[0], binary);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let args = healthcheck_args(&argv);
    assert!(!args.ready);
    assert_eq!(
        port_of(&args.url),
        (settings.server.bind.port(), "/healthz".to_owned())
    );

    // The build context leaves out build output and secrets.
    let ignore = read(".dockerignore");
    for entry in ["target/", ".git/", "deploy/secrets/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore lacks {entry}"
        );
    }

    // And the binary serves what the health check asks for.
    let app = spawn_app().await;
    let healthy = switchboard::healthcheck::probe(&HealthcheckArgs {
        url: format!("{}/healthz", app.public),
        ..args
    })
    .await;
    assert!(healthy.is_ok(), "{healthy:?}");
    app.stop().await;
}

#[test]
fn compose_runs_redis_with_aof_and_the_gateway_locked_down_with_file_secrets() {
    let compose = yaml("deploy/compose.yaml");
    let services = &compose["services"];
    let gateway = &services["switchboard"];
    let secrets: BTreeSet<String> = seq(&gateway["secrets"])
        .iter()
        .map(|secret| {
            let source = s(&secret["source"]);
            let file = s(&compose["secrets"][source]["file"]);
            assert!(file.starts_with("./secrets/"), "{source}: {file}");
            s(&secret["target"])
                .trim_start_matches("switchboard/")
                .to_owned()
        })
        .collect();
    let settings = load_with_secrets("deploy/config/switchboard.toml", &secrets);

    // Locked down.
    assert_eq!(gateway["read_only"], Value::Bool(true));
    assert_ne!(s(&gateway["user"]).split(':').next().unwrap(), "0");
    assert_eq!(seq(&gateway["cap_drop"])[0], "ALL");
    assert!(
        seq(&gateway["security_opt"])
            .iter()
            .any(|o| s(o).starts_with("no-new-privileges"))
    );
    // Ports: webhooks published; admin only on the host's loopback.
    let ports: Vec<&str> = seq(&gateway["ports"]).iter().map(s).collect();
    let public = settings.server.bind.port();
    let admin = settings.server.admin_bind.port();
    assert!(
        ports.contains(&format!("{public}:{public}").as_str()),
        "{ports:?}"
    );
    for port in &ports {
        if port.ends_with(&format!(":{admin}")) {
            assert!(port.starts_with("127.0.0.1:"), "admin published: {port}");
        }
    }
    // The config it mounts is the one SWITCHBOARD_CONFIG names.
    let config = s(&gateway["environment"]["SWITCHBOARD_CONFIG"]);
    assert!(
        seq(&gateway["volumes"])
            .iter()
            .any(|v| s(v) == format!("./config/switchboard.toml:{config}:ro")),
        "{config}"
    );
    assert!(repo().join("deploy/config/switchboard.toml").is_file());
    // Health check: the binary, on the configured port.
    let test: Vec<&str> = seq(&gateway["healthcheck"]["test"]).iter().map(s).collect();
    assert_eq!(test[0], "CMD");
    let args = healthcheck_args(&test[1..]);
    assert_eq!(port_of(&args.url), (public, "/healthz".to_owned()));
    // Docker waits longer than the gateway's own grace period.
    let stop: u64 = s(&gateway["stop_grace_period"])
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(stop > settings.server.shutdown_grace_secs, "{stop}");
    assert_eq!(
        s(&gateway["depends_on"]["redis"]["condition"]),
        "service_healthy"
    );

    // Redis: append-only file, password from a secret, health check.
    let redis = &services["redis"];
    let command = seq(&redis["command"])
        .iter()
        .map(s)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(command.contains("--appendonly yes"), "{command}");
    assert!(command.contains("/run/secrets/redis_password"), "{command}");
    assert!(redis["healthcheck"]["test"].is_sequence());
    assert!(
        seq(&redis["volumes"])
            .iter()
            .any(|v| s(v).ends_with(":/data")),
        "Redis data on a volume"
    );
    let url = &settings.store.url;
    assert!(
        url.contains("//redis:"),
        "the gateway reaches the redis service: {url}"
    );
}

struct Manifests {
    docs: Vec<Value>,
}

impl Manifests {
    fn load(dir: &str) -> (Manifests, Value) {
        let kustomization = yaml(&format!("{dir}/kustomization.yaml"));
        let mut docs = Vec::new();
        for resource in seq(&kustomization["resources"]) {
            let path = format!("{dir}/{}", s(resource));
            assert!(repo().join(&path).exists(), "{path} is listed but missing");
            if path.ends_with(".yaml") {
                docs.extend(yaml_docs(&path));
            }
        }
        (Manifests { docs }, kustomization)
    }

    fn kind(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    fn one(&self, kind: &str) -> &Value {
        let found = self.kind(kind);
        assert_eq!(found.len(), 1, "one {kind} expected");
        found[0]
    }
}

fn labels(value: &Value) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (s(k).to_owned(), s(v).to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn selects(selector: &Value, pod: &BTreeMap<String, String>) -> bool {
    let wanted = labels(&selector["matchLabels"]);
    !wanted.is_empty() && wanted.iter().all(|(k, v)| pod.get(k) == Some(v))
}

#[tokio::test]
async fn kubernetes_manifests_agree_with_the_config_they_mount_and_the_binary() {
    let (base, kustomization) = Manifests::load("deploy/kubernetes/base");
    let deployment = base.one("Deployment");
    let pod = &deployment["spec"]["template"];
    let pod_labels = labels(&pod["metadata"]["labels"]);
    let spec = &pod["spec"];
    let container = &seq(&spec["containers"])[0];

    // The secret volume lists its keys; the config must load with exactly those.
    let volumes = seq(&spec["volumes"]);
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    let mounts = seq(&container["volumeMounts"]);
    let mount_of = |name: &str| {
        let mount = mounts.iter().find(|m| m["name"] == name).unwrap();
        assert_eq!(
            mount["readOnly"],
            Value::Bool(true),
            "{name} mounted writable"
        );
        s(&mount["mountPath"]).to_owned()
    };
    assert_eq!(format!("{}/", mount_of("secrets")), SECRETS_DIR);
    let secret_keys: BTreeSet<String> = seq(&volume("secrets")["secret"]["items"])
        .iter()
        .map(|item| {
            assert_eq!(item["key"], item["path"]);
            s(&item["key"]).to_owned()
        })
        .collect();
    let config_file = seq(&kustomization["configMapGenerator"][0]["files"])[0].clone();
    let config_file = s(&config_file);
    let settings = load_with_secrets(
        &format!("deploy/kubernetes/base/{config_file}"),
        &secret_keys,
    );
    assert!(!settings.demo && !settings.sandbox);
    assert_eq!(
        s(&volume("config")["configMap"]["name"]),
        s(&kustomization["configMapGenerator"][0]["name"])
    );
    let env: BTreeMap<String, String> = seq(&container["env"])
        .iter()
        .map(|e| (s(&e["name"]).to_owned(), s(&e["value"]).to_owned()))
        .collect();
    assert_eq!(
        env["SWITCHBOARD_CONFIG"],
        format!("{}/{config_file}", mount_of("config"))
    );

    // Ports by name.
    let ports: BTreeMap<String, u16> = seq(&container["ports"])
        .iter()
        .map(|p| {
            (
                s(&p["name"]).to_owned(),
                u16::try_from(p["containerPort"].as_u64().unwrap()).unwrap(),
            )
        })
        .collect();
    assert_eq!(ports["http"], settings.server.bind.port());
    assert_eq!(ports["admin"], settings.server.admin_bind.port());

    // Probes: liveness and startup on the public /healthz; readiness is the
    // binary asking the admin listener's /readyz with the probe token.
    for probe in ["livenessProbe", "startupProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!(s(&get["path"]), "/healthz", "{probe}");
        assert_eq!(s(&get["port"]), "http", "{probe}");
    }
    let command: Vec<&str> = seq(&container["readinessProbe"]["exec"]["command"])
        .iter()
        .map(s)
        .collect();
    let ready = healthcheck_args(&command);
    assert!(ready.ready);
    assert_eq!(port_of(&ready.admin_url).0, ports["admin"]);
    let token = ready.admin_token.clone().expect("a token for /readyz");
    let token_file = token
        .strip_prefix('@')
        .expect("the token comes from a file");
    let token_name = token_file
        .strip_prefix(SECRETS_DIR)
        .expect("a mounted secret");
    assert!(
        secret_keys.contains(token_name),
        "{token_name} is not mounted"
    );
    let probe_role = settings
        .server
        .admin_tokens
        .iter()
        .find(|t| t.name == "probe")
        .map(|t| t.role);
    assert_eq!(
        probe_role,
        Some(switchboard::config::Role::ReadOnly),
        "the probe's token is read-only"
    );

    // Graceful shutdown fits in the termination grace period.
    let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    let pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        grace > pre_stop + settings.server.shutdown_grace_secs,
        "terminationGracePeriodSeconds {grace} <= preStop {pre_stop} + shutdown_grace_secs {}",
        settings.server.shutdown_grace_secs
    );

    // Security context.
    assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(3));
    assert_eq!(spec["securityContext"]["runAsNonRoot"], Value::Bool(true));
    assert_ne!(spec["securityContext"]["runAsUser"].as_u64(), Some(0));
    assert_eq!(spec["automountServiceAccountToken"], Value::Bool(false));
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], Value::Bool(true));
    assert_eq!(security["allowPrivilegeEscalation"], Value::Bool(false));
    assert_eq!(seq(&security["capabilities"]["drop"])[0], "ALL");
    let resources = &container["resources"];
    for key in ["requests/cpu", "requests/memory", "limits/memory"] {
        let (a, b) = key.split_once('/').unwrap();
        assert!(resources[a][b].is_string(), "resources.{a}.{b} unset");
    }

    // Services point at named container ports; the public one has no admin port.
    for service in base.kind("Service") {
        assert!(selects(
            &serde_norway::to_value(BTreeMap::from([(
                "matchLabels",
                service["spec"]["selector"].clone()
            )]))
            .unwrap(),
            &pod_labels
        ));
        for port in seq(&service["spec"]["ports"]) {
            assert!(ports.contains_key(s(&port["targetPort"])), "{port:?}");
        }
    }
    // The Ingress has TLS and routes only webhooks to the http port.
    let ingress = base.one("Ingress");
    assert!(!seq(&ingress["spec"]["tls"]).is_empty());
    let public_service = base
        .kind("Service")
        .into_iter()
        .find(|svc| {
            seq(&svc["spec"]["ports"])
                .iter()
                .any(|p| p["targetPort"] == "http")
        })
        .unwrap();
    for rule in seq(&ingress["spec"]["rules"]) {
        for path in seq(&rule["http"]["paths"]) {
            assert!(s(&path["path"]).starts_with("/webhooks"), "{path:?}");
            let backend = &path["backend"]["service"];
            assert_eq!(backend["name"], public_service["metadata"]["name"]);
            let port = &seq(&public_service["spec"]["ports"])[0];
            assert_eq!(backend["port"]["name"], port["name"]);
        }
    }
    // The admin port is only open to selected sources, never to everyone.
    let policy = base.one("NetworkPolicy");
    assert!(selects(&policy["spec"]["podSelector"], &pod_labels));
    for rule in seq(&policy["spec"]["ingress"]) {
        let opens_admin = seq(&rule["ports"]).iter().any(|p| p["port"] == "admin");
        if opens_admin {
            let from = seq(&rule["from"]);
            assert!(!from.is_empty(), "admin open to all");
            assert!(from.iter().all(|f| f.get("ipBlock").is_none()), "{from:?}");
        }
        assert!(
            !rule["from"].is_null(),
            "an ingress rule open to all: {rule:?}"
        );
    }
    // Disruption budget, autoscaler and replicas fit together.
    let pdb = base.one("PodDisruptionBudget");
    assert!(selects(&pdb["spec"]["selector"], &pod_labels));
    let hpa = base.one("HorizontalPodAutoscaler");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    let min = hpa["spec"]["minReplicas"].as_u64().unwrap();
    let max = hpa["spec"]["maxReplicas"].as_u64().unwrap();
    assert!(min >= 3 && max >= min, "{min}..{max}");
    assert!(
        max <= u64::from(settings.pipeline.partitions),
        "more replicas than stream partitions would idle"
    );

    // The example overlay builds on the base and provides its secret keys.
    let overlay = yaml("deploy/kubernetes/overlays/example/kustomization.yaml");
    let generated: BTreeSet<String> = seq(&overlay["secretGenerator"][0]["files"])
        .iter()
        .map(|f| {
            Path::new(s(f))
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        s(&overlay["secretGenerator"][0]["name"]),
        s(&volume("secrets")["secret"]["secretName"])
    );
    assert_eq!(generated, secret_keys);
    for resource in seq(&overlay["resources"]) {
        let path = repo()
            .join("deploy/kubernetes/overlays/example")
            .join(s(resource));
        assert!(path.exists(), "{}", path.display());
    }

    // The binary serves the probe paths on the listeners the ports name.
    let app = spawn_app().await;
    assert_eq!(
        app.client
            .get(format!("{}/healthz", app.public))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(app.admin_get("/readyz").await.status(), 200);
    app.stop().await;
}
