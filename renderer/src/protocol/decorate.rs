//! What the agent sets on every object besides Git's content, before it applies (and the
//! plugin before it dry-runs, so both send the same object).

use serde_json::Value;

use super::keys::{APPLYSET_PART_OF_LABEL, REVISION_ANNOTATION};

/// Sets the namespace and the ApplySet membership label, and the revision annotation when
/// `revision` is given. The plugin passes `None`: the revision changes with every commit and
/// is never drift.
pub fn decorate(body: &mut Value, namespace: &str, set_id: &str, revision: Option<&str>) {
    let meta = &mut body["metadata"];
    meta["namespace"] = Value::from(namespace);
    if !meta["labels"].is_object() {
        meta["labels"] = Value::Object(Default::default());
    }
    meta["labels"][APPLYSET_PART_OF_LABEL] = Value::from(set_id);
    if let Some(revision) = revision {
        if !meta["annotations"].is_object() {
            meta["annotations"] = Value::Object(Default::default());
        }
        meta["annotations"][REVISION_ANNOTATION] = Value::from(revision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sets_namespace_and_membership_and_keeps_other_labels() {
        let mut obj = json!({"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "other", "labels": {"app": "a"}}});
        decorate(&mut obj, "shop", "applyset-x-v1", None);
        assert_eq!(obj["metadata"]["namespace"], "shop");
        assert_eq!(obj["metadata"]["labels"]["app"], "a");
        assert_eq!(
            obj["metadata"]["labels"][APPLYSET_PART_OF_LABEL],
            "applyset-x-v1"
        );
        assert!(obj["metadata"].get("annotations").is_none());
    }

    #[test]
    fn the_revision_is_annotated_only_when_given() {
        let mut obj =
            json!({"kind": "ConfigMap", "metadata": {"name": "c", "annotations": "not a map"}});
        decorate(&mut obj, "shop", "set", Some("c0ffee"));
        assert_eq!(
            obj["metadata"]["annotations"][REVISION_ANNOTATION],
            "c0ffee"
        );
        assert_eq!(obj["metadata"]["labels"][APPLYSET_PART_OF_LABEL], "set");
    }
}
