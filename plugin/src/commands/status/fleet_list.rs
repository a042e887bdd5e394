//! Finding every agent the user can see: per cluster ONE list of ConfigMaps across all
//! namespaces, narrowed on the server by the parent's labels and name; clusters at once.
//!
//! A user who may not list ConfigMaps cluster-wide still gets what they can read: the
//! namespaces are listed and each one's parent is listed on its own (a few at a time), and the
//! namespaces that refuse are named in the report rather than failing it.

use std::sync::Arc;

use anyhow::{Context, bail};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::ListParams;
use kube::config::Kubeconfig;
use renderer::protocol::{APPLYSET_ID_LABEL, PARENT_NAME, RESULT_LABEL};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::fleet::{self, FleetEntry, FleetReport, Unreadable};
use crate::cluster::KubeArgs;
use crate::cluster::kube_context::{KubeContext, KubeEnv, kubeconfig_paths, load_kubeconfig};
use crate::constants::FLEET_NAMESPACE_CONCURRENCY;

/// One cluster as one user: a kubeconfig context.
#[derive(Clone)]
pub struct Target {
    pub context: String,
    pub client: kube::Client,
    /// The context's namespace (or `-n`): read alone when nothing else may be listed.
    pub namespace: String,
}

/// Which contexts to read: every one (`all`), those named in `--context a,b,c`, else the
/// current one. Unknown names are an error before anything is read.
pub fn context_names(kube: &KubeArgs, all: bool) -> anyhow::Result<Vec<String>> {
    let env = KubeEnv::from_process();
    let files = kubeconfig_paths(kube.kubeconfig.as_deref(), &env);
    let config: Kubeconfig = load_kubeconfig(&files, kube.kubeconfig.is_some())?;
    let names: Vec<String> = if all {
        config.contexts.iter().map(|c| c.name.clone()).collect()
    } else if let Some(list) = &kube.context {
        let mut names: Vec<String> = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        names
    } else {
        config.current_context.clone().into_iter().collect()
    };
    if names.is_empty() {
        bail!("no context to read: pass --context NAME[,NAME...] or --all-contexts");
    }
    Ok(names)
}

/// A client per context, each with kubectl's rules for that context.
pub async fn targets(kube: &KubeArgs, names: &[String]) -> anyhow::Result<Vec<Target>> {
    let env = KubeEnv::from_process();
    let mut targets = Vec::new();
    for name in names {
        let args = KubeArgs {
            context: Some(name.clone()),
            ..kube.clone()
        };
        let context = KubeContext::resolve(&args, &env)?;
        let client = context.client().await?;
        targets.push(Target {
            context: name.clone(),
            client,
            namespace: context.namespace,
        });
    }
    Ok(targets)
}

/// Reads every target concurrently. A cluster that cannot be read at all is reported in the
/// footer; only when no cluster could be read is it an error.
pub async fn collect(targets: &[Target], now: Timestamp) -> anyhow::Result<FleetReport> {
    let mut tasks = JoinSet::new();
    for (i, target) in targets.iter().cloned().enumerate() {
        tasks.spawn(async move { (i, read_cluster(&target).await) });
    }
    let mut done = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        done.push(joined.context("a cluster reader panicked")?);
    }
    done.sort_by_key(|(i, _)| *i);
    let mut entries = Vec::new();
    let mut unreadable = Vec::new();
    let mut failures = Vec::new();
    for (i, outcome) in done {
        let context = &targets[i].context;
        match outcome {
            Ok(listing) => {
                entries.extend(entries_of(context, &listing.parents, now));
                unreadable.extend(listing.unreadable.map(|(namespaces, reason)| Unreadable {
                    context: context.clone(),
                    namespaces,
                    reason,
                }));
            }
            Err(e) => {
                failures.push(format!("context {context}: {e:#}"));
                unreadable.push(Unreadable {
                    context: context.clone(),
                    namespaces: Vec::new(),
                    reason: format!("{e:#}"),
                });
            }
        }
    }
    if failures.len() == targets.len() {
        bail!("{}", failures.join("\n"));
    }
    Ok(FleetReport::new(entries, unreadable))
}

struct Listing {
    parents: Vec<ConfigMap>,
    /// Namespaces not read, and why.
    unreadable: Option<(Vec<String>, String)>,
}

/// Only parents: the agent labels its parent with the ApplySet ID and its result, and always
/// names it [`PARENT_NAME`].
fn parents() -> ListParams {
    ListParams::default()
        .labels(&format!("{APPLYSET_ID_LABEL},{RESULT_LABEL}"))
        .fields(&format!("metadata.name={PARENT_NAME}"))
}

fn forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403)
}

async fn read_cluster(t: &Target) -> anyhow::Result<Listing> {
    let all: Api<ConfigMap> = Api::all(t.client.clone());
    match all.list(&parents()).await {
        Ok(list) => Ok(Listing {
            parents: list.items,
            unreadable: None,
        }),
        Err(e) if forbidden(&e) => read_each_namespace(t).await,
        Err(e) => Err(e).context("listing ConfigMaps in all namespaces"),
    }
}

/// The fallback for a user without cluster-wide read: namespace by namespace.
async fn read_each_namespace(t: &Target) -> anyhow::Result<Listing> {
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    let (names, mut note) = match namespaces.list_metadata(&ListParams::default()).await {
        Ok(list) => (
            list.items
                .into_iter()
                .filter_map(|n| n.metadata.name)
                .collect::<Vec<_>>(),
            None,
        ),
        Err(e) if forbidden(&e) => (
            vec![t.namespace.clone()],
            Some(format!(
                "may list neither ConfigMaps in all namespaces nor Namespaces: \
                 only namespace {} was read",
                t.namespace
            )),
        ),
        Err(e) => return Err(e).context("listing Namespaces"),
    };
    let limit = Arc::new(Semaphore::new(FLEET_NAMESPACE_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for name in names {
        let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), &name);
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let listed = api.list(&parents()).await;
            (name, listed)
        });
    }
    let mut parents = Vec::new();
    let mut refused = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (name, listed) = joined.context("a namespace reader panicked")?;
        match listed {
            Ok(list) => parents.extend(list.items),
            Err(e) if forbidden(&e) => refused.push(name),
            Err(e) => return Err(e).with_context(|| format!("listing ConfigMaps in {name}")),
        }
    }
    if !refused.is_empty() {
        note = Some(match note {
            Some(n) => n,
            None => "may not list ConfigMaps there".to_string(),
        });
    }
    Ok(Listing {
        parents,
        unreadable: note.map(|reason| (refused, reason)),
    })
}

/// The rows of one cluster's parents (other tools' ApplySets left out).
fn entries_of(context: &str, parents: &[ConfigMap], now: Timestamp) -> Vec<FleetEntry> {
    parents
        .iter()
        .filter(|cm| fleet::is_our_parent(cm))
        .map(|cm| fleet::entry(context, cm, now))
        .collect()
}
