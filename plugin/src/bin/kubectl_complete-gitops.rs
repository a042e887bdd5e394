//! kubectl runs this to complete `kubectl gitops …`; see `plugin::complete`.
use std::io::Write;

use plugin::cluster::kube_context::KubeEnv;
use plugin::complete::complete;

fn main() {
    let words: Vec<String> = std::env::args().skip(1).collect();
    let out = complete(&words, &KubeEnv::from_process()).to_cobra();
    // A shell that went away mid-completion is not worth reporting.
    let _ = std::io::stdout().write_all(out.as_bytes());
}
