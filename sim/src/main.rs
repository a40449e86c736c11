//! The `smsc-sim` binary: an SMSC on loopback for smppd and any other ESME.
//!
//! Logs go to stderr; the first line says where it listens (`smsc-sim ready smpp=ADDR
//! control=ADDR`, useful with port 0). On SIGTERM or Ctrl-C it unbinds every ESME and prints
//! its final stats as JSON on stdout, then exits 0.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use smsc_sim::config::{AccountConfig, DelayRange, SimConfig};
use smsc_sim::{Sim, control};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// An SMPP 3.4 SMSC simulator: honest by default, misbehaving on request.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Address for ESMEs.
    #[arg(long, default_value = "127.0.0.1:2775")]
    listen: String,
    /// Address for the HTTP control listener (stats, handset view, faults, MO, metrics).
    #[arg(long, default_value = "127.0.0.1:8775")]
    control: String,
    /// An account as SYSTEM_ID:PASSWORD; repeatable. Added to those of --config.
    #[arg(long = "account", value_name = "ID:PASSWORD")]
    accounts: Vec<String>,
    /// Delay of every delivery receipt, ms (sets every account's receipts.delay).
    #[arg(long)]
    dlr_delay_ms: Option<u64>,
    /// TOML file with everything else (see the README's simulator section).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Serve TLS with this certificate chain (PEM) ...
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// ... and this private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

fn config(args: &Args) -> anyhow::Result<SimConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => SimConfig::default(),
    };
    for account in &args.accounts {
        let Some((id, password)) = account.split_once(':') else {
            bail!("--account {account:?}: expected SYSTEM_ID:PASSWORD");
        };
        config.accounts.push(AccountConfig::new(id, password));
    }
    if let Some(ms) = args.dlr_delay_ms {
        for account in &mut config.accounts {
            account.receipts.delay = DelayRange::fixed(ms);
        }
    }
    if config.accounts.is_empty() {
        bail!("no accounts: give --account ID:PASSWORD or accounts in --config");
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr, so stdout carries only the final stats JSON for scripts to read.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    let config = config(&args)?;
    let accounts: Vec<String> = config
        .accounts
        .iter()
        .map(|a| a.system_id.clone())
        .collect();
    let mut sim = Sim::new(config)?;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let cert = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
        let key = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
        sim = sim.with_tls(&cert, &key)?;
    }
    let handle = sim.handle();
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let control_listener = TcpListener::bind(&args.control)
        .await
        .with_context(|| format!("listening on {}", args.control))?;
    tracing::info!(
        smpp = %listener.local_addr()?,
        control = %control_listener.local_addr()?,
        ?accounts,
        "smsc-sim ready"
    );

    let shutdown = CancellationToken::new();
    let control_task = tokio::spawn(control::serve(
        control_listener,
        handle,
        shutdown.clone().cancelled_owned(),
    ));
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signal.cancel();
    });
    let stats = sim.run(listener, shutdown.clone().cancelled_owned()).await;
    shutdown.cancel();
    let _ = control_task.await;
    println!("{}", serde_json::to_string_pretty(&stats)?);
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
