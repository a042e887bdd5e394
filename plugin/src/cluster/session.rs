//! What every cluster-reading command needs: a tokio runtime for the synchronous
//! [`crate::run`] dispatcher, and a client bound to the namespace kubectl would use.

use std::future::Future;

use anyhow::Context;

use crate::cluster::KubeArgs;
use crate::cluster::kube_context::{KubeContext, KubeEnv};

/// Runs `future` to completion on a fresh single-threaded runtime: the plugin does one thing
/// at a time, and a process-wide runtime would outlive the commands that do not need one.
pub fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(runtime.block_on(future))
}

/// A client and the namespace it works in.
#[derive(Clone)]
pub struct Session {
    pub client: kube::Client,
    pub namespace: String,
}

impl Session {
    pub async fn connect(args: &KubeArgs) -> anyhow::Result<Self> {
        let context = KubeContext::resolve(args, &KubeEnv::from_process())?;
        let client = context.client().await?;
        Ok(Self {
            client,
            namespace: context.namespace,
        })
    }
}
