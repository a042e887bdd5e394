//! The preview is what the agent does (issue #13): over seeded random edits of Git (fields
//! added, removed and changed, containers and env vars added and removed, whole objects added
//! and pruned), the changes `kubectl gitops diff` predicts equal the changes the agent then
//! makes, compared live before and after. Edits are batched per commit, in one namespace, so
//! 200 edits take some twenty syncs.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};
use kube::api::ListParams;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use renderer::drift::predict::{Change, changes};
use renderer::protocol::APPLYSET_PART_OF_LABEL;
use serde_json::{Value, json};

use crate::agent_sync::catalog_env;
use crate::plugin_harness::plugin;

const SEED: u64 = 13;
const ROUNDS: usize = 20;
const EDITS_PER_ROUND: usize = 10;
const EXTRA: &str = "overlays/prod/extra.yaml";

/// The objects the edits work on, next to the catalog example's.
struct World {
    objects: Vec<Value>,
    next_id: usize,
}

fn config_map(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
           "data": {"a": "1", "b": "2", "c": "3"}})
}

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "main", "image": "example.com/app:1",
                                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}}}})
}

fn service(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
}

impl World {
    fn new() -> Self {
        let mut objects = Vec::new();
        for i in 0..6 {
            objects.push(config_map(&format!("cm-{i}")));
        }
        for i in 0..3 {
            objects.push(deployment(&format!("app-{i}")));
            objects.push(service(&format!("app-{i}")));
        }
        Self {
            objects,
            next_id: 100,
        }
    }

    fn yaml(&self) -> String {
        self.objects
            .iter()
            .map(|o| serde_json::to_string_pretty(o).expect("JSON"))
            .collect::<Vec<_>>()
            .join("\n---\n")
    }

    fn pick(&mut self, rng: &mut ChaCha8Rng, kind: &str) -> Option<&mut Value> {
        let of_kind: Vec<usize> = (0..self.objects.len())
            .filter(|i| self.objects[*i]["kind"] == kind)
            .collect();
        if of_kind.is_empty() {
            return None;
        }
        let i = of_kind[rng.gen_range(0..of_kind.len())];
        Some(&mut self.objects[i])
    }

