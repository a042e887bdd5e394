//! What the agent sets on every object besides Git's content, before it applies (and the
//! plugin before it dry-runs, so both send the same object).

use serde_json::Value;

use super::keys::APPLYSET_PART_OF_LABEL;

/// Sets the namespace and the ApplySet membership label. Nothing that changes with a commit is
/// set here: the commit that last changed each member is recorded on the parent
/// ([`super::MemberRevisions`]), so a commit writes only the objects whose content it changes.
pub fn decorate(body: &mut Value, namespace: &str, set_id: &str) {
    let meta = &mut body["metadata"];
    meta["namespace"] = Value::from(namespace);
    if !meta["labels"].is_object() {
        meta["labels"] = Value::Object(Default::default());
    }
    meta["labels"][APPLYSET_PART_OF_LABEL] = Value::from(set_id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sets_namespace_and_membership_and_keeps_other_labels() {
        let mut obj = json!({"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "other", "labels": {"app": "a"}}});
        decorate(&mut obj, "shop", "applyset-x-v1");
        assert_eq!(obj["metadata"]["namespace"], "shop");
        assert_eq!(obj["metadata"]["labels"]["app"], "a");
        assert_eq!(
            obj["metadata"]["labels"][APPLYSET_PART_OF_LABEL],
            "applyset-x-v1"
        );
        assert!(obj["metadata"].get("annotations").is_none());
    }
}
