//! What `promote` ships must be what staging follows: the commit staging's status names has to
//! be on staging's tracked ref (in the clone), and signed when staging's agent verifies. A
//! status is only a ConfigMap: anyone who may edit it, or a branch rewritten after staging
//! synced, must not choose what production runs.

use git2::{ObjectType, Oid, Repository};
use renderer::protocol::SyncStatus;

use crate::git::local_repo::{ref_contains, ref_tip, short};

/// Checks `commit` (what staging reports as applied) against staging's `status`; the error
/// says why it is refused.
pub fn check_staging_commit(
    repo: &Repository,
    status: &SyncStatus,
    commit: &str,
) -> Result<(), String> {
    let oid = Oid::from_str(commit).map_err(|_| format!("{commit:?} is not a commit id"))?;
    // A semver range does not resolve in a clone: checked through the tag it resolved to.
    let reference = [
        Some(status.tracked_ref.as_str()),
        status.resolved_tag.as_deref(),
    ]
    .into_iter()
    .flatten()
    .find(|r| ref_tip(repo, r).is_some())
    .ok_or_else(|| {
        format!(
            "its tracked ref {} does not resolve in this clone (run `git fetch --tags`), so \
                 commit {} cannot be checked to be on it",
            status.tracked_ref,
            short(commit)
        )
    })?;
    if ref_contains(repo, reference, oid) != Some(true) {
        let tip = ref_tip(repo, reference)
            .map(|t| t.to_string())
            .unwrap_or_default();
        return Err(format!(
            "it reports commit {commit}, which {reference} (at {} in this clone) does not contain: \
             history rewritten after staging synced it, or a status its agent did not write \
             (run `git fetch` if the clone is behind)",
            short(&tip)
        ));
    }
    match status.verify.as_deref() {
        None | Some("none") => Ok(()),
        Some(mode) => signed(repo, oid, status.resolved_tag.as_deref(), mode),
    }
}

/// The commit, or the annotated tag staging resolved it through, carries a signature of the
/// kind staging's agent verifies (the agent checked it against its keys; the clone has none).
fn signed(repo: &Repository, commit: Oid, tag: Option<&str>, mode: &str) -> Result<(), String> {
    let marker = match mode {
        "ssh" => "-----BEGIN SSH SIGNATURE-----",
        _ => "-----BEGIN PGP SIGNATURE-----",
    };
    let commit_signed = repo
        .extract_signature(&commit, None)
        .is_ok_and(|(sig, _)| String::from_utf8_lossy(&sig).contains(marker));
    let tag_signed = tag
        .and_then(|t| repo.find_reference(&format!("refs/tags/{t}")).ok())
        .and_then(|r| r.target())
        .and_then(|oid| {
            let odb = repo.odb().ok()?;
            let raw = odb.read(oid).ok()?;
            Some(
                raw.kind() == ObjectType::Tag
                    && String::from_utf8_lossy(raw.data()).contains(marker),
            )
        })
        .unwrap_or(false);
    if commit_signed || tag_signed {
        Ok(())
    } else {
        Err(format!(
            "its agent verifies {mode} signatures, but commit {} carries none{}",
            short(&commit.to_string()),
            tag.map(|t| format!(" (nor does tag {t})"))
                .unwrap_or_default()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// main: c0 - c1; side: c0 - s1; tag v1.0.0 at c1 (lightweight).
    fn repo() -> (tempfile::TempDir, Repository, [Oid; 3]) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let oids = {
            let sig = git2::Signature::now("t", "t@example.com").unwrap();
            let tree = repo
                .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
                .unwrap();
            let c0 = repo
                .commit(Some("refs/heads/main"), &sig, &sig, "c0", &tree, &[])
                .unwrap();
            let p = repo.find_commit(c0).unwrap();
            let c1 = repo
                .commit(Some("refs/heads/main"), &sig, &sig, "c1", &tree, &[&p])
                .unwrap();
            let s1 = repo
                .commit(Some("refs/heads/side"), &sig, &sig, "s1", &tree, &[&p])
                .unwrap();
            repo.tag_lightweight("v1.0.0", &repo.find_object(c1, None).unwrap(), false)
                .unwrap();
            [c0, c1, s1]
        };
        (dir, repo, oids)
    }

    fn status(tracked: &str) -> SyncStatus {
        SyncStatus {
            tracked_ref: tracked.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_commit_on_the_tracked_ref_passes() {
        let (_d, repo, [c0, c1, _]) = repo();
        for c in [c0, c1] {
            check_staging_commit(&repo, &status("main"), &c.to_string()).unwrap();
        }
        let mut range = status(">=1.0.0");
        range.resolved_tag = Some("v1.0.0".into());
        check_staging_commit(&repo, &range, &c1.to_string()).unwrap();
    }

    #[test]
    fn a_commit_off_the_tracked_ref_is_refused() {
        let (_d, repo, [_, c1, s1]) = repo();
        let e = check_staging_commit(&repo, &status("main"), &s1.to_string()).unwrap_err();
        assert!(
            e.contains(&s1.to_string()) && e.contains("main (at") && e.contains("does not contain"),
            "{e}"
        );
        let e = check_staging_commit(&repo, &status("nope"), &c1.to_string()).unwrap_err();
        assert!(e.contains("does not resolve in this clone"), "{e}");
    }

    #[test]
    fn a_verifying_staging_needs_a_signed_commit() {
        let (_d, repo, [_, c1, _]) = repo();
        let mut s = status("main");
        s.verify = Some("openpgp".into());
        let e = check_staging_commit(&repo, &s, &c1.to_string()).unwrap_err();
        assert!(e.contains("verifies openpgp signatures"), "{e}");
        s.verify = Some("none".into());
        check_staging_commit(&repo, &s, &c1.to_string()).unwrap();
    }
}