    /// One random edit; returns what it did, for failure messages.
    fn edit(&mut self, rng: &mut ChaCha8Rng) -> String {
        let n = self.next_id;
        self.next_id += 1;
        match rng.gen_range(0..12) {
            0 | 1 => {
                let Some(cm) = self.pick(rng, "ConfigMap") else {
                    return self.add_object(n);
                };
                let data = cm["data"].as_object_mut().unwrap();
                let keys: Vec<String> = data.keys().cloned().collect();
                match rng.gen_range(0..3) {
                    0 => {
                        data.insert(format!("k{n}"), json!(format!("v{n}")));
                        "ConfigMap: add a key".into()
                    }
                    1 if keys.len() > 1 => {
                        data.remove(&keys[rng.gen_range(0..keys.len())]);
                        "ConfigMap: remove a key".into()
                    }
                    _ => {
                        let k = &keys[rng.gen_range(0..keys.len())];
                        data.insert(k.clone(), json!(format!("changed-{n}")));
                        "ConfigMap: change a value".into()
                    }
                }
            }
            2..=7 => {
                let Some(d) = self.pick(rng, "Deployment") else {
                    return self.add_object(n);
                };
                let spec = &mut d["spec"]["template"]["spec"];
                let containers = spec["containers"].as_array_mut().unwrap();
                match rng.gen_range(0..7) {
                    0 => {
                        containers[0]["image"] = json!(format!("example.com/app:{n}"));
                        "Deployment: change the image".into()
                    }
                    1 => {
                        let env = containers[0]["env"].as_array_mut().unwrap();
                        env.push(json!({"name": format!("E{n}"), "value": n.to_string()}));
                        "Deployment: add an env var".into()
                    }
                    2 if !containers[0]["env"].as_array().unwrap().is_empty() => {
                        let env = containers[0]["env"].as_array_mut().unwrap();
                        env.remove(rng.gen_range(0..env.len()));
                        "Deployment: remove an env var".into()
                    }
                    3 if containers.len() == 1 => {
                        containers.push(
                            json!({"name": "sidecar", "image": format!("example.com/side:{n}"),
                                               "args": ["--port", n.to_string()]}),
                        );
                        "Deployment: add a container".into()
                    }
                    4 if containers.len() == 2 => {
                        containers.pop();
                        "Deployment: remove a container".into()
                    }
                    5 => {
                        d["spec"]["replicas"] = json!(rng.gen_range(0..5));
                        "Deployment: change replicas".into()
                    }
                    _ => {
                        let meta = &mut d["spec"]["template"]["metadata"];
                        if meta.get("annotations").is_some() {
                            meta.as_object_mut().unwrap().remove("annotations");
                            "Deployment: remove template annotations".into()
                        } else {
                            meta["annotations"] = json!({"example.com/rev": n.to_string()});
                            "Deployment: add a template annotation".into()
                        }
                    }
                }
            }
            8 | 9 => {
                let Some(s) = self.pick(rng, "Service") else {
                    return self.add_object(n);
                };
                if rng.gen_bool(0.5) {
                    s["spec"]["ports"][0]["port"] = json!(rng.gen_range(80..90));
                    "Service: change the port".into()
                } else if s["metadata"].get("labels").is_some() {
                    s["metadata"].as_object_mut().unwrap().remove("labels");
                    "Service: remove labels".into()
                } else {
                    s["metadata"]["labels"] = json!({"tier": format!("t{n}")});
                    "Service: add a label".into()
                }
            }
            10 => self.add_object(n),
            _ => {
                if self.objects.len() <= 4 {
                    return self.add_object(n);
                }
                let i = rng.gen_range(0..self.objects.len());
                let gone = self.objects.remove(i);
                format!(
                    "remove {}/{}",
                    gone["kind"].as_str().unwrap(),
                    gone["metadata"]["name"].as_str().unwrap()
                )
            }
        }
    }

    fn add_object(&mut self, n: usize) -> String {
        let name = format!("new-{n}");
        let obj = if n.is_multiple_of(2) {
            config_map(&name)
        } else {
            deployment(&name)
        };
        let what = format!("add {}/{name}", obj["kind"].as_str().unwrap());
        self.objects.push(obj);
        what
    }
}

/// A change as compared: object, operation, place, and the value after (none for whole
/// objects, whose server-generated fields differ between a dry-run and a create).
type Key = (String, String, String, String);

fn key(object: &str, c: &Change) -> Key {
    let op = serde_json::to_value(c.op)
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let after = if c.pointer.is_empty() {
        String::new()
    } else {
        c.after.as_ref().map(Value::to_string).unwrap_or_default()
    };
    (object.to_string(), op, c.pointer.clone(), after)
}

/// Every ApplySet member of the kinds the test uses, by `Kind/name`.
async fn members(env: &crate::agent_harness::AgentEnv) -> Result<BTreeMap<String, Value>> {
    let client = env.admin().await?;
    let mut out = BTreeMap::new();
    for (api_version, kind) in [
        ("v1", "ConfigMap"),
        ("v1", "Service"),
        ("v1", "ServiceAccount"),
        ("apps/v1", "Deployment"),
    ] {
        let list = env
            .api(&client, api_version, kind)
            .list(&ListParams::default().labels(APPLYSET_PART_OF_LABEL))
            .await?;
        for o in list.items {
            let name = o.metadata.name.clone().unwrap_or_default();
            let mut v = serde_json::to_value(o)?;
            v["apiVersion"] = json!(api_version);
            v["kind"] = json!(kind);
            out.insert(format!("{kind}/{name}"), v);
        }
    }
    Ok(out)
}

