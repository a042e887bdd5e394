//! Rules over the objects of one render: what both `lint` and the agent's guardrails judge.

pub mod secrets;
pub mod workloads;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use renderer::{RenderedObject, Source};
use serde_json::Value;

use crate::finding::{Finding, describe};
use crate::rules::CLUSTER_SCOPED;
use crate::schema::{self, Crds};

/// What object rules need besides the objects.
pub struct ObjectContext<'a> {
    pub source: &'a dyn Source,
    pub crds: &'a Crds,
    /// The team requires images pinned by digest (`mutable-images: {requireDigests: true}`).
    pub require_digests: bool,
    /// Kustomization file -> whether it sets `namespace:`.
    namespaced: HashMap<String, bool>,
    /// Only these rules are wanted (the agent's `--refuse`); `None` for all. Schema validation,
    /// the one costly rule, is skipped unless wanted.
    pub only: Option<Vec<&'static str>>,
}

impl<'a> ObjectContext<'a> {
    pub fn new(source: &'a dyn Source, crds: &'a Crds, require_digests: bool) -> Self {
        ObjectContext {
            source,
            crds,
            require_digests,
            namespaced: HashMap::new(),
            only: None,
        }
    }

    fn sets_namespace(&mut self, kustomization: &str) -> bool {
        if let Some(&known) = self.namespaced.get(kustomization) {
            return known;
        }
        let sets = self
            .source
            .read(kustomization)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| renderer::yaml::parse_documents(&text).ok())
            .and_then(|docs| docs.into_iter().next())
            .is_some_and(|d| d.value["namespace"].as_str().is_some_and(|n| !n.is_empty()));
        self.namespaced.insert(kustomization.to_string(), sets);
        sets
    }
}

/// Every object rule over one render.
pub fn check_objects(ctx: &mut ObjectContext<'_>, objects: &[RenderedObject]) -> Vec<Finding> {
    let mut out = Vec::new();
    let validate = ctx
        .only
        .as_ref()
        .is_none_or(|only| only.iter().any(|r| r.starts_with("schema-")));
    for o in objects {
        if validate {
            schema::check(o, ctx.crds, &mut out);
        }
        secrets::check_plaintext_secret(o, &mut out);
        secrets::check_credentials(o, &mut out);
        workloads::check(o, ctx.require_digests, &mut out);
        check_cluster_scoped(ctx, o, &mut out);
    }
    workloads::check_hpa_replicas(objects, &mut out);
    out
}

fn is_cluster_scoped(ctx: &ObjectContext<'_>, v: &Value) -> bool {
    let api = v["apiVersion"].as_str().unwrap_or_default();
    let kind = v["kind"].as_str().unwrap_or_default();
    renderer::schema::is_cluster_scoped(api, kind) || ctx.crds.is_cluster_scoped(api, kind)
}

/// A cluster-scoped object that passed through a kustomization setting `namespace:`.
fn check_cluster_scoped(ctx: &mut ObjectContext<'_>, o: &RenderedObject, out: &mut Vec<Finding>) {
    if !is_cluster_scoped(ctx, &o.value) {
        return;
    }
    let Some(origin) = crate::finding::locate(o, "") else {
        return;
    };
    let chain = origin.chain.clone();
    if let Some(k) = chain.iter().find(|k| ctx.sets_namespace(k)) {
        out.push(Finding::at_field(
            CLUSTER_SCOPED,
            o,
            "kind",
            format!(
                "{} is cluster-scoped but is part of the namespaced kustomization {k}",
                describe(&o.value)
            ),
        ));
    }
}
