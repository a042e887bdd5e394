//! Reading the namespace: API discovery, ApplySet members, single objects, HPAs, Events, and
//! the server-side apply dry-run `diff` compares against.

use std::collections::BTreeMap;

use anyhow::Context;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use renderer::drift::predict;
use renderer::protocol::{APPLYSET_PART_OF_LABEL, GroupKind, PLUGIN_FIELD_MANAGER};
use serde_json::Value;

/// kubectl's short names for the kinds people type most; discovery does not return them.
const SHORT_NAMES: &[(&str, &str)] = &[
    ("cm", "ConfigMap"),
    ("cj", "CronJob"),
    ("deploy", "Deployment"),
    ("ds", "DaemonSet"),
    ("hpa", "HorizontalPodAutoscaler"),
    ("ing", "Ingress"),
    ("netpol", "NetworkPolicy"),
    ("pdb", "PodDisruptionBudget"),
    ("po", "Pod"),
    ("pvc", "PersistentVolumeClaim"),
    ("rs", "ReplicaSet"),
    ("sa", "ServiceAccount"),
    ("sts", "StatefulSet"),
    ("svc", "Service"),
];

/// The API server's kinds, from one discovery pass.
pub struct Kinds {
    discovery: Discovery,
}

impl Kinds {
    pub async fn discover(client: &kube::Client) -> anyhow::Result<Self> {
        // Aggregated discovery is two requests; older servers need one per group version.
        let discovery = match Discovery::new(client.clone()).run_aggregated().await {
            Ok(d) => d,
            Err(_) => Discovery::new(client.clone())
                .run()
                .await
                .context("discovering the API server's resource kinds")?,
        };
        Ok(Self { discovery })
    }

    /// The preferred resource for a group and kind.
    pub fn resolve(&self, gk: &GroupKind) -> Option<(ApiResource, ApiCapabilities)> {
        self.discovery.get(&gk.group)?.recommended_kind(&gk.kind)
    }

    /// The resource for an object's own `apiVersion` and `kind`, falling back to the
    /// preferred version of its group.
    pub fn for_object(&self, obj: &Value) -> Option<(ApiResource, ApiCapabilities)> {
        let api_version = obj["apiVersion"].as_str()?;
        let kind = obj["kind"].as_str()?;
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let group_api = self.discovery.get(group)?;
        group_api
            .versioned_resources(version)
            .into_iter()
            .find(|(ar, _)| ar.kind == kind)
            .or_else(|| group_api.recommended_kind(kind))
    }

    /// What a user typed before the slash (`deployment`, `deploy`, `deployments`,
    /// `Deployment`, `deployments.apps`) as a group and kind.
    pub fn by_name(&self, typed: &str) -> Option<GroupKind> {
        let (name, group) = match typed.split_once('.') {
            Some((n, g)) => (n, Some(g)),
            None => (typed, None),
        };
        let name = SHORT_NAMES
            .iter()
            .find(|(short, _)| short.eq_ignore_ascii_case(name))
            .map_or(name, |(_, kind)| kind);
        let lower = name.to_ascii_lowercase();
        for api_group in self.discovery.groups() {
            if group.is_some_and(|g| g != api_group.name()) {
                continue;
            }
            for (ar, _) in api_group.recommended_resources() {
                if ar.kind.to_ascii_lowercase() == lower || ar.plural == lower {
                    return Some(GroupKind::new(ar.group, ar.kind));
                }
            }
        }
        None
    }
}

/// What neither Git nor the user controls: bookkeeping the API server rewrites on every
/// request, left out of every diff.
pub fn without_server_fields(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(meta) = obj["metadata"].as_object_mut() {
        for key in [
            "managedFields",
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
        ] {
            meta.shift_remove(key);
        }
    }
    obj
}

pub fn to_value(obj: &DynamicObject) -> Value {
    serde_json::to_value(obj).expect("a DynamicObject serializes to JSON")
}

fn api(
    client: &kube::Client,
    namespace: &str,
    ar: &ApiResource,
    caps: &ApiCapabilities,
) -> Api<DynamicObject> {
    match caps.scope {
        Scope::Namespaced => Api::namespaced_with(client.clone(), namespace, ar),
        Scope::Cluster => Api::all_with(client.clone(), ar),
    }
}

