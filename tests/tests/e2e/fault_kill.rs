//! Issue #14, the suite's crash scenario: `gitops-agent` SIGKILLed at random points (seeded,
//! printed; `GITOPS_FAULT_SEED` replays a run, `GITOPS_FAULT_KILLS` sets how many) of syncs
//! of 1000 ConfigMaps, its cache directory kept as the pod's volume keeps it, and a new commit
//! before every restart so each run has fetching, applying, pruning and a status write to be
//! killed in. After the last kill it runs to the end: it must converge on the last commit with
//! every declared object present and right (nothing lost), every undeclared member pruned, and
//! every object it does not own untouched (same UID: nothing foreign pruned), including one
//! that belongs to another ApplySet.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use renderer::protocol::{APPLYSET_PART_OF_LABEL, PARENT_NAME};

use crate::agent_harness::AgentEnv;

const OBJECTS: usize = 1000;
/// Each step drops, adds and changes this many.
const CHURN: usize = 200;
const FOREIGN: usize = 20;

/// The declared set of step `step`: ConfigMaps by name with their `data.rev`. Even steps
/// declare 0..800 and 1000..1200, odd steps 0..1000; the first CHURN change every step.
fn declared(step: usize) -> BTreeMap<String, String> {
    let names: Vec<usize> = if step.is_multiple_of(2) {
        (0..OBJECTS - CHURN)
            .chain(OBJECTS..OBJECTS + CHURN)
            .collect()
    } else {
        (0..OBJECTS).collect()
    };
    names
        .into_iter()
        .map(|i| {
            let rev = if i < CHURN { step } else { 0 };
            (format!("cm-{i:04}"), rev.to_string())
        })
        .collect()
}

fn commit(env: &AgentEnv, step: usize) -> Result<String> {
    let objects = declared(step);
    let mut files: Vec<(String, String)> = Vec::new();
    let mut docs: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (n, (name, rev)) in objects.iter().enumerate() {
        docs.entry(n / 100).or_default().push(format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  rev: \"{rev}\"\n"
        ));
    }
    // Files that no longer exist in a step are emptied rather than removed: simpler, and an
    // empty resource file is valid.
    for file in 0..(OBJECTS / 100 + 1) {
        let body = docs.get(&file).map(|d| d.join("---\n")).unwrap_or_default();
        files.push((format!("app/part-{file:02}.yaml"), body));
    }
    let kustomization = format!(
        "resources:\n{}",
        (0..(OBJECTS / 100 + 1))
            .map(|f| format!("- part-{f:02}.yaml\n"))
            .collect::<String>()
    );
    files.push(("app/kustomization.yaml".into(), kustomization));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    env.repo.commit_files(&refs, &format!("step {step}"))
}

/// name -> (uid, data.rev, part-of label) of every ConfigMap but the parent.
async fn live(env: &AgentEnv) -> Result<BTreeMap<String, (String, String, String)>> {
    let cms: Api<ConfigMap> = Api::namespaced(env.admin().await?, env.ns.name());
    Ok(cms
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|cm| cm.name_any() != PARENT_NAME)
        .map(|cm| {
            let rev = cm
                .data
                .as_ref()
                .and_then(|d| d.get("rev").cloned())
                .unwrap_or_default();
            let part_of = cm
                .labels()
                .get(APPLYSET_PART_OF_LABEL)
                .cloned()
                .unwrap_or_default();
            (cm.name_any(), (cm.uid().unwrap_or_default(), rev, part_of))
        })
        .collect())
}

/// Objects the agent does not own: plain ConfigMaps, one named like a member of another
/// step, and one belonging to another ApplySet. Returns name -> uid.
async fn create_foreign(env: &AgentEnv) -> Result<BTreeMap<String, String>> {
    let cms: Api<ConfigMap> = Api::namespaced(env.admin().await?, env.ns.name());
    let mut out = BTreeMap::new();
    for i in 0..FOREIGN {
        let name = format!("foreign-{i:02}");
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.clone());
        if i == 0 {
            cm.metadata.labels = Some(
                [(
                    APPLYSET_PART_OF_LABEL.to_string(),
                    "applyset-someone-else-v1".to_string(),
                )]
                .into(),
            );
        }
        let created = cms.create(&PostParams::default(), &cm).await?;
        out.insert(name, created.uid().unwrap_or_default());
    }
    Ok(out)
}

/// Where a run is killed.
#[derive(Clone, Copy)]
enum Mode {
    Time,
    Writes(usize),
    Prunes(usize),
}