fn applied(before: &BTreeMap<String, Value>, after: &BTreeMap<String, Value>) -> BTreeSet<Key> {
    // Written by the Deployment controller after the agent's apply, not by the agent.
    let controller_revision = "/metadata/annotations/deployment.kubernetes.io~1revision";
    let mut out = BTreeSet::new();
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for name in names {
        let found = match (before.get(name), after.get(name)) {
            (None, Some(a)) => changes(None, a),
            (Some(b), None) => vec![Change {
                pointer: String::new(),
                op: renderer::drift::predict::ChangeOp::Remove,
                before: Some(b.clone()),
                after: None,
            }],
            (Some(b), Some(a)) => changes(Some(b), a),
            (None, None) => unreachable!(),
        };
        out.extend(
            found
                .iter()
                .filter(|c| c.pointer != controller_revision)
                .map(|c| key(name, c)),
        );
    }
    out
}

fn predicted(report: &Value) -> Result<BTreeSet<Key>> {
    let mut out = BTreeSet::new();
    for o in report["objects"].as_array().unwrap() {
        let name = format!(
            "{}/{}",
            o["kind"].as_str().unwrap(),
            o["name"].as_str().unwrap()
        );
        if o["error"].is_string() {
            bail!("{name}: {}", o["error"]);
        }
        if o["action"] == "prune" {
            out.insert((name, "remove".into(), String::new(), String::new()));
            continue;
        }
        let listed: Vec<Change> = serde_json::from_value(o["changes"].clone()).unwrap_or_default();
        out.extend(listed.iter().map(|c| key(&name, c)));
    }
    Ok(out)
}

#[tokio::test]
async fn drift_property_predicted_changes_are_the_applied_changes() -> Result<()> {
    let (mut env, _) = catalog_env("drift-property").await?;
    let kustomization = "overlays/prod/kustomization.yaml";
    let text = std::fs::read_to_string(env.repo.path().join(kustomization))?;
    env.repo.write(
        kustomization,
        &text.replace("- ../../base\n", "- ../../base\n- extra.yaml\n"),
    )?;
    let mut world = World::new();
    env.repo.write(EXTRA, &world.yaml())?;
    let commit = env.repo.commit("extra objects")?;
    let agent_args = ["--path=overlays/prod", "--prune"];
    env.start(&agent_args)?;
    env.wait_synced(&commit).await?;
    env.kill();

    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let (mut edits, mut compared) = (0, 0);
    for round in 0..ROUNDS {
        let done: Vec<String> = (0..EDITS_PER_ROUND).map(|_| world.edit(&mut rng)).collect();
        edits += done.len();
        env.repo.write(EXTRA, &world.yaml())?;
        let commit = env.repo.commit(&format!("round {round}"))?;
        let before = members(&env).await?;
        let out = plugin(&env, &["diff", "overlays/prod", "-o", "json"])?;
        if out.code == 2 {
            bail!("diff failed in round {round}\n{out}");
        }
        let predicted = predicted(&out.json()?)?;
        env.start(&agent_args)?;
        env.wait_synced(&commit).await?;
        env.kill();
        let after = members(&env).await?;
        let applied = applied(&before, &after);
        if predicted != applied {
            let only_predicted: Vec<&Key> = predicted.difference(&applied).collect();
            let only_applied: Vec<&Key> = applied.difference(&predicted).collect();
            bail!(
                "seed {SEED}, round {round}, edits {done:?}:\n predicted only: {only_predicted:#?}\n applied only: {only_applied:#?}"
            );
        }
        compared += applied.len();
    }
    assert!(edits >= 200, "{edits} edits");
    // The edits did change things: the comparison was not of two empty sets.
    assert!(
        compared >= edits / 2,
        "{compared} changes over {edits} edits"
    );
    eprintln!("{edits} seeded edits in {ROUNDS} commits: {compared} changes predicted = applied");
    Ok(())
}
