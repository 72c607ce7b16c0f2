//! Command-line flags of the `sluice` binary.

use crate::config::{BodyMode, Overrides};
use std::path::PathBuf;

/// A gRPC reverse proxy whose filters are WebAssembly plugins.
#[derive(Debug, clap::Parser)]
#[command(name = "sluice", version)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Address to accept gRPC (HTTP/2) connections on [default: 127.0.0.1:50051].
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Upstream for every method; the same as `--route '*=ADDR'` [default: 127.0.0.1:50052].
    #[arg(long, global = true, value_name = "ADDR")]
    pub upstream: Option<String>,
    /// Route methods matching GLOB to the given endpoints; may repeat.
    /// GLOB is `*`, `/pkg.Svc/Method`, `/pkg.Svc/*` or another prefix ending in `*`.
    #[arg(long = "route", global = true, value_name = "GLOB=ADDR[,ADDR...]")]
    pub routes: Vec<String>,
    /// Body path: `raw` forwards frames untouched, `message` de-frames gRPC messages,
    /// `auto` takes raw unless a plugin asks for messages [default: auto].
    #[arg(long, global = true, value_enum)]
    pub body_mode: Option<BodyMode>,
    /// TOML configuration file; flags win over it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Folder of `*.wasm` filter plugins.
    #[arg(long, global = true, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// Private folder where compiled plugins are cached (speeds up restarts).
    #[arg(long, global = true, value_name = "DIR")]
    pub plugin_cache: Option<PathBuf>,
    /// Do not watch the plugin folder; reload on SIGHUP or `POST /reload` only.
    #[arg(long, global = true)]
    pub no_watch: bool,
    /// No access-log line per call.
    #[arg(long, global = true)]
    pub no_access_log: bool,
    /// Address of the admin listener (metrics, health); off unless set.
    #[arg(long, global = true, value_name = "ADDR")]
    pub admin: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// Worker threads of the async runtime (default: one per CPU core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
}

/// Subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Validate the configuration (file and flags) and the plugin folder, then exit:
    /// 0 when valid, 1 with the offending key and line otherwise.
    Check,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

impl Cli {
    /// The settings the flags give, to apply over the config file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            listen: self.listen.clone(),
            upstream: self.upstream.clone(),
            routes: self.routes.clone(),
            body_mode: self.body_mode,
            plugins: self.plugins.clone(),
            admin: self.admin.clone(),
            plugin_cache: self.plugin_cache.clone(),
            no_watch: self.no_watch,
            no_access_log: self.no_access_log,
        }
    }
}