/// One live object, `None` when it does not exist.
pub async fn get(
    client: &kube::Client,
    namespace: &str,
    resource: &(ApiResource, ApiCapabilities),
    name: &str,
) -> anyhow::Result<Option<Value>> {
    let (ar, caps) = resource;
    api(client, namespace, ar, caps)
        .get_opt(name)
        .await
        .map(|o| o.as_ref().map(to_value))
        .with_context(|| format!("reading {}/{name} in namespace {namespace}", ar.kind))
}

/// Every member of the ApplySet `set_id`, listed kind by kind as the parent declares them.
/// Kinds the server no longer serves are skipped: their members cannot exist.
pub async fn members(
    client: &kube::Client,
    namespace: &str,
    kinds: &Kinds,
    group_kinds: &[GroupKind],
    set_id: &str,
) -> anyhow::Result<Vec<Value>> {
    let params = ListParams::default().labels(&format!("{APPLYSET_PART_OF_LABEL}={set_id}"));
    let mut out = Vec::new();
    for gk in group_kinds {
        let Some((ar, caps)) = kinds.resolve(gk) else {
            continue;
        };
        let list = api(client, namespace, &ar, &caps)
            .list(&params)
            .await
            .with_context(|| format!("listing {gk} members in namespace {namespace}"))?;
        out.extend(list.items.iter().map(|o| {
            let mut v = to_value(o);
            // Lists leave out each item's type; the rest of the plugin keys objects by it.
            v["apiVersion"] = Value::from(ar.api_version.clone());
            v["kind"] = Value::from(ar.kind.clone());
            v
        }));
    }
    out.sort_by_key(object_key);
    Ok(out)
}

/// `Kind/name`, how objects are named in all text output.
pub fn object_key(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj["kind"].as_str().unwrap_or_default(),
        obj["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Every HorizontalPodAutoscaler in the namespace (empty when the API is not served), for the
/// same HPA ignore rule the agent applies.
pub async fn hpas(
    client: &kube::Client,
    namespace: &str,
    kinds: &Kinds,
) -> anyhow::Result<Vec<Value>> {
    let Some(resource) = kinds.resolve(&GroupKind::new("autoscaling", "HorizontalPodAutoscaler"))
    else {
        return Ok(Vec::new());
    };
    let (ar, caps) = &resource;
    let list = api(client, namespace, ar, caps)
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing HorizontalPodAutoscalers in namespace {namespace}"))?;
    Ok(list
        .items
        .iter()
        .map(|o| {
            let mut v = to_value(o);
            v["apiVersion"] = Value::from(ar.api_version.clone());
            v["kind"] = Value::from(ar.kind.clone());
            v
        })
        .collect())
}

/// What applying `body` would make of the live object: a forced server-side apply with
/// `dryRun=All` as `kubectl-gitops`, so defaulting and admission webhooks run and nothing is
/// stored.
pub async fn dry_run_apply(
    client: &kube::Client,
    namespace: &str,
    resource: &(ApiResource, ApiCapabilities),
    body: &Value,
) -> anyhow::Result<Value> {
    let params = PatchParams::apply(PLUGIN_FIELD_MANAGER).force().dry_run();
    dry_run_patch(client, namespace, resource, body, &params).await
}

/// How often [`live_and_agent_apply`] reads the pair again when the object keeps changing.
const CONSISTENT_READ_ATTEMPTS: usize = 8;

/// The live object `name` and what the agent's next apply would make of it, as one consistent
/// pair. `body_for` builds the agent's body from the live object it was read against. The
/// dry-run carries that object's `resourceVersion` as a precondition: a controller writing in
/// between (the Deployment controller's revision annotation, a status update) makes the API
/// server refuse it, and the pair is read again, so another writer's change never shows up as
/// one the agent would make.
pub async fn live_and_agent_apply(
    client: &kube::Client,
    namespace: &str,
    resource: &(ApiResource, ApiCapabilities),
    name: &str,
    mut body_for: impl FnMut(Option<&Value>) -> predict::ApplyBody,
) -> anyhow::Result<(Option<Value>, predict::ApplyBody, Value)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let live = get(client, namespace, resource, name).await?;
        let applied = body_for(live.as_ref());
        let mut body = applied.body.clone();
        if let Some(version) = live.as_ref().map(|l| &l["metadata"]["resourceVersion"]) {
            body["metadata"]["resourceVersion"] = version.clone();
        }
        match dry_run_as_agent(client, namespace, resource, &body).await {
            Err(DryRunError::Api(e)) if e.code == 409 && attempt < CONSISTENT_READ_ATTEMPTS => {
                continue;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "server-side dry-run apply of {}/{name}",
                    resource.0.kind
                )));
            }
            Ok(after) => return Ok((live, applied, after)),
        }
    }
}

