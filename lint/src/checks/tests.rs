//! Every rule with a failing and a passing example, through the real renderer.

use crate::rules::*;
use crate::testutil::{DEPLOYMENT, Repo, findings_of, single};

fn rules_of(findings: &[crate::Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.rule).collect()
}

#[test]
fn plaintext_secret_fails_and_never_shows_its_value() {
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: hunter2-s3cr3t\n";
    let f = findings_of(PLAINTEXT_SECRETS, secret);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].file.as_str(), f[0].line), ("app/r.yaml", 6));
    assert!(!format!("{f:?}").contains("hunter2"), "{f:?}");
}

#[test]
fn sops_encrypted_secret_passes() {
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: ENC[AES256_GCM,data:abc,iv:def,tag:ghi,type:str]\nsops:\n  version: 3.9.0\n  mac: ENC[AES256_GCM,data:x]\n";
    assert_eq!(findings_of(PLAINTEXT_SECRETS, secret), vec![]);
}

#[test]
fn secret_generator_literals_fail_at_the_literal() {
    let repo = Repo::new(&[(
        "app/kustomization.yaml",
        "secretGenerator:\n- name: db\n  literals:\n  - password=hunter2-s3cr3t\n",
    )]);
    let f: Vec<_> = repo
        .lint()
        .into_iter()
        .filter(|f| f.rule == PLAINTEXT_SECRETS)
        .collect();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].file.as_str(), f[0].line),
        ("app/kustomization.yaml", 4)
    );
    assert!(!format!("{f:?}").contains("hunter2"));
}

#[test]
fn secret_generator_of_a_sops_file_passes() {
    let repo = Repo::new(&[
        (
            "app/kustomization.yaml",
            "secretGenerator:\n- name: db\n  envs:\n  - db.enc.env\n",
        ),
        (
            "app/db.enc.env",
            "password=ENC[AES256_GCM,data:abc,iv:def,tag:ghi,type:str]\nsops_version=3.9.0\nsops_mac=ENC[AES256_GCM,data:x]\n",
        ),
    ]);
    let f: Vec<_> = repo
        .lint()
        .into_iter()
        .filter(|f| f.rule == PLAINTEXT_SECRETS)
        .collect();
    assert_eq!(f, vec![]);
}

#[test]
fn credentials_in_configmaps_and_env() {
    let cm = |k: &str, v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  {k}: \"{v}\"\n")
    };
    for (k, v) in [
        ("aws", "AKIAIOSFODNN7EXAMPLE"),
        ("gh", "ghp_0123456789abcdefghijABCDEFGHIJ012345"),
        ("slack", "xoxb-123456789012-abcdefghijkl"),
        ("key", "-----BEGIN RSA PRIVATE KEY-----"),
        (
            "jwt",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ),
        ("DB_PASSWORD", "Xk9#mQ2!vL7p"),
        ("blob", "q8Zr2Lk0PmX7vN4sT1wY9bC3dF6gH5jK0aE"),
    ] {
        let f = findings_of(CREDENTIALS, &cm(k, v));
        assert_eq!(f.len(), 1, "{k}: {f:?}");
        assert_eq!(f[0].line, 6, "{k}");
        assert!(!f[0].message.contains(v), "{k}: the value is printed");
    }
    for (k, v) in [
        ("LOG_LEVEL", "debug"),
        ("DB_PASSWORD_FILE", "/run/secrets/db"),
        (
            "image",
            "registry.example.com/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
        ("url", "https://example.com/some/long/path/with/segments"),
        ("commit", "0123456789abcdef0123456789abcdef01234567"),
        ("TOKEN_AUDIENCE", "api.example.com"),
        ("AUTH_MODE", "oauth2-proxy"),
        ("secretName", "tls-certificate"),
    ] {
        assert_eq!(findings_of(CREDENTIALS, &cm(k, v)), vec![], "{k}");
    }
    let env = DEPLOYMENT.replace(
        "        resources:",
        "        env:\n        - name: API_TOKEN\n          value: ghp_0123456789abcdefghijABCDEFGHIJ012345\n        resources:",
    );
    let f = findings_of(CREDENTIALS, &env);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].line, 19);
}

