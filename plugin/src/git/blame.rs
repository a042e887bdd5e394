//! "Who last changed this line?" via git2 blame at a given commit, never the working copy.

use std::collections::HashMap;
use std::path::Path;

use git2::{BlameOptions, Oid, Repository};
use jiff::Timestamp;
use serde::Serialize;

/// The commit that last touched a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineCommit {
    pub sha: String,
    pub author: String,
    pub email: String,
    pub date: Timestamp,
    pub subject: String,
}

/// Blames files at one commit, each file once however many lines are asked about.
pub struct Blamer<'r> {
    repo: &'r Repository,
    at: Oid,
    /// Per file: line (1-based) -> commit, or `None` when the file cannot be blamed.
    files: HashMap<String, Option<Vec<Oid>>>,
}

impl<'r> Blamer<'r> {
    pub fn new(repo: &'r Repository, at: Oid) -> Self {
        Self {
            repo,
            at,
            files: HashMap::new(),
        }
    }

    /// The last commit before or at `at` that changed `line` of `file` (repository-relative).
    pub fn line(&mut self, file: &str, line: u32) -> Option<LineCommit> {
        let (repo, at) = (self.repo, self.at);
        let lines = self
            .files
            .entry(file.to_string())
            .or_insert_with(|| blame_lines(repo, at, file))
            .as_ref()?;
        let oid = *lines.get((line as usize).checked_sub(1)?)?;
        let commit = self.repo.find_commit(oid).ok()?;
        let author = commit.author();
        Some(LineCommit {
            sha: oid.to_string(),
            author: author.name().unwrap_or_default().to_string(),
            email: author.email().unwrap_or_default().to_string(),
            date: Timestamp::from_second(commit.time().seconds()).unwrap_or_default(),
            subject: commit
                .summary()
                .ok()
                .flatten()
                .unwrap_or_default()
                .to_string(),
        })
    }
}

fn blame_lines(repo: &Repository, at: Oid, file: &str) -> Option<Vec<Oid>> {
    let mut options = BlameOptions::new();
    options.newest_commit(at);
    let blame = repo.blame_file(Path::new(file), Some(&mut options)).ok()?;
    let mut lines = Vec::new();
    for hunk in blame.iter() {
        let id = hunk.final_commit_id();
        lines.extend(std::iter::repeat_n(id, hunk.lines_in_hunk()));
    }
    Some(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn commit(repo: &Repository, dir: &Path, file: &str, text: &str, message: &str) -> Oid {
        fs::write(dir.join(file), text).unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new(file)).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig =
            git2::Signature::new("Ada", "ada@example.com", &git2::Time::new(1_700_000_000, 0))
                .unwrap();
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .unwrap()
    }

    #[test]
    fn blames_each_line_at_the_given_commit() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let first = commit(&repo, dir.path(), "d.yaml", "a: 1\nb: 2\n", "first\n\nbody");
        let second = commit(&repo, dir.path(), "d.yaml", "a: 1\nb: 3\n", "bump b");
        let third = commit(&repo, dir.path(), "d.yaml", "a: 9\nb: 3\n", "bump a");

        let mut at_second = Blamer::new(&repo, second);
        assert_eq!(at_second.line("d.yaml", 1).unwrap().sha, first.to_string());
        let b = at_second.line("d.yaml", 2).unwrap();
        assert_eq!((b.sha, b.subject.as_str()), (second.to_string(), "bump b"));
        assert_eq!(b.author, "Ada");
        assert_eq!(b.date.as_second(), 1_700_000_000);
        assert_eq!(at_second.line("d.yaml", 3), None);
        assert_eq!(at_second.line("missing.yaml", 1), None);

        let mut at_third = Blamer::new(&repo, third);
        assert_eq!(at_third.line("d.yaml", 1).unwrap().sha, third.to_string());
        assert_eq!(first_subject(&repo, first), "first");
    }

    fn first_subject(repo: &Repository, oid: Oid) -> String {
        repo.find_commit(oid)
            .unwrap()
            .summary()
            .unwrap()
            .unwrap()
            .to_string()
    }
}
