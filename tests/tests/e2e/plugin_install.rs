//! `kubectl gitops install` / `uninstall` against the real control plane. No kubelet runs
//! here, so the installed agent never starts: the tests assert on the objects. What the agent
//! managed comes from the real agent (run as a local process with the same Role) syncing the
//! catalog example, then stopped, as if its pod had gone.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;
use renderer::protocol::{
    APPLYSET_GROUP_KINDS_ANNOTATION, APPLYSET_PART_OF_LABEL, PARENT_NAME, PLUGIN_FIELD_MANAGER,
    parse_group_kinds,
};
use serde_json::Value;
use tests::cluster::{ADMIN_CONTEXT, TestNamespace, admin_client, kubeconfig_path};

use crate::agent_harness::dynamic_api;
use crate::plugin_harness::{Output, synced_catalog};

/// `kubectl gitops ARGS -n NS` as the admin, stdin not a terminal.
fn plugin(ns: &str, args: &[&str]) -> Result<Output> {
    let binary = tests::binaries::workspace_binary("plugin", "kubectl-gitops")?;
    let out = Command::new(binary)
        .args(args)
        .arg(format!("--kubeconfig={}", kubeconfig_path()?.display()))
        .arg(format!("--context={ADMIN_CONTEXT}"))
        .arg(format!("--namespace={ns}"))
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .context("running kubectl-gitops")?;
    Ok(Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The labels `manifests/base` puts on every agent object.
const AGENT_SELECTOR: &str =
    "app.kubernetes.io/name=gitops-agent,app.kubernetes.io/part-of=kubectl-gitops";

/// The agent's kinds, with the versions this API server serves.
const AGENT_TYPES: [(&str, &str); 6] = [
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("v1", "Secret"),
    ("apps/v1", "Deployment"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
];

/// `Kind/name` → object, for every object in `ns` labelled as the agent's.
async fn agent_objects(ns: &str) -> Result<Vec<(String, Value)>> {
    let client = admin_client().await?;
    let mut out = Vec::new();
    for (api_version, kind) in AGENT_TYPES {
        let list = dynamic_api(&client, ns, api_version, kind)
            .list(&ListParams::default().labels(AGENT_SELECTOR))
            .await?;
        for item in list.items {
            let name = item.metadata.name.clone().unwrap_or_default();
            out.push((format!("{kind}/{name}"), serde_json::to_value(&item)?));
        }
    }
    Ok(out)
}

fn keys(objects: &[(String, Value)]) -> Vec<&str> {
    objects.iter().map(|(k, _)| k.as_str()).collect()
}

fn find<'a>(objects: &'a [(String, Value)], prefix: &str) -> &'a Value {
    objects
        .iter()
        .find(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {prefix} among {:?}", keys(objects)))
}

#[tokio::test]
async fn install_creates_exactly_the_agent_objects_and_reinstall_updates_them() -> Result<()> {
    let ns = TestNamespace::create("install").await?;
    let token = tempfile::NamedTempFile::new()?;
    std::fs::write(token.path(), "hunter2-token\n")?;
    let token_flag = format!("--git-token-file={}", token.path().display());
    let install = [
        "install",
        "--repo=https://git.example.com/shop/deploy.git",
        "--path=overlays/prod",
        "--revision=v1.0.0",
        "--image=registry.example.com/gitops-agent:test",
        &token_flag,
    ];

    let dry = plugin(ns.name(), &[&install[..], &["--dry-run"]].concat())?;
    assert_eq!(dry.code, 0, "{dry}");
    assert!(
        dry.stdout.contains("+++ install/Deployment/gitops-agent"),
        "{dry}"
    );
    assert!(
        !dry.stdout.contains("hunter2"),
        "a Secret value was printed:\n{dry}"
    );
    assert!(
        agent_objects(ns.name()).await?.is_empty(),
        "--dry-run applied something"
    );

    // Without --yes and without a terminal nobody can answer: refuse, apply nothing.
    let unasked = plugin(ns.name(), &install)?;
    assert_eq!(unasked.code, 2, "{unasked}");
    assert!(unasked.stderr.contains("--yes"), "{unasked}");
    assert!(agent_objects(ns.name()).await?.is_empty());

    let installed = plugin(ns.name(), &[&install[..], &["--yes"]].concat())?;
    assert_eq!(installed.code, 0, "{installed}");
    assert!(!installed.stdout.contains("hunter2"), "{installed}");
    let objects = agent_objects(ns.name()).await?;
    let mut kinds: Vec<&str> = keys(&objects)
        .into_iter()
        .map(|k| k.split('/').next().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "Deployment",
            "NetworkPolicy",
            "Role",
            "RoleBinding",
            "Secret",
            "ServiceAccount"
        ],
        "{:?}",
        keys(&objects)
    );
    let deployment = find(&objects, "Deployment/gitops-agent");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example.com/gitops-agent:test");
    let args: Vec<&str> = container["args"]
        .as_array()
        .context("args")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for expected in [
        "--repo=https://git.example.com/shop/deploy.git",
        "--path=overlays/prod",
        "--revision=v1.0.0",
        "--git-token-file=/var/run/secrets/gitops-agent/token",
        "--prune",
    ] {
        assert!(args.contains(&expected), "{expected} not in {args:?}");
    }
    let secret = find(&objects, "Secret/gitops-agent-credentials-");
    assert_eq!(secret["data"]["token"], "aHVudGVyMi10b2tlbgo=");
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .context("volumes")?;
    assert!(
        volumes
            .iter()
            .any(|v| v["secret"]["secretName"] == secret["metadata"]["name"]),
        "{volumes:?}"
    );
    for (key, object) in &objects {
        let managers: BTreeSet<&str> = object["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            // The API server's controllers update what they own (a Deployment's status and
            // revision annotation); only applies say who declared the object.
            .filter(|m| m["operation"] == "Apply")
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert_eq!(managers, BTreeSet::from([PLUGIN_FIELD_MANAGER]), "{key}");
    }

    let again = plugin(ns.name(), &[&install[..], &["--yes"]].concat())?;
    assert_eq!(again.code, 0, "{again}");
    assert_eq!(
        again.stdout, "",
        "an identical install changed something:\n{again}"
    );
    assert!(again.stderr.contains("up to date"), "{again}");

    // A new revision, no credentials: the args change and the old Secret goes.
    let changed = plugin(
        ns.name(),
        &[
            "install",
            "--repo=https://git.example.com/shop/deploy.git",
            "--path=overlays/prod",
            "--revision=v1.1.0",
            "--image=registry.example.com/gitops-agent:test",
            "--yes",
        ],
    )?;
    assert_eq!(changed.code, 0, "{changed}");
    assert!(
        changed.stdout.contains("+        - --revision=v1.1.0"),
        "{changed}"
    );
    assert!(
        changed.stdout.contains("-        - --revision=v1.0.0"),
        "{changed}"
    );
    assert!(!changed.stdout.contains("hunter2"), "{changed}");
    let objects = agent_objects(ns.name()).await?;
    assert_eq!(objects.len(), 5, "{:?}", keys(&objects));
    assert!(!keys(&objects).iter().any(|k| k.starts_with("Secret/")));
    let args = &find(&objects, "Deployment/")["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(
        args.as_array()
            .is_some_and(|a| a.contains(&Value::from("--revision=v1.1.0"))
                && !a
                    .iter()
                    .any(|x| x.as_str().unwrap_or("").starts_with("--git-token-file"))),
        "{args}"
    );
    Ok(())
}

/// `Kind/name` of every member of the namespace's ApplySet, from the parent's group-kinds.
async fn managed(ns: &str) -> Result<Vec<String>> {
    let client = admin_client().await?;
    let Some(parent) = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(PARENT_NAME)
        .await?
    else {
        return Ok(Vec::new());
    };
    let annotations = parent.metadata.annotations.unwrap_or_default();
    let id = parent.metadata.labels.unwrap_or_default()["applyset.kubernetes.io/id"].clone();
    let mut out = Vec::new();
    for gk in parse_group_kinds(&annotations[APPLYSET_GROUP_KINDS_ANNOTATION]) {
        let api_version = match gk.group.as_str() {
            "" => "v1".to_string(),
            "autoscaling" => "autoscaling/v2".to_string(),
            group => format!("{group}/v1"),
        };
        let list = dynamic_api(&client, ns, &api_version, &gk.kind)
            .list(&ListParams::default().labels(&format!("{APPLYSET_PART_OF_LABEL}={id}")))
            .await?;
        out.extend(list.items.iter().map(|o| {
            format!(
                "{}/{}",
                gk.kind,
                o.metadata.name.clone().unwrap_or_default()
            )
        }));
    }
    out.sort();
    Ok(out)
}

async fn parent_exists(ns: &str) -> Result<bool> {
    Ok(Api::<ConfigMap>::namespaced(admin_client().await?, ns)
        .get_opt(PARENT_NAME)
        .await?
        .is_some())
}

fn install_for(ns: &str) -> Result<()> {
    let out = plugin(
        ns,
        &[
            "install",
            "--repo=https://git.example.com/catalog.git",
            "--yes",
        ],
    )?;
    assert_eq!(out.code, 0, "{out}");
    Ok(())
}

#[tokio::test]
async fn uninstall_keeps_managed_objects_when_asked() -> Result<()> {
    let (env, _) = synced_catalog("uninst-keep").await?;
    let ns = env.ns.name();
    let members = managed(ns).await?;
    assert_eq!(members.len(), 4, "{members:?}");
    install_for(ns)?;

    // Nobody to ask and no choice given: refuse, delete nothing.
    let refused = plugin(ns, &["uninstall"])?;
    assert_eq!(refused.code, 2, "{refused}");
    assert!(refused.stderr.contains("--keep-managed"), "{refused}");
    assert_eq!(agent_objects(ns).await?.len(), 5);

    let out = plugin(ns, &["uninstall", "--keep-managed", "--yes"])?;
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("delete Deployment/gitops-agent"),
        "{out}"
    );
    assert!(
        out.stdout.contains("keep Deployment/catalog-api (managed)"),
        "{out}"
    );
    assert_eq!(keys(&agent_objects(ns).await?), Vec::<&str>::new());
    assert_eq!(managed(ns).await?, members);
    assert!(parent_exists(ns).await?, "the ApplySet parent was deleted");
    Ok(())
}

#[tokio::test]
async fn uninstall_deletes_managed_objects_when_asked() -> Result<()> {
    let (env, _) = synced_catalog("uninst-delete").await?;
    let ns = env.ns.name();
    let members = managed(ns).await?;
    assert_eq!(members.len(), 4, "{members:?}");
    install_for(ns)?;

    let dry = plugin(ns, &["uninstall", "--delete-managed", "--dry-run"])?;
    assert_eq!(dry.code, 0, "{dry}");
    assert_eq!(
        agent_objects(ns).await?.len(),
        5,
        "--dry-run deleted something"
    );
    assert_eq!(managed(ns).await?, members);

    let out = plugin(ns, &["uninstall", "--delete-managed", "--yes"])?;
    assert_eq!(out.code, 0, "{out}");
    for member in &members {
        assert!(
            out.stdout.contains(&format!("delete {member} (managed)")),
            "{member}: {out}"
        );
    }
    assert_eq!(keys(&agent_objects(ns).await?), Vec::<&str>::new());
    let client = admin_client().await?;
    for member in &members {
        let (kind, name) = member.split_once('/').unwrap();
        let api_version = match kind {
            "Deployment" => "apps/v1",
            "HorizontalPodAutoscaler" => "autoscaling/v2",
            _ => "v1",
        };
        let left = dynamic_api(&client, ns, api_version, kind)
            .get_opt(name)
            .await?;
        assert!(left.is_none(), "{member} is still there");
    }
    assert!(
        !parent_exists(ns).await?,
        "the ApplySet parent is still there"
    );
    Ok(())
}

/// Issue #14: `install` takes the agent's verification: --verify and the trusted keys, stored
/// in the credentials Secret and passed where the Deployment mounts it; one without the other
/// is refused before anything is applied; an unverified git:// install is warned about.
#[tokio::test]
async fn install_sets_verification_and_warns_about_unverified_plain_transports() -> Result<()> {
    let ns = TestNamespace::create("install-verify").await?;
    let keys = tempfile::NamedTempFile::new()?;
    let armored =
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ0000\n-----END PGP PUBLIC KEY BLOCK-----\n";
    std::fs::write(keys.path(), armored)?;
    let keys_flag = format!("--trusted-keys={}", keys.path().display());

    let half = plugin(
        ns.name(),
        &[
            "install",
            "--repo=https://git.example.com/r.git",
            "--verify=openpgp",
            "--yes",
        ],
    )?;
    assert_eq!(half.code, 2, "{half}");
    assert!(
        half.stderr
            .contains("--verify=openpgp needs --trusted-keys"),
        "{half}"
    );
    assert!(agent_objects(ns.name()).await?.is_empty());

    let out = plugin(
        ns.name(),
        &[
            "install",
            "--repo=git://127.0.0.1:9/r.git",
            "--verify=openpgp",
            &keys_flag,
            "--yes",
        ],
    )?;
    assert_eq!(out.code, 0, "{out}");
    assert!(
        !out.stderr.contains("UNVERIFIED"),
        "verified: no warning\n{out}"
    );
    let objects = agent_objects(ns.name()).await?;
    let args =
        find(&objects, "Deployment/")["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    let args: Vec<&str> = args
        .as_array()
        .context("args")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--verify=openpgp"), "{args:?}");
    assert!(
        args.contains(&"--trusted-keys=/var/run/secrets/gitops-agent/trusted-keys"),
        "{args:?}"
    );
    let secret = find(&objects, "Secret/");
    let stored = secret["data"]["trusted-keys"]
        .as_str()
        .context("trusted-keys")?;
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD.decode(stored)?,
        armored.as_bytes()
    );

    // Unverified over git://: installed, with the warning first.
    let ns2 = TestNamespace::create("install-insecure").await?;
    let warned = plugin(
        ns2.name(),
        &["install", "--repo=git://127.0.0.1:9/r.git", "--yes"],
    )?;
    assert_eq!(warned.code, 0, "{warned}");
    assert!(
        warned
            .stderr
            .contains("UNVERIFIED over an unauthenticated transport"),
        "{warned}"
    );
    Ok(())
}
