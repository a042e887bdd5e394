//! SOPS in the seed tree: an encrypted Secret and an encrypted `.env` read by a
//! `secretGenerator`, encrypted by the real `sops` and applied by the agent (as its
//! ServiceAccount) with the right data; a tampered file or a missing key fails the revision
//! with the file named and nothing of it applied; no plaintext in status, Events, logs or
//! metrics.

use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use renderer::protocol::SyncResult;
use tests::sops::{AgeKey, age_keygen, sops_ok};

use crate::agent_harness::{AgentEnv, http_request};

pub(crate) const PASSWORD: &str = "s3cr3t-Pa55word";
pub(crate) const TOKEN: &str = "tok-8f1e2d3c4b5a";

pub(crate) const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: catalog-db\n  labels:\n    app: catalog-api\ntype: Opaque\nstringData:\n  username: catalog\n  password: s3cr3t-Pa55word\n";
const DOTENV: &str = "# catalog-api settings\nAPI_TOKEN=tok-8f1e2d3c4b5a\nLOG_LEVEL=debug\n";

/// `sops -e` by the real tool, for `key`.
pub(crate) fn encrypt(key: &AgeKey, name: &str, plain: &str, extra: &[&str]) -> Result<String> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join(name), plain)?;
    let mut args = vec!["-e", "--age", &key.recipient];
    args.extend_from_slice(extra);
    args.push(name);
    Ok(String::from_utf8(sops_ok(dir.path(), None, &args)?)?)
}

/// The seed tree with the two encrypted files added to the prod overlay.
/// Returns the encrypted Secret file and the overlay's kustomization.yaml.
pub(crate) fn add_encrypted(env: &AgentEnv, key: &AgeKey) -> Result<(String, String)> {
    env.copy_into_repo("examples/catalog-api", "")?;
    let secret = encrypt(
        key,
        "db.enc.yaml",
        SECRET,
        &["--encrypted-regex", "^(data|stringData)$"],
    )?;
    let dotenv = encrypt(key, "app.enc.env", DOTENV, &[])?;
    env.repo.write("overlays/prod/db.enc.yaml", &secret)?;
    env.repo.write("overlays/prod/app.enc.env", &dotenv)?;
    let kustomization = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/catalog-api/overlays/prod/kustomization.yaml"),
    )?
    .replace(
        "- ../../base\n",
        "- ../../base\n- db.enc.yaml\nsecretGenerator:\n- name: catalog-env\n  envs:\n  - app.enc.env\n",
    );
    env.repo
        .write("overlays/prod/kustomization.yaml", &kustomization)?;
    Ok((secret, kustomization))
}

pub(crate) fn decoded(secret: &kube::api::DynamicObject, key: &str) -> Option<String> {
    let b64 = secret.data["data"][key].as_str()?;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).ok()?).ok()
}

async fn generated_secret(env: &AgentEnv) -> Result<Option<kube::api::DynamicObject>> {
    Ok(env
        .api(&env.admin().await?, "v1", "Secret")
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .find(|s| {
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("catalog-env-"))
        }))
}

