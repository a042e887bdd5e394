//! What `kubectl gitops install` applies: `manifests/base`, compiled into the binary (a krew
//! install has no checkout), under a generated overlay that sets the namespace, the agent's
//! arguments, its image and a credentials Secret. Rendered by the same renderer as
//! everything else, so the result is what `kubectl kustomize` would print for that overlay.

use std::collections::BTreeMap;

use renderer::{EntryKind, RenderOptions, Source, SourceError};
use serde_json::{Value, json};

/// The base's files, relative to `manifests/base`.
const BASE_FILES: [(&str, &str); 6] = [
    (
        "kustomization.yaml",
        include_str!("../../../manifests/base/kustomization.yaml"),
    ),
    (
        "serviceaccount.yaml",
        include_str!("../../../manifests/base/serviceaccount.yaml"),
    ),
    (
        "role.yaml",
        include_str!("../../../manifests/base/role.yaml"),
    ),
    (
        "rolebinding.yaml",
        include_str!("../../../manifests/base/rolebinding.yaml"),
    ),
    (
        "deployment.yaml",
        include_str!("../../../manifests/base/deployment.yaml"),
    ),
    (
        "networkpolicy.yaml",
        include_str!("../../../manifests/base/networkpolicy.yaml"),
    ),
];

/// Labels every agent object carries (the base's `labels:`); `uninstall` selects by them.
pub const AGENT_SELECTOR: &str =
    "app.kubernetes.io/name=gitops-agent,app.kubernetes.io/part-of=kubectl-gitops";
/// The base's agent Deployment and its container.
pub const AGENT_DEPLOYMENT: &str = renderer::protocol::AGENT_NAME;
const AGENT_CONTAINER: &str = "agent";
/// The Secret the base mounts (optionally) at [`CREDENTIALS_DIR`].
const CREDENTIALS_SECRET: &str = renderer::protocol::AGENT_CREDENTIALS_PREFIX;
const CREDENTIALS_DIR: &str = "/var/run/secrets/gitops-agent";
/// Every kind the base (with credentials) renders, as `(group, kind)`.
pub const AGENT_KINDS: [(&str, &str); 6] = [
    ("", "ServiceAccount"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("", "Secret"),
    ("apps", "Deployment"),
    ("networking.k8s.io", "NetworkPolicy"),
];

/// A Git credential file the agent reads, by the flag that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Token,
    Username,
    Password,
    SshKey,
    KnownHosts,
    /// age private keys for SOPS-encrypted files (not a Git credential, but mounted alike).
    SopsAgeKey,
    /// The public keys signatures are verified against (`--verify`): public, but kept with
    /// the rest so one Secret holds everything the agent reads from files.
    TrustedKeys,
}

