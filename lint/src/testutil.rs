//! A repository on disk for the rule tests, rendered with the real renderer.

use renderer::{FsSource, RenderOptions, Rendered};

pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new(files: &[(&str, &str)]) -> Repo {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        Repo { dir }
    }

    pub fn source(&self) -> FsSource {
        FsSource::new(self.dir.path()).expect("source")
    }

    pub fn render(&self, dir: &str) -> Rendered {
        renderer::render(&self.source(), dir, &RenderOptions::default()).expect("renders")
    }

    /// Findings of every rule over the whole repository.
    pub fn lint(&self) -> Vec<crate::Finding> {
        crate::lint(&self.source(), None).expect("lints").findings
    }
}

/// A one-resource kustomization in `app/`.
pub fn single(resource: &str) -> Repo {
    Repo::new(&[
        ("app/kustomization.yaml", "resources:\n- r.yaml\n"),
        ("app/r.yaml", resource),
    ])
}

/// The findings of `rule` for a one-resource kustomization.
pub fn findings_of(rule: &str, resource: &str) -> Vec<crate::Finding> {
    single(resource)
        .lint()
        .into_iter()
        .filter(|f| f.rule == rule)
        .collect()
}

pub const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: registry.example.com/web:1.2.3
        resources:
          limits:
            cpu: 500m
            memory: 256Mi
";