#[test]
fn mutable_images() {
    for image in ["web:latest", "web", "registry.example.com:5000/web"] {
        let d = DEPLOYMENT.replace("registry.example.com/web:1.2.3", image);
        let f = findings_of(MUTABLE_IMAGES, &d);
        assert_eq!(f.len(), 1, "{image}: {f:?}");
        assert_eq!(f[0].line, 16);
    }
    assert_eq!(findings_of(MUTABLE_IMAGES, DEPLOYMENT), vec![]);
    // Where digests are required, a tag is not enough.
    let repo = Repo::new(&[
        ("app/kustomization.yaml", "resources:\n- r.yaml\n"),
        ("app/r.yaml", DEPLOYMENT),
        (
            ".kubectl-gitops/lint.yaml",
            "rules:\n  mutable-images:\n    requireDigests: true\n",
        ),
    ]);
    assert_eq!(rules_of(&repo.lint()), [MUTABLE_IMAGES]);
    let pinned = DEPLOYMENT.replace(
        ":1.2.3",
        "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    );
    assert_eq!(findings_of(MUTABLE_IMAGES, &pinned), vec![]);
}

#[test]
fn images_set_by_the_kustomization_point_at_it() {
    let repo = Repo::new(&[
        (
            "app/kustomization.yaml",
            "resources:\n- r.yaml\nimages:\n- name: registry.example.com/web\n  newTag: latest\n",
        ),
        ("app/r.yaml", DEPLOYMENT),
    ]);
    let f: Vec<_> = repo
        .lint()
        .into_iter()
        .filter(|f| f.rule == MUTABLE_IMAGES)
        .collect();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].file, "app/kustomization.yaml");
}

#[test]
fn cluster_scoped_in_a_namespaced_overlay() {
    let files = |ns: &str| {
        Repo::new(&[
            (
                "app/kustomization.yaml",
                &*format!("{ns}resources:\n- r.yaml\n"),
            ),
            (
                "app/r.yaml",
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: reader\nrules: []\n",
            ),
        ])
    };
    let f: Vec<_> = files("namespace: shop\n")
        .lint()
        .into_iter()
        .filter(|f| f.rule == CLUSTER_SCOPED)
        .collect();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].file.as_str(), f[0].line), ("app/r.yaml", 2));
    assert!(files("").lint().iter().all(|f| f.rule != CLUSTER_SCOPED));
}

#[test]
fn resource_limits() {
    let d = DEPLOYMENT.replace(
        "          limits:\n            cpu: 500m\n            memory: 256Mi\n",
        "          requests:\n            cpu: 100m\n",
    );
    let f = findings_of(RESOURCE_LIMITS, &d);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(f[0].message.contains("cpu or memory"), "{}", f[0].message);
    assert_eq!(findings_of(RESOURCE_LIMITS, DEPLOYMENT), vec![]);
}

#[test]
fn privileged() {
    let d = DEPLOYMENT.replace(
        "        resources:",
        "        securityContext:\n          privileged: true\n        resources:",
    );
    let f = findings_of(PRIVILEGED, &d);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].line, 18);
    let host = DEPLOYMENT.replace(
        "      containers:",
        "      hostNetwork: true\n      containers:",
    );
    assert_eq!(findings_of(PRIVILEGED, &host).len(), 1);
    let safe = DEPLOYMENT.replace(
        "        resources:",
        "        securityContext:\n          privileged: false\n          allowPrivilegeEscalation: false\n        resources:",
    );
    assert_eq!(findings_of(PRIVILEGED, &safe), vec![]);
}

const HPA: &str = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: web\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: web\n  minReplicas: 2\n  maxReplicas: 5\n";

#[test]
fn hpa_replicas() {
    let with = |deployment: &str| {
        Repo::new(&[
            (
                "app/kustomization.yaml",
                "resources:\n- d.yaml\n- hpa.yaml\n",
            ),
            ("app/d.yaml", deployment),
            ("app/hpa.yaml", HPA),
        ])
        .lint()
        .into_iter()
        .filter(|f| f.rule == HPA_REPLICAS)
        .collect::<Vec<_>>()
    };
    let replicas = DEPLOYMENT.replace("spec:\n  selector:", "spec:\n  replicas: 3\n  selector:");
    let f = with(&replicas);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].file.as_str(), f[0].line), ("app/d.yaml", 6));
    assert_eq!(with(DEPLOYMENT), vec![]);
    let ignored = replicas.replace(
        "  name: web\n",
        "  name: web\n  annotations:\n    kubectl-gitops.dev/ignore-fields: /spec/replicas\n",
    );
    assert_eq!(with(&ignored), vec![]);
}

#[test]
fn codeowners_for_production_overlays() {
    let files = |owners: Option<&str>| {
        let mut files = vec![
            ("base/kustomization.yaml", "resources:\n- d.yaml\n"),
            ("base/d.yaml", DEPLOYMENT),
            (
                "overlays/prod/kustomization.yaml",
                "resources:\n- ../../base\n",
            ),
            (
                "overlays/dev/kustomization.yaml",
                "resources:\n- ../../base\n",
            ),
        ];
        if let Some(o) = owners {
            files.push((".github/CODEOWNERS", o));
        }
        Repo::new(&files)
            .lint()
            .into_iter()
            .filter(|f| f.rule == CODEOWNERS)
            .map(|f| (f.file, f.line))
            .collect::<Vec<_>>()
    };
    let missing = vec![("overlays/prod/kustomization.yaml".to_string(), 1)];
    assert_eq!(files(None), missing);
    assert_eq!(files(Some("/overlays/dev/ @devs\n")), missing);
    assert_eq!(files(Some("/overlays/prod/ @leads\n")), vec![]);
    assert_eq!(files(Some("prod/ @leads\n")), vec![]);
    assert_eq!(files(Some("* @everyone\n")), vec![]);
}

