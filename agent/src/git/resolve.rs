//! Turning `--revision` into a commit: branch, tag, commit SHA, or a semver range over tags.

use git2::{Oid, Repository};

use super::GitError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub commit: Oid,
    /// The tag the commit was reached through (a tag or a semver range).
    pub tag: Option<String>,
    /// The annotated tag object, when `tag` is one (its signature is what gets verified).
    pub tag_object: Option<Oid>,
}

/// Resolves against the bare cache's `refs/heads/*` and `refs/tags/*` (as fetched).
/// Exact names win over ranges, so a tag literally named `1.5.0` is never reinterpreted.
pub fn resolve(repo: &Repository, revision: &str) -> Result<Resolved, GitError> {
    let fail = |message: String| GitError::Resolve {
        revision: revision.to_string(),
        message,
    };
    let untagged = |commit: Oid| Resolved {
        commit,
        tag: None,
        tag_object: None,
    };
    let branch = repo.find_reference(&format!("refs/heads/{revision}")).ok();
    let tag = repo.find_reference(&format!("refs/tags/{revision}")).ok();
    if branch.is_some() && tag.is_some() {
        // Whoever can push a branch could otherwise shadow the pinned tag.
        return Err(fail(
            "is both a branch and a tag; refusing to guess which one (rename one, or pin the commit)"
                .into(),
        ));
    }
    if let Some(r) = branch {
        let commit = r
            .peel_to_commit()
            .map_err(|e| fail(e.message().to_string()))?;
        return Ok(untagged(commit.id()));
    }
    if let Some(r) = tag {
        return tagged(repo, &r, revision).map_err(|e| fail(e.message().to_string()));
    }
    if is_hex_prefix(revision) {
        let object = repo
            .revparse_single(revision)
            .map_err(|_| fail("no such commit in the fetched history".into()))?;
        let commit = object
            .peel_to_commit()
            .map_err(|e| fail(e.message().to_string()))?;
        return Ok(untagged(commit.id()));
    }
    if let Some(req) = parse_range(revision) {
        let tags = repo.tag_names(None)?;
        let best = tags
            .iter()
            .filter_map(|n| n.ok().flatten())
            .filter_map(|name| Some((tag_version(name)?, name)))
            .filter(|(v, _)| req.matches(v))
            .max_by(|a, b| a.0.cmp(&b.0));
        let Some((_, name)) = best else {
            return Err(fail("no tag matches this semver range".into()));
        };
        let r = repo.find_reference(&format!("refs/tags/{name}"))?;
        return tagged(repo, &r, name).map_err(|e| fail(e.message().to_string()));
    }
    Err(fail("no branch, tag or commit of that name".into()))
}

fn tagged(repo: &Repository, r: &git2::Reference<'_>, name: &str) -> Result<Resolved, git2::Error> {
    let commit = r.peel_to_commit()?.id();
    let tag_object = r.target().filter(|oid| repo.find_tag(*oid).is_ok());
    // The signed (annotated) tag object names itself; one copied under another ref name
    // (an old signed release pushed as the pinned tag) must not pass as that tag.
    if let Some(oid) = tag_object {
        let object = repo.find_tag(oid)?;
        let own = object.name().unwrap_or("");
        if own != name {
            return Err(git2::Error::from_str(&format!(
                "the annotated tag at refs/tags/{name} is named {own:?}: refusing a tag object moved under another name"
            )));
        }
    }
    Ok(Resolved {
        commit,
        tag: Some(name.to_string()),
        tag_object,
    })
}

