//! Whether a live object that Git declares may be taken over by the agent.
//!
//! A forced server-side apply takes any same-named object, whoever made it. The agent takes an
//! object it does not already manage only when it is **unowned**:
//!
//! - no `metadata.ownerReferences` (a controller such as a StatefulSet, an operator or
//!   cert-manager made it, and would fight over it or garbage-collect it),
//! - no `applyset.kubernetes.io/part-of` label of another ApplySet (another tool's set), and
//! - no `app.kubernetes.io/managed-by` label naming another tool (Helm and the like),
//!
//! or when the live object carries [`ADOPT_ANNOTATION`]`: "true"`, set by someone with write
//! access to the namespace (Git cannot set it: it is read from the live object only). An object
//! already carrying this set's part-of label is a member and is not judged here.

use serde_json::Value;

use super::keys::{ADOPT_ANNOTATION, APPLYSET_PART_OF_LABEL, MANAGED_BY_LABEL, TOOLING_NAME};

/// What the agent may do with the live object of a declared name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// Absent, or already a member of this set.
    Member,
    /// Unowned, or opted in with the adoption annotation: applying makes it a member.
    Adopt,
    /// Someone else's: left alone, never applied or pruned. Says whose it is.
    Refused(String),
}

/// Judges `live` (the object of the name Git declares, if any) for the set `set_id`.
pub fn adoption(live: Option<&Value>, set_id: &str) -> Adoption {
    let Some(live) = live else {
        return Adoption::Member;
    };
    let meta = &live["metadata"];
    let part_of = meta["labels"][APPLYSET_PART_OF_LABEL].as_str();
    if part_of == Some(set_id) {
        return Adoption::Member;
    }
    if meta["annotations"][ADOPT_ANNOTATION].as_str() == Some("true") {
        return Adoption::Adopt;
    }
    if let Some(owner) = meta["ownerReferences"].as_array().and_then(|o| o.first()) {
        return Adoption::Refused(format!(
            "owned by {}/{} (ownerReferences)",
            owner["kind"].as_str().unwrap_or("?"),
            owner["name"].as_str().unwrap_or("?")
        ));
    }
    if let Some(other) = part_of {
        return Adoption::Refused(format!("a member of another ApplySet ({other})"));
    }
    if let Some(tool) = meta["labels"][MANAGED_BY_LABEL].as_str()
        && tool != TOOLING_NAME
    {
        return Adoption::Refused(format!("managed by {tool} ({MANAGED_BY_LABEL})"));
    }
    Adoption::Adopt
}

impl Adoption {
    /// The status line for a refused object: why, and how to let the agent take it.
    pub fn refusal(&self) -> Option<String> {
        match self {
            Self::Refused(whose) => Some(format!(
                "not adopted: the live object is {whose}; annotate it {ADOPT_ANNOTATION}=true to let Git take it over"
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SET: &str = "applyset-abc-v1";

    fn live(meta: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta})
    }

    #[test]
    fn absent_and_members_are_not_adoptions() {
        assert_eq!(adoption(None, SET), Adoption::Member);
        let member = live(json!({"name": "a", "labels": {APPLYSET_PART_OF_LABEL: SET}}));
        assert_eq!(adoption(Some(&member), SET), Adoption::Member);
    }

    #[test]
    fn unowned_objects_are_adopted() {
        let hand_made = live(json!({"name": "a", "labels": {"app": "web"}}));
        assert_eq!(adoption(Some(&hand_made), SET), Adoption::Adopt);
        let ours = live(json!({"name": "a", "labels": {MANAGED_BY_LABEL: TOOLING_NAME}}));
        assert_eq!(adoption(Some(&ours), SET), Adoption::Adopt);
    }

    #[test]
    fn owned_objects_are_refused_naming_the_owner() {
        let operator = live(json!({"name": "db-credentials", "ownerReferences": [
            {"apiVersion": "example.com/v1", "kind": "Postgres", "name": "db", "uid": "1", "controller": true}
        ]}));
        let refused = adoption(Some(&operator), SET);
        assert_eq!(
            refused,
            Adoption::Refused("owned by Postgres/db (ownerReferences)".into())
        );
        let line = refused.refusal().unwrap();
        assert!(
            line.contains(ADOPT_ANNOTATION) && line.contains("Postgres/db"),
            "{line}"
        );

        let other_set =
            live(json!({"name": "a", "labels": {APPLYSET_PART_OF_LABEL: "applyset-x-v1"}}));
        assert!(
            matches!(adoption(Some(&other_set), SET), Adoption::Refused(w) if w.contains("applyset-x-v1"))
        );
        let helm = live(json!({"name": "a", "labels": {MANAGED_BY_LABEL: "Helm"}}));
        assert!(matches!(adoption(Some(&helm), SET), Adoption::Refused(w) if w.contains("Helm")));
    }

    #[test]
    fn the_annotation_opts_in_whoever_owns_it() {
        let operator = live(json!({"name": "a",
            "annotations": {ADOPT_ANNOTATION: "true"},
            "ownerReferences": [{"kind": "Postgres", "name": "db"}]}));
        assert_eq!(adoption(Some(&operator), SET), Adoption::Adopt);
        let not_true = live(json!({"name": "a",
            "annotations": {ADOPT_ANNOTATION: "yes"},
            "ownerReferences": [{"kind": "Postgres", "name": "db"}]}));
        assert!(matches!(
            adoption(Some(&not_true), SET),
            Adoption::Refused(_)
        ));
    }
}
