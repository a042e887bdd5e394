//! The agent's view of the API server: discovery, listing, dry-run, apply and delete, all
//! confined to the one namespace it manages.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, Preconditions,
};
use kube::discovery::{self, Scope};
use renderer::protocol::{AGENT_FIELD_MANAGER, GroupKind};
use serde_json::Value;

use super::plan::{Desired, LiveMember, ObjectKey};
use crate::fence::Fence;

/// Objects per list request: parsed, a Deployment with its managedFields and status is some
/// 30 KiB, and a page is held while its objects are dry-run.
const LIST_PAGE: u32 = 50;

/// Discovery results per apiVersion+kind; `None` when the cluster serves no such kind.
type ResourceCache = HashMap<(String, String), Option<(ApiResource, bool)>>;
/// When each kind was last found missing.
type MissingSince = HashMap<(String, String), Instant>;

/// How long "the cluster serves no such kind" is believed: a CRD installed later is found by
/// the first sync after this, without a restart. A kind that exists never goes stale here
/// (its removal fails the request that uses it).
pub const MISSING_KIND_TTL: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Cluster {
    client: Client,
    namespace: String,
    resources: std::sync::Arc<Mutex<ResourceCache>>,
    missing_since: std::sync::Arc<Mutex<MissingSince>>,
    /// Checked before every write: a replica that lost its lease writes nothing more.
    fence: Fence,
}

/// An API error, with the object it concerned, phrased for the status message.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct ApiError {
    pub what: String,
    pub message: String,
    /// HTTP status from the API server, when it answered.
    pub code: Option<u16>,
}

