//! Per-member bookkeeping on the ApplySet parent: which commit last changed each member.
//!
//! Members themselves carry nothing that changes with a commit (an annotation that did made
//! every commit rewrite every object, and bumped every Deployment's generation). The parent
//! holds a table of commits and, per member, an index into it: at 1000 members some 40 KB,
//! far below the 1 MiB a ConfigMap may hold.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The content of the parent's [`super::MEMBERS_DATA_KEY`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRevisions {
    /// Distinct commits, each once.
    commits: Vec<String>,
    /// `Kind.group/name` (`Kind/name` for the core group) → index into `commits`.
    members: BTreeMap<String, usize>,
}

impl MemberRevisions {
    /// The commit that last changed `member` (`Kind.group/name`), as the agent recorded it.
    pub fn commit_of(&self, member: &str) -> Option<&str> {
        self.members
            .get(member)
            .and_then(|&i| self.commits.get(i))
            .map(String::as_str)
    }

    pub fn contains(&self, member: &str) -> bool {
        self.members.contains_key(member)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Records that `commit` changed (or created) `member`.
    pub fn record(&mut self, member: &str, commit: &str) {
        let index = match self.commits.iter().position(|c| c == commit) {
            Some(i) => i,
            None => {
                self.commits.push(commit.to_string());
                self.commits.len() - 1
            }
        };
        self.members.insert(member.to_string(), index);
    }

    /// Keeps only the members `keep` accepts, and the commits still referenced.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.members.retain(|m, _| keep(m));
        let mut used: Vec<bool> = vec![false; self.commits.len()];
        for &i in self.members.values() {
            if let Some(u) = used.get_mut(i) {
                *u = true;
            }
        }
        let mut remap = vec![usize::MAX; self.commits.len()];
        let mut commits = Vec::new();
        for (i, commit) in std::mem::take(&mut self.commits).into_iter().enumerate() {
            if used[i] {
                remap[i] = commits.len();
                commits.push(commit);
            }
        }
        self.commits = commits;
        self.members
            .retain(|_, i| remap.get(*i).is_some_and(|&r| r != usize::MAX));
        for i in self.members.values_mut() {
            *i = remap[*i];
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain data serialises")
    }

    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_compacts_commits() {
        let mut m = MemberRevisions::default();
        m.record("Deployment.apps/web", "aaa");
        m.record("Service/web", "aaa");
        m.record("ConfigMap/conf", "bbb");
        assert_eq!(m.commit_of("Service/web"), Some("aaa"));
        m.record("Service/web", "ccc");
        m.record("Deployment.apps/web", "ccc");
        assert_eq!(m.commits, ["aaa", "bbb", "ccc"]);
        m.retain(|k| k != "ConfigMap/conf");
        assert_eq!(m.commits, ["ccc"]);
        assert_eq!(m.commit_of("Deployment.apps/web"), Some("ccc"));
        assert_eq!(m.commit_of("ConfigMap/conf"), None);
        let back = MemberRevisions::from_json(&m.to_json()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn a_thousand_members_fit_far_below_the_configmap_limit() {
        let mut m = MemberRevisions::default();
        for i in 0..1000 {
            let commit = format!("{:040x}", i % 50);
            m.record(&format!("Deployment.apps/app-{i:04}-catalog-api"), &commit);
        }
        let size = m.to_json().len();
        assert!(size < 64 * 1024, "{size} bytes");
    }

    #[test]
    fn an_index_out_of_range_reads_as_unknown() {
        let m =
            MemberRevisions::from_json(r#"{"commits":["a"],"members":{"Service/x":3}}"#).unwrap();
        assert_eq!(m.commit_of("Service/x"), None);
    }
}
