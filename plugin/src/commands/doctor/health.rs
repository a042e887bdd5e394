//! The live step's health part: what the agent reports Degraded, and for a workload the
//! commit and file:line that set its images (the usual cause of a bad rollout).

use git2::Oid;
use renderer::Rendered;
use renderer::protocol::{HealthEntry, SyncStatus};

use super::{Step, StepVerdict};
use crate::cluster::tracked;
use crate::git::blame::Blamer;
use crate::git::local_repo::{LocalRepo, short};

/// Marks `live` a problem when the agent reports objects Degraded, naming each with its
/// reason and where Git set its images.
pub(super) fn amend_live_step(
    live: &mut Step,
    status: &SyncStatus,
    rendered: Option<&Rendered>,
    local: Option<&LocalRepo>,
    ns: &str,
) {
    let degraded: Vec<&HealthEntry> = status
        .health
        .iter()
        .filter(|h| h.state == "Degraded")
        .collect();
    if degraded.is_empty() {
        return;
    }
    let mut blamer = match (local, tracked::tracked_commit(status)) {
        (Some(local), Some(commit)) => Oid::from_str(commit)
            .ok()
            .map(|oid| Blamer::new(&local.repo, oid)),
        _ => None,
    };
    let mut evidence = Vec::new();
    for h in &degraded {
        evidence.push(format!("{}/{} Degraded: {}", h.kind, h.name, h.message));
        let Some(object) = rendered.and_then(|r| {
            r.objects.iter().find(|o| {
                o.value["kind"] == h.kind.as_str() && o.value["metadata"]["name"] == h.name.as_str()
            })
        }) else {
            continue;
        };
        for (path, origin) in object.provenance().iter() {
            if !path.ends_with(".image") {
                continue;
            }
            let value = field_value(&object.value, path).unwrap_or_default();
            let file = &origin.origin.file;
            let line = origin.origin.line;
            let commit = blamer
                .as_mut()
                .and_then(|b| b.line(file, line))
                .map(|c| format!(" by commit {} ({})", short(&c.sha), c.subject))
                .unwrap_or_default();
            evidence.push(format!("  image {value} set at {file}:{line}{commit}"));
        }
    }
    let first = degraded[0];
    live.verdict = StepVerdict::Problem;
    live.summary = format!(
        "{} Degraded: {}/{} {}",
        if degraded.len() == 1 {
            "1 object".to_string()
        } else {
            format!("{} objects", degraded.len())
        },
        first.kind,
        first.name,
        first.message
    );
    evidence.append(&mut live.evidence);
    live.evidence = evidence;
    live.next = format!(
        "fix the image in Git, or kubectl gitops rollback -n {ns} --to <last good tag> --wait"
    );
}

/// The value at a provenance path such as `spec.template.spec.containers[0].image` (indexes
/// or `[name=api]` selectors), for the evidence line.
fn field_value(obj: &serde_json::Value, path: &str) -> Option<String> {
    let mut at = obj;
    for segment in path.split('.') {
        let (key, selector) = match segment.split_once('[') {
            Some((k, rest)) => (k, Some(rest.trim_end_matches(']'))),
            None => (segment, None),
        };
        if !key.is_empty() {
            at = at.get(key)?;
        }
        if let Some(sel) = selector {
            at = match sel.split_once('=') {
                Some((k, v)) => at.as_array()?.iter().find(|e| e[k] == v)?,
                None => at.get(sel.parse::<usize>().ok()?)?,
            };
        }
    }
    at.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::field_value;

    #[test]
    fn field_values_by_provenance_path() {
        let d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "api", "image": "a:1"}, {"name": "side", "image": "b:2"}]}}}});
        assert_eq!(
            field_value(&d, "spec.template.spec.containers[1].image").as_deref(),
            Some("b:2")
        );
        assert_eq!(
            field_value(&d, "spec.template.spec.containers[name=api].image").as_deref(),
            Some("a:1")
        );
        assert_eq!(
            field_value(&d, "spec.template.spec.containers[7].image"),
            None
        );
    }
}