impl ApiError {
    pub fn new(what: impl Into<String>, err: &kube::Error) -> Self {
        let what = what.into();
        match err {
            kube::Error::Api(status) => Self {
                message: describe_status(status.code, &status.reason, &status.message),
                code: Some(status.code),
                what,
            },
            other => Self {
                what,
                message: other.to_string(),
                code: None,
            },
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code == Some(404)
    }

    /// A precondition failed: the object is no longer at the resourceVersion the request named.
    pub fn is_conflict(&self) -> bool {
        self.code == Some(409)
    }
}

/// Makes RBAC denials and admission rejections read as what they are.
fn describe_status(code: u16, reason: &str, message: &str) -> String {
    match code {
        403 => format!("forbidden by RBAC: {message}"),
        422 | 400 => format!("rejected by the API server: {message}"),
        409 => format!("conflict: {message}"),
        _ if message.contains("admission webhook") => format!("rejected by admission: {message}"),
        _ if reason.is_empty() => message.to_string(),
        _ => format!("{reason}: {message}"),
    }
}

impl Cluster {
    pub fn new(client: Client, namespace: &str, fence: Fence) -> Self {
        Self {
            client,
            namespace: namespace.to_string(),
            resources: Default::default(),
            missing_since: Default::default(),
            fence,
        }
    }

    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Call right before any write or delete: refuses it once this replica may not lead.
    pub fn check_fence(&self, what: &str) -> Result<(), ApiError> {
        self.fence.check().map_err(|e| ApiError {
            what: what.to_string(),
            message: e.to_string(),
            code: None,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Resolves apiVersion+kind through discovery (cached; discovery is readable by any user).
    pub async fn resource(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<Option<(ApiResource, bool)>, ApiError> {
        let key = (api_version.to_string(), kind.to_string());
        let fresh = |key: &(String, String)| {
            self.missing_since
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(key)
                .is_none_or(|since| since.elapsed() < MISSING_KIND_TTL)
        };
        if let Some(hit) = self
            .resources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            && (hit.is_some() || fresh(&key))
        {
            return Ok(hit.clone());
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let found = match retrying(|| discovery::pinned_kind(&self.client, &gvk)).await {
            Ok((ar, caps)) => Some((ar, caps.scope == Scope::Namespaced)),
            Err(kube::Error::Api(s)) if s.code == 404 => None,
            Err(kube::Error::Discovery(_)) => None,
            Err(e) => {
                return Err(ApiError::new(
                    format!("discovery of {kind} ({api_version})"),
                    &e,
                ));
            }
        };
        let mut missing = self.missing_since.lock().unwrap_or_else(|p| p.into_inner());
        if found.is_none() {
            missing.insert(key.clone(), Instant::now());
        } else {
            missing.remove(&key);
        }
        drop(missing);
        self.resources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, found.clone());
        Ok(found)
    }

    /// The preferred apiVersion of a group-kind (for members of kinds Git no longer declares).
    pub async fn preferred_api_version(&self, gk: &GroupKind) -> Result<Option<String>, ApiError> {
        match retrying(|| discovery::group(&self.client, &gk.group)).await {
            Ok(group) => Ok(group
                .recommended_kind(&gk.kind)
                .map(|(ar, _)| ar.api_version)),
            Err(kube::Error::Discovery(_)) => Ok(None),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(e) => Err(ApiError::new(format!("discovery of {gk}"), &e)),
        }
    }

    /// The namespaced API for a kind already known to exist.
    pub async fn api(&self, api_version: &str, kind: &str) -> Result<Api<DynamicObject>, ApiError> {
        match self.resource(api_version, kind).await? {
            Some((ar, _)) => Ok(Api::namespaced_with(
                self.client.clone(),
                &self.namespace,
                &ar,
            )),
            None => Err(ApiError {
                what: format!("{kind} ({api_version})"),
                message: "the cluster serves no such kind".into(),
                code: Some(404),
            }),
        }
    }

    /// Every object of a kind in the namespace (optionally by label), as JSON.
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        let mut out = Vec::new();
        let mut pages = self.pages(api_version, kind, selector);
        while let Some(page) = pages.next().await? {
            out.extend(page);
        }
        Ok(out)
    }

    /// A listing of a kind page by page that survives its continue token expiring (see
    /// [`Pages`]).
    pub fn pages<'c>(
        &'c self,
        api_version: &'c str,
        kind: &'c str,
        selector: Option<&'c str>,
    ) -> Pages<'c> {
        Pages {
            cluster: self,
            api_version,
            kind,
            selector,
            token: None,
            done: false,
            progress: ListProgress::default(),
        }
    }

    /// One page of a listing, and the token for the next one (`None` after the last).
    /// Paging keeps only [`LIST_PAGE`] full objects in memory at a time.
    async fn list_page(
        &self,
        api_version: &str,
        kind: &str,
        selector: Option<&str>,
        token: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), ApiError> {
        let api = self.api(api_version, kind).await?;
        let mut params = ListParams::default().limit(LIST_PAGE);
        if let Some(s) = selector {
            params = params.labels(s);
        }
        if let Some(t) = token {
            params = params.continue_token(t);
        }
        let list = retrying(|| api.list(&params))
            .await
            .map_err(|e| ApiError::new(format!("list {kind} in {}", self.namespace), &e))?;
        let next = list.metadata.continue_.filter(|t| !t.is_empty());
        let items = list
            .items
            .into_iter()
            .map(|mut o| {
                // Lists leave apiVersion/kind off the items; the comparison needs them.
                o.types = Some(kube::api::TypeMeta {
                    api_version: api_version.to_string(),
                    kind: kind.to_string(),
                });
                into_value(o)
            })
            .collect();
        Ok((items, next))
    }

    pub async fn get(&self, d: &Desired) -> Result<Option<Value>, ApiError> {
        let api = self.api(&d.api_version, &d.key.group_kind.kind).await?;
        match retrying(|| api.get_opt(&d.key.name)).await {
            Ok(o) => Ok(o.map(|mut o| {
                o.types = Some(kube::api::TypeMeta {
                    api_version: d.api_version.clone(),
                    kind: d.key.group_kind.kind.clone(),
                });
                into_value(o)
            })),
            Err(e) => Err(ApiError::new(format!("get {}", d.key), &e)),
        }
    }

    /// Server-side apply as `gitops-agent`, forcing ownership: Git wins over other managers.
    pub async fn apply(&self, d: &Desired, body: &Value, dry_run: bool) -> Result<Value, ApiError> {
        let api = self.api(&d.api_version, &d.key.group_kind.kind).await?;
        let params = PatchParams::apply(AGENT_FIELD_MANAGER).force();
        // Only the dry-run validates strictly: every write follows a dry-run of the same body,
        // and the strict check decodes the body a second time on the API server.
        let params = if dry_run {
            params.validation_strict().dry_run()
        } else {
            params.validation_ignore()
        };
        let what = match &d.origin {
            Some(o) => format!("{} ({o})", d.key),
            None => d.key.to_string(),
        };
        if !dry_run {
            self.check_fence(&what)?;
        }
        let patch = Patch::Apply(body);
        retrying(|| api.patch(&d.key.name, &params, &patch))
            .await
            .map(into_value)
            .map_err(|e| ApiError::new(what, &e))
    }

    /// Replaces the object's managedFields, if it is still at `resource_version`. Returns the
    /// object's new resourceVersion.
    pub async fn set_managed_fields(
        &self,
        d: &Desired,
        resource_version: &str,
        managed_fields: Vec<Value>,
    ) -> Result<Option<String>, ApiError> {
        let api = self.api(&d.api_version, &d.key.group_kind.kind).await?;
        let patch = serde_json::json!({"metadata": {
            "resourceVersion": resource_version,
            "managedFields": managed_fields,
        }});
        let params = PatchParams {
            field_manager: Some(AGENT_FIELD_MANAGER.into()),
            ..Default::default()
        };
        self.check_fence(&format!("take over break-glass fields of {}", d.key))?;
        api.patch(&d.key.name, &params, &Patch::Merge(&patch))
            .await
            .map(|o| o.metadata.resource_version)
            .map_err(|e| ApiError::new(format!("take over break-glass fields of {}", d.key), &e))
    }

    /// Removes annotations another tool wrote (a JSON merge patch: SSA cannot drop fields it
    /// does not own).
    pub async fn remove_annotations(&self, d: &Desired, keys: &[&str]) -> Result<(), ApiError> {
        let api = self.api(&d.api_version, &d.key.group_kind.kind).await?;
        let nulls: serde_json::Map<String, Value> =
            keys.iter().map(|k| (k.to_string(), Value::Null)).collect();
        let patch = serde_json::json!({"metadata": {"annotations": nulls}});
        let params = PatchParams {
            field_manager: Some(AGENT_FIELD_MANAGER.into()),
            ..Default::default()
        };
        self.check_fence(&format!("remove annotations from {}", d.key))?;
        api.patch(&d.key.name, &params, &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| ApiError::new(format!("remove annotations from {}", d.key), &e))
    }

    /// Deletes a member only if it is still the object that was listed (same UID).
    pub async fn delete(&self, m: &LiveMember) -> Result<(), ApiError> {
        let api = self.api(&m.api_version, &m.key.group_kind.kind).await?;
        let mut params = DeleteParams::background();
        if let Some(uid) = &m.uid {
            params = params.preconditions(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            });
        }
        self.check_fence(&format!("delete {}", m.key))?;
        match retrying(|| api.delete(&m.key.name, &params)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(ApiError::new(format!("delete {}", m.key), &e)),
        }
    }
}

/// How many times in a row a listing may start over without getting further before the sync
/// fails: each restart that yields an object not seen before starts the count again, so a
/// slow sync of a big kind always finishes, and only a listing that expires faster than its
/// pages can be fetched gives up.
const LIST_RESTARTS: u32 = 3;

/// One kind's listing, a page at a time. The caller judges each page (dry-runs, a second or
/// more) before asking for the next, so the continue token ages; once etcd is compacted past
/// its revision the API server answers 410 Gone ("The provided continue parameter is too
/// old..."). The listing then starts over without a token, and objects already returned are
/// skipped, so each object is returned once and only one page is held at a time.
pub struct Pages<'c> {
    cluster: &'c Cluster,
    api_version: &'c str,
    kind: &'c str,
    selector: Option<&'c str>,
    token: Option<String>,
    done: bool,
    progress: ListProgress,
}

