//! `uninstall --delete-managed` while the agent still runs with self-heal on: nothing it
//! managed comes back. The agent runs as a local process with the ServiceAccount and Role the
//! install makes (the harness binds it with the same RoleBinding name), as an agent whose pod
//! has not ended yet would.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;
use renderer::protocol::{APPLYSET_PART_OF_LABEL, PARENT_NAME};

use crate::agent_harness::AgentEnv;
use crate::plugin_harness::plugin;

/// Enough members that deleting them one by one takes longer than a self-heal repair.
const MEMBERS: usize = 120;

#[tokio::test]
async fn uninstall_delete_managed_with_a_running_agent_leaves_nothing_behind() -> Result<()> {
    let mut env = AgentEnv::new("uninst-race").await?;
    let mut kustomization = String::from("resources:\n");
    let mut files = Vec::new();
    for i in 0..MEMBERS {
        kustomization.push_str(&format!("- cm-{i}.yaml\n"));
        files.push((
            format!("app/cm-{i}.yaml"),
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  i: \"{i}\"\n"
            ),
        ));
    }
    files.push(("app/kustomization.yaml".into(), kustomization));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let commit = env.repo.commit_files(&refs, "many members")?;
    env.start(&["--path=app", "--self-heal", "--interval=2s"])?;
    env.wait_synced(&commit).await?;

    let install = plugin(
        &env,
        &[
            "install",
            "--repo=https://git.example.com/catalog.git",
            "--yes",
        ],
    )?;
    assert_eq!(install.code, 0, "{install}");

    let out = plugin(&env, &["uninstall", "--delete-managed", "--yes"])?;
    assert_eq!(out.code, 0, "{out}\nagent log:\n{}", env.logs());
    // The agent keeps running: give its watches and two resyncs the time to put things back.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let cms: Api<ConfigMap> = Api::namespaced(env.admin().await?, env.ns.name());
    let back: Vec<String> = cms
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|c| {
            c.metadata.name.as_deref() == Some(PARENT_NAME)
                || c.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key(APPLYSET_PART_OF_LABEL))
        })
        .filter_map(|c| c.metadata.name)
        .collect();
    assert!(
        back.is_empty(),
        "{} objects came back: {back:?}\nagent log:\n{}",
        back.len(),
        env.logs()
    );
    let first = out.stderr.find("deleted RoleBinding/gitops-agent");
    let member = out.stderr.find("(managed)");
    assert!(
        first.is_some() && member.is_some() && first < member,
        "the RoleBinding is revoked before any member goes: {out}"
    );

    Ok(())
}
