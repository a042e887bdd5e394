//! The plugin on a tree with SOPS files: `render` decrypts with the user's key and redacts,
//! names the files it could not decrypt without one; `diff` shows a changed encrypted value as
//! a redacted line; `backfill` of a break-glassed Secret commits a SOPS file that the real
//! `sops -d` decrypts to the live value.

use anyhow::{Context, Result};
use base64::Engine as _;
use tests::sops::{AgeKey, age_keygen, sops as run_sops};

use crate::agent_harness::AgentEnv;
use crate::agent_sops::{PASSWORD, SECRET, TOKEN, add_encrypted, decoded, encrypt};
use crate::plugin_harness::{Output, plugin_with_env};

const SECRET_FILE: &str = "overlays/prod/db.enc.yaml";

/// The prod overlay with the SOPS files, synced by the agent (then stopped).
async fn synced(prefix: &str) -> Result<(AgentEnv, AgeKey, String, std::path::PathBuf)> {
    let mut env = AgentEnv::new(prefix).await?;
    let key = age_keygen()?;
    let (_, kustomization) = add_encrypted(&env, &key)?;
    let commit = env.repo.commit("catalog-api with SOPS secrets")?;
    let key_file = env.scratch_file("age-keys.txt", &key.file_text)?;
    env.start(&[
        "--path=overlays/prod",
        &format!("--sops-age-key-file={}", key_file.display()),
    ])?;
    env.wait_synced(&commit).await?;
    env.kill();
    Ok((env, key, kustomization, key_file))
}

fn with_key<'a>(key_file: &'a str, home: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("SOPS_AGE_KEY_FILE", key_file), ("HOME", home)]
}

fn no_plaintext(out: &Output) {
    for secret in [PASSWORD, TOKEN, "n3w-Pa55word"] {
        assert!(!out.stdout.contains(secret), "stdout holds a value\n{out}");
        assert!(!out.stderr.contains(secret), "stderr holds a value\n{out}");
    }
}

#[tokio::test]
async fn render_and_diff_decrypt_but_never_print_values() -> Result<()> {
    let (env, key, _, key_file) = synced("plugin-sops").await?;
    let home = tempfile::tempdir()?;
    let home = home.path().to_str().unwrap();
    let key_file = key_file.to_str().unwrap();
    let vars = with_key(key_file, home);

    let out = plugin_with_env(&env, &["render", "overlays/prod"], &vars)?;
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("name: catalog-db"), "{out}");
    assert!(out.stdout.contains("password:"), "{out}");
    assert!(!out.stdout.contains("ENC["), "not decrypted\n{out}");
    no_plaintext(&out);
    let json = plugin_with_env(&env, &["render", "overlays/prod", "-o", "json"], &vars)?;
    assert_eq!(json.code, 0, "{json}");
    no_plaintext(&json);
    let shown = plugin_with_env(&env, &["render", "overlays/prod", "--show-secrets"], &vars)?;
    assert_eq!(shown.code, 0, "{shown}");
    assert!(shown.stdout.contains(PASSWORD), "{shown}");
    let token = base64::engine::general_purpose::STANDARD.encode(TOKEN);
    assert!(shown.stdout.contains(&token), "{shown}");

    // No key anywhere: the files are named, with their recipient, and nothing is printed.
    let nokey = plugin_with_env(&env, &["render", "overlays/prod"], &[("HOME", home)])?;
    assert_eq!(nokey.code, 1, "{nokey}");
    assert!(nokey.stderr.contains("db.enc.yaml"), "{nokey}");
    assert!(nokey.stderr.contains("app.enc.env"), "{nokey}");
    assert!(nokey.stderr.contains(&key.recipient), "{nokey}");
    no_plaintext(&nokey);

    // explain names the encrypted file and the line of the value, never the value.
    let explain = plugin_with_env(
        &env,
        &["explain", "secret/catalog-db", "data.password"],
        &vars,
    )?;
    assert_eq!(explain.code, 0, "{explain}");
    let encrypted = std::fs::read_to_string(env.repo.path().join(SECRET_FILE))?;
    let line = encrypted
        .lines()
        .position(|l| l.trim_start().starts_with("password: ENC["))
        .context("password line")?
        + 1;
    assert!(
        explain.stdout.contains(&format!("{SECRET_FILE}:{line}")),
        "line {line}\n{explain}"
    );
    no_plaintext(&explain);

    // Same live state, a new encrypted password in Git: one redacted changed line.
    let changed = encrypt(
        &key,
        "db.enc.yaml",
        &SECRET.replace(PASSWORD, "n3w-Pa55word"),
        &["--encrypted-regex", "^(data|stringData)$"],
    )?;
    env.repo
        .commit_files(&[(SECRET_FILE, &changed)], "rotate the password")?;
    let diff = plugin_with_env(&env, &["diff", "overlays/prod"], &vars)?;
    assert_eq!(diff.code, 1, "{diff}");
    assert!(diff.stdout.contains("Secret/catalog-db: change"), "{diff}");
    assert!(
        diff.stdout.contains("/data/password: changed (redacted)"),
        "{diff}"
    );
    assert!(
        !diff.stdout.contains("/data/username"),
        "unchanged key reported\n{diff}"
    );
    no_plaintext(&diff);
    Ok(())
}