impl Pages<'_> {
    /// The next page (possibly empty after a restart), or `None` once the listing is complete.
    pub async fn next(&mut self) -> Result<Option<Vec<Value>>, ApiError> {
        if self.done {
            return Ok(None);
        }
        loop {
            match self
                .cluster
                .list_page(
                    self.api_version,
                    self.kind,
                    self.selector,
                    self.token.as_deref(),
                )
                .await
            {
                Ok((page, next)) => {
                    self.done = next.is_none();
                    self.token = next;
                    return Ok(Some(self.progress.unseen(page)));
                }
                // Only a continued page can expire; a first page answering 410 is an error.
                Err(e) if e.code == Some(410) && self.token.is_some() => {
                    let Some(restarts) = self.progress.restart() else {
                        return Err(ApiError {
                            message: format!(
                                "the list kept expiring: its continue token was too old \
                                 (410 Gone, etcd compacted) {} times in a row without \
                                 getting further ({})",
                                LIST_RESTARTS + 1,
                                e.message
                            ),
                            ..e
                        });
                    };
                    tracing::info!(
                        kind = self.kind,
                        restarts,
                        seen = self.progress.seen.len(),
                        "continue token expired (410 Gone); listing the kind again from the start"
                    );
                    self.token = None;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// What a listing has returned so far, by name (the listing is of one kind in one namespace),
/// and how many restarts in a row found nothing new.
#[derive(Default)]
struct ListProgress {
    seen: HashSet<String>,
    stalled: u32,
}

impl ListProgress {
    /// The objects of `page` not returned before.
    fn unseen(&mut self, page: Vec<Value>) -> Vec<Value> {
        let before = self.seen.len();
        let page: Vec<Value> = page
            .into_iter()
            .filter(|o| self.seen.insert(name_of(o).to_string()))
            .collect();
        if self.seen.len() > before {
            self.stalled = 0;
        }
        page
    }

    /// Counts a restart; `None` once [`LIST_RESTARTS`] in a row found nothing new, otherwise
    /// the count so far.
    fn restart(&mut self) -> Option<u32> {
        self.stalled += 1;
        (self.stalled <= LIST_RESTARTS).then_some(self.stalled)
    }
}

/// Attempts of a request the API server answered 429, 503 or 504 (overloaded, starting or
/// stopping), 100 ms apart doubling to 2 s: about 6 s in all. kube's own retry is off
/// ([`crate::kube_clients`]): its 15 attempts up to 1000 s apart held a sync, and with it the
/// lock self-heal waits for, for minutes after an API server restart.
const API_ATTEMPTS: u32 = 6;

pub async fn retrying<T, F, Fut>(mut request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(100);
    for _ in 1..API_ATTEMPTS {
        match request().await {
            Err(kube::Error::Api(s)) if matches!(s.code, 429 | 503 | 504) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
    request().await
}

/// The object as one JSON tree, moving its data rather than copying it.
fn into_value(o: DynamicObject) -> Value {
    let DynamicObject {
        types,
        metadata,
        data,
    } = o;
    let mut out = match data {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    out.insert(
        "metadata".into(),
        serde_json::to_value(&metadata).expect("ObjectMeta serialises to JSON"),
    );
    // In the order the API server writes them, like DynamicObject's own serialisation.
    let mut ordered = serde_json::Map::new();
    if let Some(t) = types {
        ordered.insert("apiVersion".into(), Value::from(t.api_version));
        ordered.insert("kind".into(), Value::from(t.kind));
    }
    ordered.append(&mut out);
    Value::Object(ordered)
}

/// A listed object as a member of the set.
pub fn live_member(obj: &Value) -> Option<LiveMember> {
    let api_version = obj["apiVersion"].as_str()?.to_string();
    let kind = obj["kind"].as_str()?;
    let meta = &obj["metadata"];
    let strings = |v: &Value| {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    Some(LiveMember {
        key: ObjectKey {
            group_kind: GroupKind::from_api_version(&api_version, kind),
            name: meta["name"].as_str()?.to_string(),
        },
        api_version,
        uid: meta["uid"].as_str().map(str::to_string),
        labels: strings(&meta["labels"]),
        annotations: strings(&meta["annotations"]),
    })
}

/// Name of a listed object.
pub fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page(names: &[&str]) -> Vec<Value> {
        names
            .iter()
            .map(|n| json!({"metadata": {"name": n}}))
            .collect()
    }

    fn names(page: &[Value]) -> Vec<&str> {
        page.iter().map(name_of).collect()
    }

    #[test]
    fn a_restarted_listing_returns_only_objects_not_returned_before() {
        let mut progress = ListProgress::default();
        assert_eq!(names(&progress.unseen(page(&["a", "b"]))), ["a", "b"]);
        assert_eq!(progress.restart(), Some(1));
        // From the start again: "a" and "b" were judged already, "a2" was created meanwhile.
        assert_eq!(names(&progress.unseen(page(&["a", "a2", "b"]))), ["a2"]);
        assert_eq!(names(&progress.unseen(page(&["c"]))), ["c"]);
    }

    #[test]
    fn restarts_are_bounded_only_while_they_get_no_further() {
        let mut progress = ListProgress::default();
        progress.unseen(page(&["a", "b"]));
        for n in 1..=LIST_RESTARTS {
            assert_eq!(progress.restart(), Some(n));
            assert!(progress.unseen(page(&["a", "b"])).is_empty());
        }
        assert_eq!(
            progress.restart(),
            None,
            "a listing that never gets further"
        );

        let mut progress = ListProgress::default();
        for i in 0..3 * LIST_RESTARTS {
            assert!(
                progress.restart().is_some(),
                "restart {i} made progress before it"
            );
            assert_eq!(progress.unseen(page(&[&format!("o{i}")])).len(), 1);
        }
    }
}