#[tokio::test]
async fn sigkill_at_random_points_of_a_1000_object_sync_loses_nothing() -> Result<()> {
    let seed: u64 = std::env::var("GITOPS_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().r#gen());
    let kills: usize = std::env::var("GITOPS_FAULT_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    eprintln!("fault_kill: GITOPS_FAULT_SEED={seed} GITOPS_FAULT_KILLS={kills}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let mut env = AgentEnv::new("fault-kill").await?;
    let foreign = create_foreign(&env).await?;
    let args = ["--path=app", "--interval=1s", "--prune-limit=50%"];

    // Steps 1 and 2 uninterrupted: how long a restart with a new commit takes here (start,
    // fetch, render, dry-run of all, 400 writes, 200 prunes, status) sets the kill window.
    let mut window = Duration::ZERO;
    let mut last = String::new();
    for step in 1..=2 {
        last = commit(&env, step)?;
        let started = Instant::now();
        env.start(&args)?;
        env.wait_synced(&last).await?;
        window = started.elapsed();
        eprintln!("fault_kill: step {step} uninterrupted: synced in {window:?}");
        env.kill();
    }

    let mut phases: BTreeMap<&str, usize> = BTreeMap::new();
    for step in 3..kills + 3 {
        last = commit(&env, step)?;
        let before = live(&env).await?;
        // A third of the kills at a random time of the run, a third after a random number of
        // the run's creates and changes, a third after a random number of its prunes (as the
        // API server's watch reports them): the short apply and prune phases are hit as often
        // as the long start-up.
        let delay = window.mul_f64(rng.gen_range(0.0..1.1));
        let target = declared(step);
        let applies_needed = target
            .iter()
            .filter(|(k, rev)| before.get(*k).is_none_or(|v| v.1 != **rev))
            .count();
        let prunes_needed = before
            .keys()
            .filter(|k| !target.contains_key(*k) && !k.starts_with("foreign-"))
            .count();
        let mode = match step % 3 {
            0 => Mode::Time,
            1 => Mode::Writes(rng.gen_range(1..=applies_needed.max(1))),
            _ if prunes_needed > 0 => Mode::Prunes(rng.gen_range(1..=prunes_needed)),
            _ => Mode::Writes(rng.gen_range(1..=applies_needed.max(1))),
        };
        let cms: Api<ConfigMap> = Api::namespaced(env.admin().await?, env.ns.name());
        let rv = cms
            .list_metadata(&ListParams::default().limit(1))
            .await?
            .metadata
            .resource_version
            .unwrap_or_default();
        let mut events = cms.watch(&WatchParams::default(), &rv).await?.boxed();
        env.start(&args)?;
        let point = match mode {
            Mode::Time => {
                tokio::time::sleep(delay).await;
                env.kill();
                format!("at {delay:?}")
            }
            Mode::Writes(n) | Mode::Prunes(n) => {
                let prunes = matches!(mode, Mode::Prunes(_));
                let seen = tokio::time::timeout(window.mul_f64(3.0), async {
                    let mut seen = 0;
                    while let Some(event) = events.try_next().await? {
                        let (name, deleted) = match &event {
                            WatchEvent::Added(o) | WatchEvent::Modified(o) => (o.name_any(), false),
                            WatchEvent::Deleted(o) => (o.name_any(), true),
                            _ => continue,
                        };
                        if name != PARENT_NAME && deleted == prunes {
                            seen += 1;
                            if seen >= n {
                                break;
                            }
                        }
                    }
                    Ok::<_, anyhow::Error>(seen)
                })
                .await;
                env.kill();
                let what = if prunes {
                    "prunes"
                } else {
                    "creates and changes"
                };
                format!("after {} of {n} {what}", seen.map_or(Ok(0), |r| r)?)
            }
        };
        drop(events);
        let after = live(&env).await?;
        let created = after
            .iter()
            .filter(|(k, v)| before.get(*k).is_none_or(|b| b.1 != v.1))
            .count();
        let deleted = before.keys().filter(|k| !after.contains_key(*k)).count();
        let done = target
            .iter()
            .all(|(k, rev)| after.get(k).is_some_and(|v| v.1 == *rev))
            && after
                .keys()
                .all(|k| target.contains_key(k) || k.starts_with("foreign-"));
        let phase = match (created, deleted, done) {
            (_, _, true) => "after the sync (status write, watches)",
            (0, 0, false) => "before any write (start, fetch, render, dry-run)",
            (_, 0, false) => "while applying",
            (_, _, false) => "while pruning",
        };
        *phases.entry(phase).or_default() += 1;
        eprintln!(
            "fault_kill: kill {} {point}: {phase} ({created} written, {deleted} pruned)",
            step - 2
        );
        // Never lost, never foreign: checked after every kill, not only at the end.
        for (name, uid) in &foreign {
            assert_eq!(
                after.get(name).map(|v| &v.0),
                Some(uid),
                "foreign {name} was deleted or replaced after kill {} (seed {seed})",
                step - 2
            );
        }
    }

    // The last start runs to the end.
    let converge = Instant::now();
    env.start(&args)?;
    env.wait_synced(&last)
        .await
        .with_context(|| format!("not converged after {kills} kills (seed {seed})"))?;
    eprintln!(
        "fault_kill: converged in {:?}; kill phases {phases:?}",
        converge.elapsed()
    );
    let after = live(&env).await?;
    let target = declared(kills + 2);
    let lost: Vec<&String> = target
        .iter()
        .filter(|(k, rev)| after.get(*k).is_none_or(|v| v.1 != **rev))
        .map(|(k, _)| k)
        .collect();
    assert!(
        lost.is_empty(),
        "{} declared objects missing or stale (seed {seed}): {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    let leftover: Vec<&String> = after
        .keys()
        .filter(|k| !target.contains_key(*k) && !foreign.contains_key(*k))
        .collect();
    assert!(
        leftover.is_empty(),
        "undeclared members not pruned (seed {seed}): {leftover:?}"
    );
    let wrongly_pruned: Vec<&String> = foreign
        .iter()
        .filter(|(name, uid)| after.get(*name).map(|v| &v.0) != Some(uid))
        .map(|(name, _)| name)
        .collect();
    assert!(
        wrongly_pruned.is_empty(),
        "foreign objects pruned (seed {seed}): {wrongly_pruned:?}"
    );
    assert!(
        phases.len() >= 3,
        "the kills landed in too few phases to mean much: {phases:?} (seed {seed})"
    );
    eprintln!("fault_kill: {kills} kills survived, objects lost 0, wrongly pruned 0 (seed {seed})");
    Ok(())
}
