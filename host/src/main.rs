//! The `sluice` binary: parse flags, set up logging, run the proxy until SIGINT/SIGTERM.

use anyhow::Context;
use clap::Parser;
use sluice::cli::{Cli, Command, LogFormat};
use sluice::{Config, Server};
use tracing_subscriber::EnvFilter;

/// jemalloc, not the system's malloc: a proxied call allocates and frees a few dozen small
/// buffers (headers, frames, call state), and glibc's malloc took 8 % of the proxy's
/// instructions per call. See "What has been cut" in benches/PERFORMANCE.md for the numbers.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (`_RJEM_MALLOC_CONF` in the environment
/// overrides them): a background thread hands freed pages back to the system after a
/// second (at once for the lazily purged kind), so the memory the plugins' compilation
/// used at start-up does not stay resident in an idle proxy.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[allow(unsafe_code)]
// SAFETY: jemalloc declares this symbol weak and reads it once, as a NUL-terminated C
// string that lives as long as the program.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: Option<&'static std::ffi::c_char> = Some(unsafe {
    &*c"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0"
        .as_ptr()
});

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match cli.log_format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let config = Config::load(&cli.overrides())?;
    if cli.command == Some(Command::Check) {
        return check(&config);
    }
    let threads = cli.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        usize::from,
    );
    // Thread per core: this runtime is worker 0, the server starts the others.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(&config).await?;
        tracing::info!(listen = %server.local_addr(), threads, admin = ?server.admin_addr(), routes = config.routes.len(), body_mode = ?config.body_mode, "sluice is serving");
        #[cfg(unix)]
        tokio::spawn(reload_on_sighup(server.proxy().clone()));
        server.run_workers(threads, shutdown_signal()).await;
        tracing::info!("sluice stopped");
        Ok(())
    })
}

/// `sluice check`: the config parsed and validated; the plugin folder must be readable and
/// every certificate, key and CA file usable.
fn check(config: &Config) -> anyhow::Result<()> {
    if let Some(dir) = &config.plugins {
        let plugins = sluice::plugin::registry::plugin_files(dir);
        anyhow::ensure!(
            dir.is_dir(),
            "plugin folder {} is not a readable folder",
            dir.display()
        );
        println!("plugins: {} file(s) in {}", plugins.len(), dir.display());
    }
    let certificates = sluice::tls::Certificates::load(config)?;
    if !certificates.is_empty() {
        println!(
            "TLS: {} certificate file(s) read",
            certificates.paths().len()
        );
    }
    println!(
        "configuration OK: listen {}, {} route(s), {} cluster(s), body mode {:?}",
        config.listen,
        config.routes.len(),
        config.clusters.len(),
        config.body_mode
    );
    Ok(())
}

/// Reloads the plugin folder and the certificates on every SIGHUP.
#[cfg(unix)]
async fn reload_on_sighup(proxy: std::sync::Arc<sluice::proxy::Proxy>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install a SIGHUP handler: reload by SIGHUP is off");
        return;
    };
    while hangups.recv().await.is_some() {
        let proxy = proxy.clone();
        if let Ok(report) = tokio::task::spawn_blocking(move || proxy.reload()).await {
            tracing::info!(loaded = ?report.loaded, refused = report.refused.len(), removed = ?report.removed, "SIGHUP: plugins reloaded");
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("can install a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
