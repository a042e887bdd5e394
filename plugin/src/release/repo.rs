//! The repository side of `promote`, `rollback` and `history`: release tags, the production
//! agent's manifest and the commits that changed its `--revision`. git2 throughout, except
//! signing, which needs the user's gpg/ssh set-up that only `git` itself knows.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, anyhow, bail};
use git2::{ObjectType, Oid, Repository, Signature};
use jiff::Timestamp;

use crate::constants::FALLBACK_SIGNATURE;
use crate::git::local_repo::LocalRepo;
use crate::release::rules::{AgentArgs, find_agent_args};

/// A tag of the clone, peeled to its commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagInfo {
    pub name: String,
    pub commit: String,
    /// The tag message's first line (annotated tags only).
    pub subject: Option<String>,
    pub time: Option<Timestamp>,
}

/// Every tag of the clone.
pub fn tags(repo: &Repository) -> anyhow::Result<Vec<TagInfo>> {
    let mut out = Vec::new();
    for name in repo
        .tag_names(None)
        .context("listing tags")?
        .iter()
        .flatten()
        .flatten()
    {
        let object = repo
            .revparse_single(&format!("refs/tags/{name}"))
            .with_context(|| format!("reading tag {name}"))?;
        let (subject, time) = match object.as_tag() {
            Some(tag) => (
                tag.message()
                    .ok()
                    .flatten()
                    .and_then(|m| m.lines().next())
                    .map(str::to_string),
                tag.tagger()
                    .and_then(|t| Timestamp::from_second(t.when().seconds()).ok()),
            ),
            None => (None, None),
        };
        let commit = object
            .peel(ObjectType::Commit)
            .with_context(|| format!("tag {name} does not point at a commit"))?;
        out.push(TagInfo {
            name: name.to_string(),
            commit: commit.id().to_string(),
            subject,
            time,
        });
    }
    Ok(out)
}

/// The full commit id `rev` names in the clone.
pub fn resolve_commit(repo: &Repository, rev: &str) -> anyhow::Result<String> {
    repo.revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id().to_string())
        .map_err(|_| anyhow!("{rev} is not a commit in this clone (run `git fetch --tags`?)"))
}

fn signature(repo: &Repository) -> anyhow::Result<Signature<'static>> {
    Ok(repo
        .signature()
        .or_else(|_| Signature::now(FALLBACK_SIGNATURE.0, FALLBACK_SIGNATURE.1))?)
}

