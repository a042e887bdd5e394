//! The cluster side shared by `install` and `uninstall`: finding the agent's objects by the
//! base's labels, showing a change as a redacted unified diff, deleting one object.

use anyhow::Context;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Preconditions};
use renderer::protocol::GroupKind;
use serde_json::Value;

use crate::cluster::live::{Kinds, object_key, to_value, without_server_fields};
use crate::install::manifests::{AGENT_KINDS, AGENT_SELECTOR};
use crate::output::unified_diff::{self, DiffOptions};

/// Every object of the namespace carrying the agent's labels, in [`AGENT_KINDS`] order.
pub async fn agent_objects(
    client: &kube::Client,
    namespace: &str,
    kinds: &Kinds,
) -> anyhow::Result<Vec<Value>> {
    let mut found = Vec::new();
    for (group, kind) in AGENT_KINDS {
        let Some((ar, _)) = kinds.resolve(&GroupKind::new(group, kind)) else {
            continue;
        };
        let list = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &ar)
            .list(&ListParams::default().labels(AGENT_SELECTOR))
            .await
            .with_context(|| format!("listing {kind}s of the agent in namespace {namespace}"))?;
        found.extend(list.items.iter().map(|o| {
            let mut v = to_value(o);
            v["apiVersion"] = Value::from(ar.api_version.clone());
            v["kind"] = Value::from(ar.kind.clone());
            v
        }));
    }
    Ok(found)
}

/// What the server keeps for itself, status included; showing it would make every diff noisy.
fn clean(obj: &Value) -> Value {
    let mut obj = without_server_fields(obj);
    if let Some(obj) = obj.as_object_mut() {
        obj.shift_remove("status");
    }
    obj
}

/// `before` → `after` (either side `None` for create/delete), Secret values redacted; `None`
/// when nothing changes.
pub fn object_diff(
    before: Option<&Value>,
    after: Option<&Value>,
    key: &str,
    color: bool,
) -> Option<String> {
    unified_diff::object_diff(
        before.map(clean),
        after.map(clean),
        ("live", "install"),
        key,
        DiffOptions {
            color,
            ..DiffOptions::default()
        },
    )
}

/// Deletes one live object (background propagation); an object already gone is fine. When
/// `live` carries a UID the delete is conditional on it: an object of the same name made since
/// it was read (by someone else) is left alone, and `Ok(false)` says so.
pub async fn delete(
    client: &kube::Client,
    namespace: &str,
    kinds: &Kinds,
    live: &Value,
    dry_run: bool,
) -> anyhow::Result<bool> {
    let key = object_key(live);
    let (ar, _) = kinds
        .for_object(live)
        .with_context(|| format!("{key}: the API server does not serve this kind"))?;
    let name = live["metadata"]["name"].as_str().unwrap_or_default();
    let uid = live["metadata"]["uid"].as_str().map(str::to_string);
    let params = DeleteParams {
        dry_run,
        preconditions: uid.as_ref().map(|uid| Preconditions {
            uid: Some(uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &ar)
        .delete(name, &params)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 && uid.is_some() => Ok(false),
        Err(e) => Err(e).with_context(|| format!("deleting {key} in namespace {namespace}")),
    }
}
