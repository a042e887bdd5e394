//! The built-in `IAMPolicyGenerator` (`generators:` config with `apiVersion: builtin`): a
//! Kubernetes ServiceAccount bound to a cloud service account through its annotation.
//! kustomize v5.5 knows one cloud, GKE.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::error::{ErrorKind, RenderError};
use super::resource::{Mark, ResOrigin, Resource};
use crate::provenance::{Origin, SetBy, for_each_leaf};

/// The ServiceAccount the config in `file` (document starting at `line`) generates; every
/// field is marked with that config.
pub fn generate(doc: &Value, file: &Arc<str>, line: u32) -> Result<Resource, RenderError> {
    let bad = |m: String| RenderError::new(ErrorKind::Invalid, file, line, m);
    let s = |p: &str| doc.pointer(p).and_then(Value::as_str).unwrap_or("");
    match s("/cloud") {
        "gke" => {}
        other => return Err(bad(format!("cloud provider {other} not supported yet"))),
    }
    let mut meta = Map::new();
    meta.insert(
        "annotations".into(),
        json!({
            "iam.gke.io/gcp-service-account":
                format!("{}@{}.iam.gserviceaccount.com", s("/serviceAccount/name"), s("/serviceAccount/projectId"))
        }),
    );
    meta.insert("name".into(), Value::from(s("/kubernetesService/name")));
    if !s("/kubernetesService/namespace").is_empty() {
        meta.insert(
            "namespace".into(),
            Value::from(s("/kubernetesService/namespace")),
        );
    }
    let value = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta});
    let origin = Origin {
        file: file.clone(),
        line,
        col: 1,
        set_by: SetBy::Generator,
    };
    let mut marks = super::resource::Marks::default();
    for_each_leaf(&value, &mut |path, _| {
        marks.insert(
            path.to_string(),
            Mark {
                origin: origin.clone(),
                depth: 0,
            },
        );
    });
    Ok(Resource {
        value,
        marks,
        chain: vec![],
        file: file.clone(),
        previous_ids: vec![],
        needs_hash: false,
        prefixes: vec![],
        suffixes: vec![],
        origin: ResOrigin::Generator("IAMPolicyGenerator"),
        transformations: vec![],
        var_refs: vec![],
    })
}