#[test]
fn copied_yaml() {
    let copy = DEPLOYMENT.replace("1.2.3", "1.3.0");
    let repo = |prod: &[(&'static str, &str)]| {
        let mut files = vec![
            ("base/kustomization.yaml", "resources:\n- d.yaml\n"),
            ("base/d.yaml", DEPLOYMENT),
            ("dev/kustomization.yaml", "resources:\n- ../base\n"),
        ];
        files.extend_from_slice(prod);
        Repo::new(&files)
            .lint()
            .into_iter()
            .filter(|f| f.rule == COPIED_YAML)
            .collect::<Vec<_>>()
    };
    let f = repo(&[
        ("prod/kustomization.yaml", "resources:\n- d.yaml\n"),
        ("prod/d.yaml", &copy),
    ]);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].file.as_str(), f[0].line), ("prod/d.yaml", 1));
    assert!(f[0].message.contains("base/d.yaml"), "{}", f[0].message);
    let patch =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n";
    let f = repo(&[
        (
            "prod/kustomization.yaml",
            "resources:\n- ../base\npatches:\n- path: p.yaml\n",
        ),
        ("prod/p.yaml", patch),
    ]);
    assert_eq!(f, vec![]);
}

#[test]
fn branch_per_environment() {
    use crate::repo::{BranchOverlay, Kustomization, check_branches};
    let k = Kustomization {
        dir: "overlays/prod".into(),
        file: "overlays/prod/kustomization.yaml".into(),
        component: false,
        includes: vec![],
    };
    let overlay = |branch: &str, differs| BranchOverlay {
        branch: branch.into(),
        kustomization: k.clone(),
        differs,
    };
    let mut out = Vec::new();
    check_branches(
        &[overlay("production", true), overlay("feature/x", true)],
        &mut out,
    );
    assert_eq!(rules_of(&out), [BRANCH_PER_ENVIRONMENT]);
    assert!(out[0].message.contains("production") && !out[0].message.contains("feature"));
    let mut out = Vec::new();
    check_branches(
        &[overlay("staging", false), overlay("feature/x", true)],
        &mut out,
    );
    assert_eq!(out, vec![]);
}

#[test]
fn render_errors_are_findings_with_a_line() {
    let repo = Repo::new(&[("app/kustomization.yaml", "resources:\n- missing.yaml\n")]);
    let f = repo.lint();
    assert_eq!(rules_of(&f), [RENDER_ERROR]);
    assert_eq!(f[0].file, "app/kustomization.yaml");
    assert!(f[0].line >= 1);
}

#[test]
fn inline_ignore_and_disable() {
    let d = DEPLOYMENT.replace(
        "web:1.2.3",
        "web:latest # lint:ignore mutable-images pinned by the release job",
    );
    assert_eq!(findings_of(MUTABLE_IMAGES, &d), vec![]);
    let above = DEPLOYMENT.replace(
        "        image: registry.example.com/web:1.2.3",
        "        # lint:ignore mutable-images,resource-limits canary\n        image: registry.example.com/web:latest",
    );
    assert_eq!(findings_of(MUTABLE_IMAGES, &above), vec![]);
    let other = DEPLOYMENT.replace("web:1.2.3", "web:latest # lint:ignore privileged nope");
    assert_eq!(findings_of(MUTABLE_IMAGES, &other).len(), 1);
}

#[test]
fn guard_reports_only_refused_rules() {
    let repo = single(&DEPLOYMENT.replace("1.2.3", "latest"));
    let rendered = repo.render("app");
    let f = crate::guard(&repo.source(), &rendered, &[MUTABLE_IMAGES]).unwrap();
    assert_eq!(rules_of(&f), [MUTABLE_IMAGES]);
    assert_eq!(f[0].location(), "app/r.yaml:16");
    assert_eq!(
        crate::guard(&repo.source(), &rendered, &[PLAINTEXT_SECRETS]).unwrap(),
        vec![]
    );
    assert!(crate::parse_refuse(&["no-such".into()]).is_err());
    assert_eq!(
        crate::parse_refuse(&["plaintext-secrets".into()]).unwrap(),
        [PLAINTEXT_SECRETS]
    );
}

#[test]
fn seed_tree_has_no_error() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalog-api");
    let source = renderer::FsSource::new(root).unwrap();
    let report = crate::lint(&source, None).unwrap();
    let errors: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert_eq!(errors, Vec::<&crate::Finding>::new());
    assert_eq!(report.targets, ["overlays/prod", "overlays/staging"]);
}