/// Why a dry-run apply failed; the API server's refusals are kept apart so a caller can tell a
/// stale precondition (409) from the rest.
#[derive(Debug, thiserror::Error)]
enum DryRunError {
    #[error(transparent)]
    Api(Box<kube::core::Status>),
    #[error(transparent)]
    Other(kube::Error),
}

/// What the agent's next apply of `body` would make of the live object: the same forced,
/// strictly validated server-side apply under the agent's field manager, with `dryRun=All`.
/// Running as the agent is what makes fields it owns but Git no longer sets disappear.
async fn dry_run_as_agent(
    client: &kube::Client,
    namespace: &str,
    resource: &(ApiResource, ApiCapabilities),
    body: &Value,
) -> Result<Value, DryRunError> {
    let mut params = PatchParams::apply(predict::FIELD_MANAGER)
        .validation_strict()
        .dry_run();
    params.force = predict::FORCE;
    patch(client, namespace, resource, body, &params)
        .await
        .map_err(|e| match e {
            kube::Error::Api(status) => DryRunError::Api(status),
            other => DryRunError::Other(other),
        })
}

/// One server-side dry-run apply of `body` with `params` (which say who applies and how).
async fn dry_run_patch(
    client: &kube::Client,
    namespace: &str,
    resource: &(ApiResource, ApiCapabilities),
    body: &Value,
    params: &PatchParams,
) -> anyhow::Result<Value> {
    let name = body["metadata"]["name"].as_str().unwrap_or_default();
    patch(client, namespace, resource, body, params)
        .await
        .with_context(|| format!("server-side dry-run apply of {}/{name}", resource.0.kind))
}

async fn patch(
    client: &kube::Client,
    namespace: &str,
    resource: &(ApiResource, ApiCapabilities),
    body: &Value,
    params: &PatchParams,
) -> Result<Value, kube::Error> {
    let (ar, caps) = resource;
    let name = body["metadata"]["name"].as_str().unwrap_or_default();
    api(client, namespace, ar, caps)
        .patch(name, params, &Patch::Apply(body))
        .await
        .map(|o| to_value(&o))
}

/// What the API server makes of Git's object created afresh (dry-run, under a generated name,
/// so it never collides with the live one): the values it fills in by itself.
pub async fn dry_run_create(
    client: &kube::Client,
    namespace: &str,
    resource: &(ApiResource, ApiCapabilities),
    body: &Value,
) -> anyhow::Result<Value> {
    let (ar, caps) = resource;
    let name = body["metadata"]["name"].as_str().unwrap_or_default();
    let mut fresh = body.clone();
    if let Some(meta) = fresh["metadata"].as_object_mut() {
        meta.shift_remove("name");
        meta.shift_remove("resourceVersion");
        meta.insert("generateName".into(), Value::from("gitops-defaults-"));
    }
    let object: DynamicObject = serde_json::from_value(fresh)
        .with_context(|| format!("{}/{name} is not a Kubernetes object", ar.kind))?;
    let params = PostParams {
        dry_run: true,
        field_manager: Some(predict::FIELD_MANAGER.to_string()),
    };
    api(client, namespace, ar, caps)
        .create(&params, &object)
        .await
        .map(|o| to_value(&o))
        .with_context(|| format!("server-side dry-run create of {}/{name}", ar.kind))
}

/// The namespace's Events, oldest first.
pub async fn events(client: &kube::Client, namespace: &str) -> anyhow::Result<Vec<Event>> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut items = api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing Events in namespace {namespace}"))?
        .items;
    items.sort_by_key(event_time);
    Ok(items)
}

pub fn event_time(e: &Event) -> Option<String> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
        .or_else(|| {
            e.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
        })
}

/// The string annotations of an object.
pub fn annotations(obj: &Value) -> BTreeMap<String, String> {
    obj["metadata"]["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn object_keys_and_annotations() {
        let obj = json!({"kind": "Deployment", "metadata": {"name": "api",
            "annotations": {"a": "b", "n": 1}}});
        assert_eq!(object_key(&obj), "Deployment/api");
        assert_eq!(
            annotations(&obj),
            BTreeMap::from([("a".into(), "b".into())])
        );
        assert!(annotations(&json!({})).is_empty());
    }
}
