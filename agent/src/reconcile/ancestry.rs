//! Never backwards by accident: a new commit must descend from the last applied one.
//!
//! Tags are force-fetched and branches may be force-pushed, so an old (signed, once good)
//! commit can come back under the tracked ref: a tag re-pointed to it, a branch reset to it.
//! Such a move is refused unless it is an intended rollback: `--allow-rollback`, or the one
//! commit `--allow-rollback-to` or the self-management ConfigMap's `allow-rollback-to` names
//! (`kubectl gitops rollback` writes it).

use git2::{Oid, Repository};

/// What lets a non-descendant commit through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowance {
    /// `--allow-rollback`: any commit.
    pub any: bool,
    /// Exactly these commits (full SHAs, lower case).
    pub commits: Vec<String>,
}

/// The outcome for a commit that moves the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    /// Nothing applied yet, the same commit, or a descendant.
    Forward,
    /// Not a descendant, but allowed: the reason, for the log and an Event.
    RolledBack(String),
}

/// Judges moving from `last` (the last applied commit, if any) to `new`; the error is the
/// refusal, naming both commits.
pub fn judge(
    repo: &Repository,
    last: Option<&str>,
    new: Oid,
    allowance: &Allowance,
) -> Result<Move, String> {
    let Some(last) = last.filter(|l| !l.is_empty()) else {
        return Ok(Move::Forward);
    };
    let new_hex = new.to_string();
    if last.eq_ignore_ascii_case(&new_hex) {
        return Ok(Move::Forward);
    }
    let why = match Oid::from_str(last) {
        Err(_) => format!("the last applied revision {last:?} is not a commit id"),
        Ok(old) if repo.find_commit(old).is_err() => {
            format!("{last} is no longer in the fetched history (force-pushed away?)")
        }
        Ok(old) => match repo.graph_descendant_of(new, old) {
            Ok(true) => return Ok(Move::Forward),
            Ok(false) if repo.graph_descendant_of(old, new).unwrap_or(false) => {
                format!("{new_hex} is an ancestor of {last}: an older commit")
            }
            Ok(false) => format!("{new_hex} is on a history that does not contain {last}"),
            Err(e) => format!(
                "cannot tell whether {new_hex} descends from {last}: {}",
                e.message()
            ),
        },
    };
    if allowance.any {
        return Ok(Move::RolledBack(format!(
            "moved from {last} to {new_hex}, which does not descend from it ({why}), as --allow-rollback allows"
        )));
    }
    if allowance
        .commits
        .iter()
        .any(|c| c.eq_ignore_ascii_case(&new_hex))
    {
        return Ok(Move::RolledBack(format!(
            "rolled back from {last} to {new_hex} ({why}), as allow-rollback-to names it"
        )));
    }
    Err(format!(
        "revision {new_hex} does not descend from the last applied revision {last} ({why}); \
         nothing applied: a tag re-pointed or a branch force-pushed to an older commit is refused \
         unless it is an intended rollback (`kubectl gitops rollback`, or --allow-rollback)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// main: c0 - c1 - c2, and a side branch c0 - s1.
    fn repo() -> (tempfile::TempDir, Repository, Vec<Oid>, Oid) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let tree = repo.treebuilder(None).unwrap().write().unwrap();
        let (main, side) = {
            let tree = repo.find_tree(tree).unwrap();
            let mut main = Vec::new();
            for i in 0..3 {
                let parent = main.last().map(|c| repo.find_commit(*c).unwrap());
                let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
                main.push(
                    repo.commit(None, &sig, &sig, &format!("c{i}"), &tree, &parents)
                        .unwrap(),
                );
            }
            let c0 = repo.find_commit(main[0]).unwrap();
            let side = repo.commit(None, &sig, &sig, "s1", &tree, &[&c0]).unwrap();
            (main, side)
        };
        (dir, repo, main, side)
    }

    #[test]
    fn forward_moves_pass() {
        let (_d, repo, c, _) = repo();
        let none = Allowance::default();
        assert_eq!(judge(&repo, None, c[0], &none), Ok(Move::Forward));
        let last = c[0].to_string();
        assert_eq!(judge(&repo, Some(&last), c[0], &none), Ok(Move::Forward));
        assert_eq!(judge(&repo, Some(&last), c[2], &none), Ok(Move::Forward));
    }

    #[test]
    fn older_and_unrelated_commits_are_refused_naming_both() {
        let (_d, repo, c, side) = repo();
        let none = Allowance::default();
        let last = c[2].to_string();
        let e = judge(&repo, Some(&last), c[1], &none).unwrap_err();
        assert!(e.contains(&c[1].to_string()) && e.contains(&last), "{e}");
        assert!(e.contains("an ancestor of"), "{e}");
        let e = judge(&repo, Some(&last), side, &none).unwrap_err();
        assert!(e.contains("does not contain"), "{e}");
        let gone = "0123456789012345678901234567890123456789";
        let e = judge(&repo, Some(gone), c[1], &none).unwrap_err();
        assert!(e.contains("no longer in the fetched history"), "{e}");
    }

    #[test]
    fn a_rollback_passes_only_when_allowed() {
        let (_d, repo, c, side) = repo();
        let last = c[2].to_string();
        let exact = Allowance {
            any: false,
            commits: vec![c[1].to_string().to_uppercase()],
        };
        assert!(matches!(
            judge(&repo, Some(&last), c[1], &exact),
            Ok(Move::RolledBack(r)) if r.contains("allow-rollback-to")
        ));
        assert!(
            judge(&repo, Some(&last), c[0], &exact).is_err(),
            "only the named commit"
        );
        assert!(
            judge(&repo, Some(&last), side, &exact).is_err(),
            "only the named commit"
        );
        let any = Allowance {
            any: true,
            commits: vec![],
        };
        assert!(matches!(
            judge(&repo, Some(&last), side, &any),
            Ok(Move::RolledBack(r)) if r.contains("--allow-rollback")
        ));
    }
}
