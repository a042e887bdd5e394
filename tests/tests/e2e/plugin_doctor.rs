//! `kubectl gitops doctor` pinpoints (a) a commit that does not render, (b) a verb the agent's
//! Role lacks, and (c) a revision that does not contain the expected commit.

use std::time::Duration;

use anyhow::Result;
use renderer::protocol::SyncResult;
use serde_json::json;

use crate::agent_harness::{AgentEnv, admin_apply, load_yaml};
use crate::agent_sync::catalog_env;
use crate::plugin_harness::{plugin, synced_catalog};

#[tokio::test]
async fn plugin_doctor_pinpoints_a_render_error() -> Result<()> {
    let (mut env, good) = catalog_env("plugin-doctor").await?;
    env.start(&["--path=overlays/prod"])?;
    env.wait_synced(&good).await?;
    let out = plugin(&env, &["doctor"])?;
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("Most likely cause: no problem found"),
        "{out}"
    );

    let broken = env.repo.commit_files(
        &[("overlays/prod/deployment-prod.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: catalog-api\nspec:\n  replicas: [3\n")],
        "broken yaml",
    )?;
    env.wait_status(Duration::from_secs(30), |s| {
        s.last_attempted_revision.as_deref() == Some(broken.as_str())
            && s.result == SyncResult::Failed
    })
    .await?;
    env.kill();

    let out = plugin(&env, &["doctor"])?;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("2. render    [problem]"), "{out}");
    assert!(
        out.stdout.contains("overlays/prod/deployment-prod.yaml:"),
        "{out}"
    );
    assert!(out.stdout.contains("Most likely cause: render:"), "{out}");
    assert!(
        out.stdout.contains(&format!(
            "Next: kubectl gitops render overlays/prod --revision {}",
            &broken[..12]
        )),
        "{out}"
    );

    let json = plugin(&env, &["doctor", "-o", "json"])?.json()?;
    assert_eq!(json["steps"][0]["verdict"], "ok", "{json:#}");
    assert_eq!(json["steps"][1]["name"], "render");
    assert_eq!(json["steps"][1]["verdict"], "problem");
    Ok(())
}

#[tokio::test]
async fn plugin_doctor_names_the_missing_rbac_verb_and_the_rule_to_add() -> Result<()> {
    let mut env = AgentEnv::new("plugin-doctor-rbac").await?;
    env.copy_into_repo("examples/catalog-api", "")?;
    let commit = env.repo.commit("catalog-api")?;
    // The shipped Role, with services moved to a rule of their own that lacks `patch`.
    let mut role = load_yaml("manifests/base/role.yaml")?.remove(0);
    let rules = role["rules"].as_array_mut().unwrap();
    let core = &mut rules[0]["resources"];
    let without: Vec<_> = core
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| *r != "services")
        .cloned()
        .collect();
    *core = json!(without);
    rules.push(json!({"apiGroups": [""], "resources": ["services"],
        "verbs": ["get", "list", "watch", "create", "delete"]}));
    admin_apply(&env.admin().await?, env.ns.name(), &[role]).await?;

    env.start(&["--path=overlays/prod"])?;
    let status = env
        .wait_status(Duration::from_secs(60), |s| {
            s.last_attempted_revision.as_deref() == Some(commit.as_str())
                && s.result == SyncResult::Failed
        })
        .await?;
    env.kill();
    assert!(status.message.contains("forbidden"), "{status:#?}");

    let ns = env.ns.name();
    let out = plugin(&env, &["doctor"])?;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("3. agent     [problem]"), "{out}");
    assert!(
        out.stdout.contains(
            "the agent may not patch services (API group core); Role gitops-agent lacks the verb"
        ),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!(
            "check: kubectl auth can-i patch services -n {ns} --as system:serviceaccount:{ns}:gitops-agent"
        )),
        "{out}"
    );
    assert!(out.stdout.contains("Most likely cause: agent:"), "{out}");
    assert!(
        out.stdout.contains(&format!(
            r#"Next: kubectl patch role gitops-agent -n {ns} --type=json -p '[{{"op":"add","path":"/rules/-","value":{{"apiGroups":[""],"resources":["services"],"verbs":["patch"]}}}}]'"#
        )),
        "{out}"
    );
    Ok(())
}

#[tokio::test]
async fn plugin_doctor_says_the_tracked_revision_lacks_the_expected_commit() -> Result<()> {
    let (env, tracked) = synced_catalog("plugin-doctor-rev").await?;

    // A commit on another branch: the agent, following main, will never apply it.
    env.repo.git(&["checkout", "--quiet", "-b", "feature"])?;
    let feature = env
        .repo
        .commit_files(&[("notes.txt", "feature work\n")], "feature work")?;
    env.repo.git(&["checkout", "--quiet", "main"])?;
    let out = plugin(&env, &["doctor", "--expect-commit", &feature])?;
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout.contains(&format!(
            "1. revision  [problem] the agent tracks main at {}, which does not contain {}",
            &tracked[..12],
            &feature[..12]
        )),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!(
            "{} is not on main; it is on feature",
            &feature[..12]
        )),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!(
            "Next: git checkout main && git merge {}",
            &feature[..12]
        )),
        "{out}"
    );

    // A newer commit on main the (stopped) agent has not fetched: the local HEAD is expected.
    let newer = env
        .repo
        .commit_files(&[("notes.txt", "on main\n")], "later on main")?;
    let out = plugin(&env, &["doctor"])?;
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout.contains(&format!(
            "{} is 1 commit(s) ahead of {}: the agent has not fetched it yet",
            &newer[..12],
            &tracked[..12]
        )),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!(
            "Next: git push origin HEAD:main (if not pushed yet), then kubectl gitops status -n {} --watch",
            env.ns.name()
        )),
        "{out}"
    );
    let json = plugin(&env, &["doctor", "-o", "json"])?.json()?;
    assert_eq!(json["steps"][0]["verdict"], "problem", "{json:#}");
    assert!(
        json["next"].as_str().unwrap_or_default().contains("status"),
        "{json:#}"
    );
    Ok(())
}