fn is_hex_prefix(s: &str) -> bool {
    (7..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A tag name as a version: `v1.5.0` and `1.5.0` both count.
fn tag_version(name: &str) -> Option<semver::Version> {
    semver::Version::parse(name.strip_prefix('v').unwrap_or(name)).ok()
}

/// Only strings with an operator are ranges; the npm-style space-separated form is accepted.
fn parse_range(s: &str) -> Option<semver::VersionReq> {
    if !s.contains(['<', '>', '=', '^', '~', '*']) {
        return None;
    }
    let mut parts: Vec<String> = Vec::new();
    for token in s.replace(',', " ").split_whitespace() {
        // `>= 1.5.0` → `>=1.5.0`: an operator alone joins the next token.
        match parts.last_mut() {
            Some(last) if last.chars().all(|c| "<>=^~".contains(c)) => last.push_str(token),
            _ => parts.push(token.to_string()),
        }
    }
    let normalised: Vec<String> = parts
        .iter()
        .map(|p| {
            let op_len = p.len() - p.trim_start_matches(['<', '>', '=', '^', '~']).len();
            let (op, version) = p.split_at(op_len);
            format!("{op}{}", version.strip_prefix('v').unwrap_or(version))
        })
        .collect();
    semver::VersionReq::parse(&normalised.join(", ")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = parse_range(">=1.5.0 <2.0.0").unwrap();
        assert!(r.matches(&"1.7.3".parse().unwrap()));
        assert!(!r.matches(&"2.0.0".parse().unwrap()));
        assert!(!r.matches(&"1.4.9".parse().unwrap()));
        assert!(
            parse_range(">= v1.5.0, < 2")
                .unwrap()
                .matches(&"1.9.0".parse().unwrap())
        );
        assert!(parse_range("main").is_none());
        assert!(parse_range("v1.5.0").is_none());
    }

    /// A real repository: commits on main, annotated and lightweight tags.
    fn repo() -> (tempfile::TempDir, Repository, Vec<Oid>) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let commits = build(&repo, &sig);
        (dir, repo, commits)
    }

    fn build(repo: &Repository, sig: &git2::Signature<'_>) -> Vec<Oid> {
        let tree = repo
            .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
            .unwrap();
        let mut commits = Vec::new();
        for i in 0..4 {
            let parents: Vec<git2::Commit<'_>> = commits
                .last()
                .map(|c| repo.find_commit(*c).unwrap())
                .into_iter()
                .collect();
            let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
            let c = repo
                .commit(
                    Some("refs/heads/main"),
                    sig,
                    sig,
                    &format!("c{i}"),
                    &tree,
                    &refs,
                )
                .unwrap();
            commits.push(c);
        }
        let obj = |i: usize| repo.find_object(commits[i], None).unwrap();
        repo.tag("v1.4.0", &obj(0), sig, "1.4.0", false).unwrap();
        repo.tag("v1.5.0", &obj(1), sig, "1.5.0", false).unwrap();
        repo.tag_lightweight("v1.6.2", &obj(2), false).unwrap();
        repo.tag("v2.0.0", &obj(3), sig, "2.0.0", false).unwrap();
        commits
    }

    #[test]
    fn resolves_branches_tags_shas_and_ranges() {
        let (_d, repo, c) = repo();
        let main = resolve(&repo, "main").unwrap();
        assert_eq!((main.commit, main.tag), (c[3], None));

        let pinned = resolve(&repo, "v1.5.0").unwrap();
        assert_eq!(pinned.commit, c[1]);
        assert_eq!(pinned.tag.as_deref(), Some("v1.5.0"));
        assert!(
            pinned.tag_object.is_some(),
            "annotated tags are verified through the tag"
        );
        assert_eq!(resolve(&repo, "v1.6.2").unwrap().tag_object, None);

        let sha = c[2].to_string();
        assert_eq!(resolve(&repo, &sha).unwrap().commit, c[2]);
        assert_eq!(resolve(&repo, &sha[..10]).unwrap().commit, c[2]);

        let range = resolve(&repo, ">=1.5.0 <2.0.0").unwrap();
        assert_eq!((range.commit, range.tag.as_deref()), (c[2], Some("v1.6.2")));
        assert!(
            resolve(&repo, ">=3.0.0")
                .unwrap_err()
                .to_string()
                .contains("no tag matches")
        );
        assert!(resolve(&repo, "nope").is_err());
    }

    /// Issue #14: a branch named like the pinned tag won over the tag.
    #[test]
    fn a_name_that_is_both_a_branch_and_a_tag_is_refused() {
        let (_d, repo, c) = repo();
        repo.reference("refs/heads/v1.5.0", c[3], false, "shadow")
            .unwrap();
        let e = resolve(&repo, "v1.5.0").unwrap_err().to_string();
        assert!(e.contains("both a branch and a tag"), "{e}");
    }

    /// Issue #14: an old signed tag object re-pointed under the pinned tag's name.
    #[test]
    fn an_annotated_tag_must_carry_the_name_it_is_resolved_by() {
        let (_d, repo, _c) = repo();
        let old = repo
            .find_reference("refs/tags/v1.4.0")
            .unwrap()
            .target()
            .unwrap();
        repo.reference("refs/tags/v2.1.0", old, false, "moved")
            .unwrap();
        let e = resolve(&repo, "v2.1.0").unwrap_err().to_string();
        assert!(e.contains("named \"v1.4.0\""), "{e}");
        // Through a semver range too.
        let e = resolve(&repo, ">=2.1.0").unwrap_err().to_string();
        assert!(e.contains("named \"v1.4.0\""), "{e}");
    }

    #[test]
    fn versions_from_tags() {
        assert_eq!(tag_version("v1.5.0"), Some("1.5.0".parse().unwrap()));
        assert_eq!(tag_version("release-1"), None);
    }
}