#[tokio::test]
async fn backfill_of_a_secret_commits_a_sops_file_sops_decrypts_to_the_live_value() -> Result<()> {
    let (env, key, _, key_file) = synced("plugin-sops-backfill").await?;
    // .sops.yaml names a second (team) recipient too; the commit must be readable with it alone.
    let team = age_keygen()?;
    env.repo.commit_files(
        &[(
            ".sops.yaml",
            &format!(
                "creation_rules:\n- path_regex: ^overlays/prod/.*\\.enc\\.yaml$\n  encrypted_regex: ^(data|stringData)$\n  age: {}, {}\n",
                key.recipient, team.recipient
            ),
        )],
        "sops creation rules",
    )?;
    let home = tempfile::tempdir()?;
    let vars = with_key(key_file.to_str().unwrap(), home.path().to_str().unwrap());

    const NEW: &str = "n3w-Pa55word";
    let patch = env.scratch_file(
        "patch.yaml",
        &format!(
            "data:\n  password: {}\n",
            base64::engine::general_purpose::STANDARD.encode(NEW)
        ),
    )?;
    let bg = plugin_with_env(
        &env,
        &[
            "break-glass",
            "secret/catalog-db",
            "--reason",
            "INC-7: leaked password",
            "--for",
            "1h",
            "--patch",
            patch.to_str().unwrap(),
            "--yes",
        ],
        &vars,
    )?;
    assert_eq!(bg.code, 0, "{bg}");
    let live = env
        .get("v1", "Secret", "catalog-db")
        .await?
        .context("Secret")?;
    assert_eq!(decoded(&live, "password").as_deref(), Some(NEW));

    let out = plugin_with_env(
        &env,
        &[
            "backfill",
            "secret/catalog-db",
            "--overlay",
            "overlays/prod",
            "--commit",
            "--yes",
        ],
        &vars,
    )?;
    assert_eq!(out.code, 0, "{out}");
    no_plaintext(&out);
    let message = env.repo.git(&["log", "-1", "--format=%B"])?;
    assert!(!message.contains(NEW), "{message}");
    let committed = env.repo.git(&["show", &format!("HEAD:{SECRET_FILE}")])?;
    assert!(
        !committed.contains(NEW) && !committed.contains(PASSWORD),
        "{committed}"
    );
    assert!(committed.contains("ENC[AES256_GCM"), "{committed}");
    let changed = env.repo.git(&["show", "--stat", "--format=", "HEAD"])?;
    assert_eq!(changed.lines().count(), 2, "only the SOPS file: {changed}");

    // The real sops, with only the team key from .sops.yaml, decrypts it to the live value.
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("db.enc.yaml"), &committed)?;
    std::fs::write(dir.path().join("team.txt"), &team.file_text)?;
    let out = run_sops(
        dir.path(),
        Some(&dir.path().join("team.txt")),
        &["-d", "db.enc.yaml"],
    )?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plain = String::from_utf8(out.stdout)?;
    let docs = renderer::yaml::parse_documents(&plain)?;
    assert_eq!(docs[0].value["stringData"]["password"], NEW, "{plain}");
    assert_eq!(
        docs[0].value["stringData"]["username"], "catalog",
        "{plain}"
    );
    assert_eq!(docs[0].value["metadata"]["name"], "catalog-db", "{plain}");
    Ok(())
}