/// Nothing the agent publishes holds a decrypted value.
async fn assert_no_plaintext(env: &AgentEnv) -> Result<()> {
    let status = env.status().await?.context("status")?;
    let status = serde_json::to_string(&status)?;
    let events: Api<Event> = Api::namespaced(env.admin().await?, env.ns.name());
    let events = serde_json::to_string(&events.list(&Default::default()).await?.items)?;
    let addr = env.listen_addr().await?;
    let (_, metrics) = http_request(addr, "GET", "/metrics", &[], b"")?;
    let logs = env.logs();
    for (what, text) in [
        ("status", &status),
        ("Events", &events),
        ("metrics", &metrics),
        ("logs", &logs),
    ] {
        for secret in [PASSWORD, TOKEN] {
            assert!(
                !text.contains(secret),
                "{what} holds a decrypted value:\n{text}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn agent_applies_sops_encrypted_secrets_and_refuses_a_tampered_file() -> Result<()> {
    let mut env = AgentEnv::new("agent-sops").await?;
    let key = age_keygen()?;
    let (secret, kustomization) = add_encrypted(&env, &key)?;
    let good = env.repo.commit("catalog-api with SOPS secrets")?;
    let key_file = env.scratch_file("age-keys.txt", &key.file_text)?;
    env.start(&[
        "--path=overlays/prod",
        &format!("--sops-age-key-file={}", key_file.display()),
    ])?;
    let status = env.wait_synced(&good).await?;
    assert_eq!(status.applied, 6, "{status:#?}");

    let db = env
        .get("v1", "Secret", "catalog-db")
        .await?
        .context("Secret catalog-db")?;
    assert_eq!(decoded(&db, "password").as_deref(), Some(PASSWORD));
    assert_eq!(decoded(&db, "username").as_deref(), Some("catalog"));
    assert!(db.data.get("sops").is_none(), "the sops block was applied");
    let generated = generated_secret(&env)
        .await?
        .context("generated Secret catalog-env-*")?;
    assert_eq!(decoded(&generated, "API_TOKEN").as_deref(), Some(TOKEN));
    assert_eq!(decoded(&generated, "LOG_LEVEL").as_deref(), Some("debug"));
    assert!(
        !generated.data["data"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("sops")),
        "{:?}",
        generated.data
    );
    assert_no_plaintext(&env).await?;

    // Edited in Git without re-encrypting (a label of the Secret), together with a new
    // ConfigMap: the MAC refuses the file, and nothing of the revision is applied.
    let tampered = env.repo.commit_files(
        &[
            (
                "overlays/prod/db.enc.yaml",
                &secret.replace("app: catalog-api", "app: catalog-api-edited"),
            ),
            (
                "overlays/prod/extra.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  a: b\n",
            ),
            (
                "overlays/prod/kustomization.yaml",
                &kustomization.replace("- db.enc.yaml\n", "- db.enc.yaml\n- extra.yaml\n"),
            ),
        ],
        "label edited by hand",
    )?;
    let status = env
        .wait_status(Duration::from_secs(30), |s| {
            s.last_attempted_revision.as_deref() == Some(tampered.as_str())
                && s.result == SyncResult::Failed
        })
        .await?;
    assert!(
        status.message.contains("overlays/prod/db.enc.yaml"),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("MAC mismatch"),
        "{}",
        status.message
    );
    assert_eq!(status.last_applied_revision.as_deref(), Some(good.as_str()));
    assert!(
        env.get("v1", "ConfigMap", "extra").await?.is_none(),
        "part of a refused revision was applied"
    );
    let db = env
        .get("v1", "Secret", "catalog-db")
        .await?
        .context("Secret catalog-db")?;
    assert_eq!(db.metadata.labels.unwrap_or_default()["app"], "catalog-api");
    assert_no_plaintext(&env).await?;
    Ok(())
}

#[tokio::test]
async fn agent_without_the_key_fails_naming_the_file_and_applies_nothing() -> Result<()> {
    let mut env = AgentEnv::new("agent-sops-nokey").await?;
    let key = age_keygen()?;
    add_encrypted(&env, &key)?;
    let commit = env.repo.commit("catalog-api with SOPS secrets")?;
    // A key, but not the one the files were encrypted for.
    let other = age_keygen()?;
    let key_file = env.scratch_file("age-keys.txt", &other.file_text)?;
    env.start(&[
        "--path=overlays/prod",
        &format!("--sops-age-key-file={}", key_file.display()),
    ])?;
    let status = env
        .wait_status(Duration::from_secs(30), |s| {
            s.last_attempted_revision.as_deref() == Some(commit.as_str())
                && s.result == SyncResult::Failed
        })
        .await?;
    assert!(
        status.message.contains("overlays/prod/"),
        "{}",
        status.message
    );
    assert!(
        status.message.contains(&key.recipient),
        "{}",
        status.message
    );
    assert!(
        env.get("apps/v1", "Deployment", "catalog-api")
            .await?
            .is_none()
    );
    assert!(env.get("v1", "Secret", "catalog-db").await?.is_none());
    assert_no_plaintext(&env).await?;
    Ok(())
}