/// Creates annotated tag `name` at `commit`; `sign` hands the job to `git tag --sign` so the
/// user's own key and `gpg.format` are used.
pub fn create_tag(
    local: &LocalRepo,
    name: &str,
    commit: &str,
    message: &str,
    sign: bool,
) -> anyhow::Result<()> {
    if sign {
        let out = Command::new("git")
            .args(["tag", "--sign", "-m", message, name, commit])
            .current_dir(&local.root)
            .output()
            .context("running git tag --sign")?;
        if !out.status.success() {
            bail!(
                "git tag --sign {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        return Ok(());
    }
    let target = local
        .repo
        .find_object(Oid::from_str(commit)?, Some(ObjectType::Commit))
        .with_context(|| format!("finding commit {commit}"))?;
    local
        .repo
        .tag(name, &target, &signature(&local.repo)?, message, false)
        .with_context(|| format!("creating tag {name}"))?;
    Ok(())
}

/// Commits new contents of files on the current branch. Only these paths change in the
/// commit and in the index, whatever else is staged.
pub fn commit_files(
    local: &LocalRepo,
    files: &[(&str, &str)],
    message: &str,
) -> anyhow::Result<String> {
    let repo = &local.repo;
    let head = repo
        .head()
        .context("reading HEAD")?
        .peel_to_commit()
        .context("HEAD is not a commit")?;
    let mut update = git2::build::TreeUpdateBuilder::new();
    let mut index = repo.index().context("reading the index")?;
    for (rel, text) in files {
        std::fs::write(local.root.join(rel), text).with_context(|| format!("writing {rel}"))?;
        let blob = repo.blob(text.as_bytes())?;
        update.upsert(*rel, blob, git2::FileMode::Blob);
        index
            .add_path(Path::new(rel))
            .with_context(|| format!("staging {rel}"))?;
    }
    let tree = repo.find_tree(update.create_updated(repo, &head.tree()?)?)?;
    let sig = signature(repo)?;
    let oid = repo
        .commit(Some("HEAD"), &sig, &sig, message, &tree, &[&head])
        .context("committing")?;
    index.write().context("writing the index")?;
    Ok(oid.to_string())
}

/// Pushes refspecs to origin with the user's SSH agent or credential helper.
pub fn push(repo: &Repository, refspecs: &[String]) -> anyhow::Result<()> {
    let mut remote = repo
        .find_remote("origin")
        .context("no remote named origin")?;
    // The clone's configuration, not only the global one: like git, honour a
    // `credential.helper` set in the repository itself.
    let config = repo
        .config()
        .context("reading the clone's Git configuration")?;
    let refused = std::cell::RefCell::new(Vec::new());
    let mut callbacks = git2::RemoteCallbacks::new();
    let mut attempts = 0;
    callbacks.credentials(move |url, user, allowed| {
        // libgit2 asks again after every refusal, and these sources hand back the same
        // credentials each time: without a limit a wrong password loops forever.
        attempts += 1;
        if attempts > 3 {
            return Err(git2::Error::from_str(
                "origin refused the credentials (from the SSH agent or git's credential.helper)",
            ));
        }
        if allowed.contains(git2::CredentialType::SSH_KEY) {
            git2::Cred::ssh_key_from_agent(user.unwrap_or("git"))
        } else {
            git2::Cred::credential_helper(&config, url, user)
        }
    });
    // libgit2 returns Ok when the server refuses a ref (hook, protected branch): the
    // verdict per ref only arrives here.
    callbacks.push_update_reference(|name, status| {
        if let Some(reason) = status {
            refused.borrow_mut().push(format!("{name} ({reason})"));
        }
        Ok(())
    });
    let mut options = git2::PushOptions::new();
    options.remote_callbacks(callbacks);
    remote
        .push(refspecs, Some(&mut options))
        .with_context(|| format!("pushing {} to origin", refspecs.join(" ")))?;
    drop(options);
    let refused = refused.into_inner();
    if !refused.is_empty() {
        bail!("origin refused {}", refused.join(", "));
    }
    Ok(())
}

/// A production agent's manifest: the file (relative to the clone) and its arguments.
#[derive(Debug, Clone)]
pub struct AgentManifest {
    pub rel: String,
    pub text: String,
    pub args: AgentArgs,
    pub setting: RevisionSetting,
}

/// How the file names the production agent's revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevisionSetting {
    /// The `--revision=` argument of the agent's Deployment.
    AgentArg,
    /// The `revision` key of the `gitops-agent` ConfigMap (`--config-path`).
    ConfigMap,
}

impl RevisionSetting {
    /// The revision this kind of file names in `text` (for the agent of `overlay`).
    pub fn revision_in(self, text: &str, overlay: &str) -> Option<String> {
        match self {
            Self::ConfigMap => {
                crate::release::config_map::find_config_revision(text).map(|a| a.revision)
            }
            Self::AgentArg => {
                let all = find_agent_args(text);
                let args = match all.len() {
                    1 => all.into_iter().next(),
                    _ => all.into_iter().find(|a| a.path.as_deref() == Some(overlay)),
                };
                args.map(|a| a.revision)
            }
        }
    }

    /// `text` with the revision (on 1-based `line`) set to `to`.
    pub fn set(
        self,
        rel: &str,
        text: &str,
        line: u32,
        to: &str,
    ) -> Result<String, crate::release::rules::ReleaseError> {
        match self {
            Self::AgentArg => crate::release::rules::set_revision(rel, text, line, to),
            Self::ConfigMap => crate::release::config_map::set_config_revision(rel, text, line, to),
        }
    }
}

/// The file that sets the production agent's revision: its self-management ConfigMap when the
/// agent reports a `--config-path`, else its Deployment manifest.
pub fn find_revision_manifest(
    root: &Path,
    overlay: &str,
    namespace: &str,
    explicit: Option<&Path>,
    config_path: Option<&str>,
) -> anyhow::Result<AgentManifest> {
    match (config_path, explicit) {
        (Some(dir), None) => crate::release::config_map::find_config_manifest(root, dir),
        _ => find_agent_manifest(root, overlay, namespace, explicit),
    }
}

pub fn yaml_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                // Build output and VCS data never hold the deployed manifests.
                if !name.starts_with('.') && !name.starts_with("target") && name != "node_modules" {
                    stack.push(path);
                }
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The manifest of the agent that renders `overlay` in namespace `namespace`: `explicit` when
/// given, else the one file whose agent has `--path=<overlay>` (a file or directory naming
/// the namespace wins a tie).
pub fn find_agent_manifest(
    root: &Path,
    overlay: &str,
    namespace: &str,
    explicit: Option<&Path>,
) -> anyhow::Result<AgentManifest> {
    let overlay = overlay.trim_matches('/');
    let read = |path: &Path| -> anyhow::Result<(String, String)> {
        let rel = path
            .strip_prefix(root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok((rel, text))
    };
    if let Some(file) = explicit {
        let path = if file.is_absolute() {
            file.to_path_buf()
        } else {
            std::env::current_dir()?.join(file)
        };
        let (rel, text) = read(&path)?;
        let mut found = find_agent_args(&text);
        if found.len() > 1 {
            found.retain(|a| a.path.as_deref() == Some(overlay));
        }
        return match found.as_slice() {
            [args] => Ok(AgentManifest {
                rel,
                args: args.clone(),
                text,
                setting: RevisionSetting::AgentArg,
            }),
            [] => bail!("{rel}: no agent with a `--revision=` argument (for --path={overlay})"),
            _ => bail!("{rel}: several agents render {overlay}"),
        };
    }
    let mut candidates = Vec::new();
    for path in yaml_files(root) {
        let Ok((rel, text)) = read(&path) else {
            continue;
        };
        for args in find_agent_args(&text) {
            if args.path.as_deref() == Some(overlay) {
                candidates.push(AgentManifest {
                    rel: rel.clone(),
                    text: text.clone(),
                    args,
                    setting: RevisionSetting::AgentArg,
                });
            }
        }
    }
    if candidates.len() > 1 {
        let names_ns = |m: &AgentManifest| {
            m.rel.split('/').any(|part| part == namespace)
                || m.text.contains(&format!("namespace: {namespace}\n"))
        };
        if candidates.iter().any(names_ns) {
            candidates.retain(names_ns);
        }
    }
    match candidates.len() {
        1 => Ok(candidates.remove(0)),
        0 => bail!(
            "no manifest in {} runs an agent with --path={overlay} and a --revision argument; \
             pass --agent-manifest FILE, or --print to see the change",
            root.display()
        ),
        _ => bail!(
            "several manifests run an agent for {overlay}: {}; pass --agent-manifest FILE",
            candidates
                .iter()
                .map(|c| format!("{}:{}", c.rel, c.args.line))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// One change of the production agent's revision in Git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionChange {
    pub commit: String,
    pub time: Timestamp,
    pub author: String,
    pub summary: String,
    pub revision: String,
}

/// The commits reachable from HEAD that changed the `--revision` of the agent for `overlay`
/// in file `rel`, newest first (the first commit that has the file counts as a change).
pub fn revision_history(
    repo: &Repository,
    rel: &str,
    overlay: &str,
    setting: RevisionSetting,
) -> anyhow::Result<Vec<RevisionChange>> {
    let revision_at = |commit: &git2::Commit| -> Option<String> {
        let entry = commit.tree().ok()?.get_path(Path::new(rel)).ok()?;
        let blob = repo.find_blob(entry.id()).ok()?;
        let text = std::str::from_utf8(blob.content()).ok()?;
        setting.revision_in(text, overlay)
    };
    let mut walk = repo.revwalk()?;
    walk.push_head().context("walking history from HEAD")?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)?;
    walk.simplify_first_parent()?;
    let mut out = Vec::new();
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        let Some(revision) = revision_at(&commit) else {
            continue;
        };
        let before = commit.parent(0).ok().and_then(|p| revision_at(&p));
        if before.as_deref() == Some(revision.as_str()) {
            continue;
        }
        out.push(RevisionChange {
            commit: commit.id().to_string(),
            time: Timestamp::from_second(commit.time().seconds()).unwrap_or(Timestamp::UNIX_EPOCH),
            author: commit.author().name().unwrap_or_default().to_string(),
            summary: commit
                .summary()
                .ok()
                .flatten()
                .unwrap_or_default()
                .to_string(),
            revision,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT: &str =
        "kind: Deployment\nspec:\n  args:\n  - --path=overlays/prod\n  - --revision=main\n";

    fn repo_with(files: &[(&str, &str)]) -> (tempfile::TempDir, LocalRepo) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        for (rel, text) in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = Signature::now("T", "t@example.com").unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "one", &tree, &[])
            .unwrap();
        drop(tree);
        let local = LocalRepo::open(Some(dir.path())).unwrap();
        (dir, local)
    }

    #[test]
    fn finds_the_manifest_by_overlay_and_namespace() {
        let (dir, _) = repo_with(&[
            ("clusters/prod/agent.yaml", AGENT),
            ("clusters/prod-eu/agent.yaml", AGENT),
            (
                "clusters/staging/agent.yaml",
                &AGENT.replace("prod", "staging"),
            ),
        ]);
        let m = find_agent_manifest(dir.path(), "overlays/prod/", "prod", None).unwrap();
        assert_eq!(
            (m.rel.as_str(), m.args.line),
            ("clusters/prod/agent.yaml", 5)
        );
        let err = find_agent_manifest(dir.path(), "overlays/prod", "other", None).unwrap_err();
        assert!(err.to_string().contains("--agent-manifest"), "{err}");
        let err = find_agent_manifest(dir.path(), "overlays/dev", "dev", None).unwrap_err();
        assert!(err.to_string().contains("--path=overlays/dev"), "{err}");
    }

    #[test]
    fn tags_commits_and_revision_history() {
        let (_dir, local) = repo_with(&[("agent.yaml", AGENT)]);
        let first = local.head().unwrap().to_string();
        create_tag(&local, "v1.0.0", &first, "release 1.0.0\n\nbody", false).unwrap();
        let tagged = tags(&local.repo).unwrap();
        assert_eq!(tagged.len(), 1);
        assert_eq!(tagged[0].commit, first);
        assert_eq!(tagged[0].subject.as_deref(), Some("release 1.0.0"));
        assert!(create_tag(&local, "v1.0.0", &first, "again", false).is_err());

        let second = commit_files(
            &local,
            &[("agent.yaml", &AGENT.replace("=main", "=v1.0.0"))],
            "prod: v1.0.0",
        )
        .unwrap();
        commit_files(&local, &[("other.txt", "x")], "unrelated").unwrap();
        let history = revision_history(
            &local.repo,
            "agent.yaml",
            "overlays/prod",
            RevisionSetting::AgentArg,
        )
        .unwrap();
        let seen: Vec<(&str, &str)> = history
            .iter()
            .map(|c| (c.commit.as_str(), c.revision.as_str()))
            .collect();
        assert_eq!(
            seen,
            [(second.as_str(), "v1.0.0"), (first.as_str(), "main")]
        );
        assert_eq!(
            local.repo.status_file(Path::new("agent.yaml")).unwrap(),
            git2::Status::CURRENT,
            "index and working tree agree with the commit"
        );
        assert_eq!(resolve_commit(&local.repo, "v1.0.0").unwrap(), first);
        assert!(resolve_commit(&local.repo, "v9").is_err());
    }
}
