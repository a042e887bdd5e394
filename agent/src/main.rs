//! `gitops-agent`: see the library for what it does.

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

/// Opt-in (`--features mimalloc`): benches/agent.rs measures it against the C library's malloc,
/// which stays the default because it peaked lower (glibc with `MALLOC_ARENA_MAX=1`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
    let config = agent::Config::parse();
    // Before the runtime starts its threads, as libgit2 requires.
    agent::git::set_server_timeouts(config.git_timeout);
    // Two workers, not one per core: the agent is mostly waiting on the API server, and each
    // worker costs a stack. Measured at 1000 objects, two against one: +0.3 MiB peak RSS for a
    // resync of 3.7 s instead of 5.1 s (a resync holds the lock self-heal waits for).
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(agent::render::RENDER_STACK_BYTES)
        .enable_all()
        .build()?
        .block_on(async {
            let mut term = signal(SignalKind::terminate())?;
            let shutdown = async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            };
            agent::run(config, shutdown).await?;
            Ok(())
        })
}