impl Credential {
    /// The key in the Secret, and so the file name under [`CREDENTIALS_DIR`].
    fn key(self) -> &'static str {
        match self {
            Credential::Token => "token",
            Credential::Username => "username",
            Credential::Password => "password",
            Credential::SshKey => "ssh-key",
            Credential::KnownHosts => "known_hosts",
            Credential::SopsAgeKey => "sops-age-keys.txt",
            Credential::TrustedKeys => "trusted-keys",
        }
    }

    /// The agent flag (and the install flag) that names the file.
    pub fn flag(self) -> &'static str {
        match self {
            Credential::Token => "--git-token-file",
            Credential::Username => "--git-username-file",
            Credential::Password => "--git-password-file",
            Credential::SshKey => "--ssh-key-file",
            Credential::KnownHosts => "--known-hosts-file",
            Credential::SopsAgeKey => "--sops-age-key-file",
            Credential::TrustedKeys => "--trusted-keys",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct InstallSettings {
    pub namespace: String,
    pub repo: String,
    pub path: String,
    pub revision: String,
    /// A full image reference replacing the base's, e.g. `registry.example.com/agent:1.2`.
    pub image: Option<String>,
    /// Credential files' contents, in flag order.
    pub credentials: Vec<(Credential, Vec<u8>)>,
    /// The agent's `--verify` (`ssh`, `openpgp`), when it verifies signatures.
    pub verify: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallManifestError {
    #[error("manifests/base/deployment.yaml has no container {AGENT_CONTAINER:?} with args")]
    NoAgentArgs,
    #[error("{0}")]
    Render(#[from] renderer::RenderError),
}

/// The objects to apply, in `kubectl kustomize`'s order.
pub fn render_install(settings: &InstallSettings) -> Result<Vec<Value>, InstallManifestError> {
    let source = InstallSource::new(settings)?;
    let rendered = renderer::render(&source, "install", &RenderOptions::default())?;
    Ok(rendered.objects.into_iter().map(|o| o.value).collect())
}

/// The base's agent arguments with the repository, path and revision replaced and the
/// credential flags added; every other flag stays as the base has it.
pub fn agent_args(base: &[String], settings: &InstallSettings) -> Vec<String> {
    let mut replaced = vec!["--repo", "--path", "--revision"];
    if settings.verify.is_some() {
        replaced.push("--verify");
    }
    let mut args = vec![
        format!("--repo={}", settings.repo),
        format!("--path={}", settings.path),
        format!("--revision={}", settings.revision),
    ];
    args.extend(
        base.iter()
            .filter(|arg| {
                let flag = arg.split('=').next().unwrap_or_default();
                !replaced.contains(&flag)
            })
            .cloned(),
    );
    if let Some(verify) = &settings.verify {
        args.push(format!("--verify={verify}"));
    }
    for (credential, _) in &settings.credentials {
        args.push(format!(
            "{}={CREDENTIALS_DIR}/{}",
            credential.flag(),
            credential.key()
        ));
    }
    args
}

fn base_agent_args() -> Result<Vec<String>, InstallManifestError> {
    let (_, text) = BASE_FILES
        .iter()
        .find(|(name, _)| *name == "deployment.yaml")
        .ok_or(InstallManifestError::NoAgentArgs)?;
    let doc = renderer::yaml::parse_documents(text)
        .ok()
        .and_then(|docs| docs.into_iter().next())
        .ok_or(InstallManifestError::NoAgentArgs)?;
    doc.value["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|containers| containers.iter().find(|c| c["name"] == AGENT_CONTAINER))
        .and_then(|c| c["args"].as_array())
        .map(|args| {
            args.iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect()
        })
        .ok_or(InstallManifestError::NoAgentArgs)
}

/// `name[:tag]` or `name@digest` as a kustomize `images:` entry for the base's image.
fn image_override(reference: &str) -> Value {
    let base_name = "ghcr.io/kubectl-gitops/gitops-agent";
    if let Some((name, digest)) = reference.split_once('@') {
        return json!({"name": base_name, "newName": name, "digest": digest});
    }
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_slash..].rfind(':') {
        Some(colon) => {
            let (name, tag) = reference.split_at(last_slash + colon);
            json!({"name": base_name, "newName": name, "newTag": &tag[1..]})
        }
        None => json!({"name": base_name, "newName": reference, "newTag": "latest"}),
    }
}

/// The overlay: JSON is YAML, so serde_json does every bit of quoting.
fn overlay(settings: &InstallSettings, base_args: &[String]) -> Value {
    let args = agent_args(base_args, settings);
    let mut kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": settings.namespace,
        "resources": ["../base"],
        "patches": [{
            "target": {"group": "apps", "version": "v1", "kind": "Deployment", "name": AGENT_DEPLOYMENT},
            "patch": serde_json::to_string(&json!([{
                "op": "replace",
                "path": "/spec/template/spec/containers/0/args",
                "value": args,
            }])).expect("JSON"),
        }],
    });
    if let Some(image) = &settings.image {
        kustomization["images"] = json!([image_override(image)]);
    }
    if !settings.credentials.is_empty() {
        let files: Vec<String> = settings
            .credentials
            .iter()
            .map(|(c, _)| format!("{}=credentials/{}", c.key(), c.key()))
            .collect();
        kustomization["secretGenerator"] = json!([{"name": CREDENTIALS_SECRET, "files": files}]);
        // The base's labels do not reach what the overlay generates; uninstall finds it by them.
        kustomization["labels"] = json!([{"pairs": {
            "app.kubernetes.io/name": "gitops-agent",
            "app.kubernetes.io/part-of": "kubectl-gitops",
        }}]);
    }
    kustomization
}

/// The files [`render_install`] renders, by path: `base/…`, `install/kustomization.yaml` and
/// `install/credentials/…`. Written to disk, `kubectl kustomize install` renders the same.
pub fn install_files(
    settings: &InstallSettings,
) -> Result<BTreeMap<String, Vec<u8>>, InstallManifestError> {
    Ok(InstallSource::new(settings)?.files)
}

/// `base/…` from the binary, `install/kustomization.yaml` and `install/credentials/…`.
struct InstallSource {
    files: BTreeMap<String, Vec<u8>>,
}

impl InstallSource {
    fn new(settings: &InstallSettings) -> Result<Self, InstallManifestError> {
        let base_args = base_agent_args()?;
        // The args patch replaces containers/0: the agent must stay the first container.
        let mut files: BTreeMap<String, Vec<u8>> = BASE_FILES
            .iter()
            .map(|(name, text)| (format!("base/{name}"), text.as_bytes().to_vec()))
            .collect();
        files.insert(
            "install/kustomization.yaml".into(),
            serde_json::to_vec_pretty(&overlay(settings, &base_args)).expect("JSON"),
        );
        for (credential, content) in &settings.credentials {
            files.insert(
                format!("install/credentials/{}", credential.key()),
                content.clone(),
            );
        }
        Ok(Self { files })
    }
}

impl Source for InstallSource {
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| SourceError::NotFound {
                path: path.to_string(),
            })
    }

    fn kind(&self, path: &str) -> Option<EntryKind> {
        if self.files.contains_key(path) {
            return Some(EntryKind::File);
        }
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        self.files
            .keys()
            .any(|f| f.starts_with(&prefix))
            .then_some(EntryKind::Dir)
    }

    fn list(&self, path: &str) -> Result<Vec<String>, SourceError> {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut names: Vec<String> = self
            .files
            .keys()
            .filter_map(|f| f.strip_prefix(&prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        names.dedup();
        if names.is_empty() {
            return Err(SourceError::NotFound {
                path: path.to_string(),
            });
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> InstallSettings {
        InstallSettings {
            namespace: "team-a".into(),
            repo: "https://git.example.com/team-a/deploy.git".into(),
            path: "overlays/prod".into(),
            revision: "v1.2.0".into(),
            ..Default::default()
        }
    }

    fn kinds(objects: &[Value]) -> Vec<String> {
        objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }

    fn container(objects: &[Value]) -> &Value {
        let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
        &deployment["spec"]["template"]["spec"]["containers"][0]
    }

    /// Only what the README documents reaches the agent: its one port, from namespaces that
    /// carry the agent-clients label; everything else (any other pod) is not admitted.
    #[test]
    fn the_network_policy_admits_only_labelled_namespaces_to_the_agents_port() {
        let objects = render_install(&settings()).unwrap();
        let policy = objects
            .iter()
            .find(|o| o["kind"] == "NetworkPolicy")
            .unwrap();
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        let ingress = policy["spec"]["ingress"].as_array().unwrap();
        assert_eq!(ingress.len(), 1, "{ingress:#?}");
        assert_eq!(
            ingress[0]["from"],
            json!([{"namespaceSelector": {"matchLabels": {renderer::protocol::AGENT_CLIENTS_LABEL: "true"}}}])
        );
        assert_eq!(
            ingress[0]["ports"],
            json!([{"protocol": "TCP", "port": 8080}])
        );
        let listen = container(&objects)["ports"][0]["containerPort"].clone();
        assert_eq!(listen, 8080, "the policy's port is the agent's");
    }

    #[test]
    fn renders_the_base_into_the_namespace_with_the_repository() {
        let objects = render_install(&settings()).unwrap();
        assert_eq!(
            kinds(&objects),
            [
                "ServiceAccount/gitops-agent",
                "Role/gitops-agent",
                "RoleBinding/gitops-agent",
                "Deployment/gitops-agent",
                "NetworkPolicy/gitops-agent",
            ]
        );
        assert!(
            objects
                .iter()
                .all(|o| o["metadata"]["namespace"] == "team-a")
        );
        let args: Vec<&str> = container(&objects)["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            &args[..3],
            [
                "--repo=https://git.example.com/team-a/deploy.git",
                "--path=overlays/prod",
                "--revision=v1.2.0",
            ]
        );
        assert!(
            args.contains(&"--prune") && args.contains(&"--self-heal"),
            "{args:?}"
        );
        assert_eq!(args.iter().filter(|a| a.starts_with("--repo")).count(), 1);
        assert_eq!(
            container(&objects)["image"],
            "ghcr.io/kubectl-gitops/gitops-agent:0.1.0"
        );
    }

    #[test]
    fn credentials_become_a_labelled_secret_the_agent_reads() {
        let mut s = settings();
        s.credentials = vec![
            (Credential::Token, b"s3cret\n".to_vec()),
            (
                Credential::KnownHosts,
                b"git.example.com ssh-ed25519 AAAA\n".to_vec(),
            ),
        ];
        let objects = render_install(&s).unwrap();
        let secret = objects.iter().find(|o| o["kind"] == "Secret").unwrap();
        let name = secret["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("gitops-agent-credentials-"), "{name}");
        assert_eq!(
            secret["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "kubectl-gitops"
        );
        assert_eq!(secret["data"]["token"], "czNjcmV0Cg==");
        let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
        let volumes = deployment["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap();
        let credentials = volumes.iter().find(|v| v["name"] == "credentials").unwrap();
        assert_eq!(credentials["secret"]["secretName"], name);
        let args = container(&objects)["args"].as_array().unwrap();
        assert!(args.contains(&json!(
            "--git-token-file=/var/run/secrets/gitops-agent/token"
        )));
        assert!(args.contains(&json!(
            "--known-hosts-file=/var/run/secrets/gitops-agent/known_hosts"
        )));
    }

    #[test]
    fn the_sops_age_key_goes_into_the_credentials_secret_and_the_agent_flag() {
        let mut s = settings();
        s.credentials = vec![(Credential::SopsAgeKey, b"AGE-SECRET-KEY-1QQQ\n".to_vec())];
        let objects = render_install(&s).unwrap();
        let secret = objects.iter().find(|o| o["kind"] == "Secret").unwrap();
        assert!(secret["data"]["sops-age-keys.txt"].is_string(), "{secret}");
        let args = container(&objects)["args"].as_array().unwrap();
        assert!(args.contains(&json!(
            "--sops-age-key-file=/var/run/secrets/gitops-agent/sops-age-keys.txt"
        )));
    }

    /// Issue #14: `install` sets the agent's --verify and mounts the trusted keys where
    /// --trusted-keys points.
    #[test]
    fn verify_and_trusted_keys_reach_the_agent() {
        let mut s = settings();
        s.verify = Some("openpgp".into());
        s.credentials = vec![(
            Credential::TrustedKeys,
            b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n".to_vec(),
        )];
        let objects = render_install(&s).unwrap();
        let secret = objects.iter().find(|o| o["kind"] == "Secret").unwrap();
        assert!(secret["data"]["trusted-keys"].is_string(), "{secret}");
        let args = container(&objects)["args"].as_array().unwrap();
        assert!(args.contains(&json!("--verify=openpgp")), "{args:?}");
        assert!(
            args.contains(&json!(
                "--trusted-keys=/var/run/secrets/gitops-agent/trusted-keys"
            )),
            "{args:?}"
        );
        assert_eq!(
            args.iter()
                .filter(|a| a.as_str().unwrap().starts_with("--verify"))
                .count(),
            1,
            "the base's own --verify is replaced"
        );
    }

    #[test]
    fn renders_exactly_like_kubectl_kustomize() {
        let mut s = settings();
        s.image = Some("registry.example.com:5000/gitops-agent:dev".into());
        s.credentials = vec![(Credential::Token, b"t0ken\n".to_vec())];
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in install_files(&s).unwrap() {
            let file = dir.path().join(&path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, content).unwrap();
        }
        let out = std::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(dir.path().join("install"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ours = renderer::yaml::to_yaml_stream(render_install(&s).unwrap().iter());
        assert_eq!(ours, String::from_utf8(out.stdout).unwrap());
    }

    #[test]
    fn image_overrides_keep_tags_digests_and_registry_ports_apart() {
        assert_eq!(
            image_override("registry.example.com:5000/agent:1.2"),
            json!({"name": "ghcr.io/kubectl-gitops/gitops-agent", "newName": "registry.example.com:5000/agent", "newTag": "1.2"})
        );
        assert_eq!(
            image_override("registry.example.com:5000/agent"),
            json!({"name": "ghcr.io/kubectl-gitops/gitops-agent", "newName": "registry.example.com:5000/agent", "newTag": "latest"})
        );
        assert_eq!(
            image_override("agent@sha256:abc"),
            json!({"name": "ghcr.io/kubectl-gitops/gitops-agent", "newName": "agent", "digest": "sha256:abc"})
        );
        let mut s = settings();
        s.image = Some("registry.example.com/agent@sha256:0123".into());
        let objects = render_install(&s).unwrap();
        assert_eq!(
            container(&objects)["image"],
            "registry.example.com/agent@sha256:0123"
        );
    }
}
