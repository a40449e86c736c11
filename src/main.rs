//! The `smppd` command line: run the engine, check a configuration, send a message, load the
//! submit socket, and inspect PDUs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use clap::{Parser, Subcommand};
use smppd::config::{Config, ConfigFile, SimulatorSection};
use smppd::engine::Engine;
use smppd::pdu::{Pdu, hex};

// mimalloc, built with its `override` feature, so SQLite's C allocations go to it as well as
// Rust's. Against glibc's malloc it cut the engine's CPU per message by about a tenth in the
// pipeline bench (the store writer's share most), for some more resident memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The configuration `smppd run` uses when no file is given: two simulated carriers on
/// loopback, started beside the engine.
const EMBEDDED_CONFIG: &str = include_str!("../config.toml");
const EMBEDDED_SIM: &str = include_str!("../sim.toml");

/// smppd: a native SMPP 3.4 carrier-connection engine.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine (default: the embedded config.toml, simulated carriers included).
    Run {
        /// Path to config.toml.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and name every bad key.
    CheckConfig {
        /// Path to config.toml.
        #[arg(default_value = "config.toml")]
        config: PathBuf,
    },
    /// Submit a message through a running engine's API.
    Send {
        /// Destination, E.164.
        #[arg(long)]
        to: String,
        /// The text.
        #[arg(long)]
        body: String,
        /// Sender: a number, short code or alphanumeric id.
        #[arg(long, default_value = "smppd")]
        from: String,
        /// The API's address.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The API key (default: $SMPPD_API_KEY, else the demo key).
        #[arg(long)]
        key: Option<String>,
        /// Wait for the final state and print it.
        #[arg(long)]
        wait: bool,
    },
    /// Load a running engine's submit socket and report rates, latencies and final states.
    Load(LoadArgs),
    /// Inspect and build SMPP PDUs.
    #[command(subcommand)]
    Pdu(PduCommand),
}

/// `smppd load`: stops by itself at its count or duration (whichever comes first).
#[derive(clap::Args)]
struct LoadArgs {
    /// The API's address: http://HOST:PORT on loopback, or unix:PATH.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A Unix socket path instead of --url (the API's `unix_socket`).
    #[arg(long, conflicts_with = "url")]
    unix: Option<PathBuf>,
    /// The API key (default: $SMPPD_API_KEY, else the demo key).
    #[arg(long)]
    key: Option<String>,
    /// Messages to send (default 1000 when no --duration is given).
    #[arg(long, short = 'n')]
    count: Option<u64>,
    /// How long to send, e.g. 30s, 2m (with --count: whichever ends first).
    #[arg(long, short = 'd')]
    duration: Option<String>,
    /// Messages per second; without it, as fast as the answers come.
    #[arg(long, short = 'r')]
    rate: Option<f64>,
    /// Connections, each with one request in flight.
    #[arg(long, short = 'c', default_value_t = 16)]
    concurrency: usize,
    /// Messages per request: 1 posts to /messages, 2..=1000 to /messages/batch.
    #[arg(long, short = 'b', default_value_t = 1)]
    batch: usize,
    /// The message mix: shares of gsm (one part), long (two GSM parts), ucs2.
    #[arg(long, default_value = "gsm=100")]
    mix: String,
    /// Destination numbers, FIRST-LAST (message i goes to FIRST + i mod the range's length).
    #[arg(long, default_value = "447700900000-447700900999")]
    to: String,
    /// The sender.
    #[arg(long, default_value = "smppd")]
    from: String,
    /// A request unanswered this long counts as an error.
    #[arg(long, default_value = "30s")]
    timeout: String,
    /// Accepted messages to follow to their final state (a uniform sample); 0 for none.
    #[arg(long, default_value_t = 1000)]
    track: usize,
    /// How long to wait for the followed messages once sending stops.
    #[arg(long, default_value = "30s")]
    settle: String,
    /// Threads sending (1 keeps the load tool on one core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// No progress line (it is drawn only when standard error is a terminal anyway).
    #[arg(long, short = 'q')]
    quiet: bool,
}

impl LoadArgs {
    fn options(self) -> anyhow::Result<smppd::load::LoadOptions> {
        use smppd::load::{LoadOptions, Target, parse_duration};
        let target = match self.unix {
            Some(path) => Target::Unix(path),
            None => self.url.parse::<Target>()?,
        };
        let key = self
            .key
            .or_else(|| std::env::var("SMPPD_API_KEY").ok())
            .unwrap_or_else(|| "demo-key-change-me".into());
        let duration = self.duration.as_deref().map(parse_duration).transpose()?;
        let count = match (self.count, duration) {
            (None, None) => Some(1_000),
            (count, _) => count,
        };
        Ok(LoadOptions {
            count,
            duration,
            rate: self.rate,
            concurrency: self.concurrency,
            batch: self.batch,
            mix: self.mix.parse()?,
            numbers: self.to.parse()?,
            from: self.from,
            request_timeout: parse_duration(&self.timeout)?,
            track: self.track,
            settle: parse_duration(&self.settle)?,
            progress: !self.quiet,
            measure_cpu: true,
            ..LoadOptions::new(target, key)
        })
    }
}

fn load_command(args: LoadArgs) -> anyhow::Result<()> {
    let json = args.json;
    let threads = args.threads;
    let options = args.options()?;
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .context("starting the runtime")?;
    let summary = runtime.block_on(smppd::load::run(options))?;
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{summary}");
    }
    Ok(())
}

#[derive(Subcommand)]
enum PduCommand {
    /// Print a PDU given as hex (a whole frame, header included) as JSON.
    Decode {
        /// The PDU in hex; spaces, `_` and `:` are ignored, so it may span several
        /// arguments. `-` reads standard input.
        #[arg(required = true, num_args = 1..)]
        hex: Vec<String>,
    },
    /// Print the hex of a PDU given as JSON (the form `decode` prints).
    Encode {
        /// The PDU as JSON. `-` reads standard input.
        json: String,
    },
}

fn argument_or_stdin(value: String) -> anyhow::Result<String> {
    if value != "-" {
        return Ok(value);
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading standard input")?;
    Ok(text)
}

fn decode(text: &str) -> anyhow::Result<String> {
    let octets = hex::decode(text).context("the argument is not hex")?;
    let pdu = Pdu::decode(&Bytes::from(octets)).context("not a valid PDU")?;
    // Serializing the PDU itself (not a `Value`) keeps the fields in spec order.
    Ok(serde_json::to_string_pretty(&pdu)?)
}

fn encode(text: &str) -> anyhow::Result<String> {
    let pdu = Pdu::from_json(text).context("not a PDU in JSON")?;
    let mut buf = BytesMut::new();
    pdu.encode(&mut buf);
    Ok(hex::encode(&buf))
}

/// Reads the configuration: the file given, or the embedded one (its simulator config is
/// written to the data directory so the child process can read it).
fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Config::load(path).with_context(|| format!("in {}", path.display())),
        None => {
            let base = std::env::current_dir().context("no working directory")?;
            let mut config = ConfigFile::parse(EMBEDDED_CONFIG)
                .context("the embedded config.toml")?
                .validate(&base)
                .context("the embedded config.toml")?;
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("creating {}", config.data_dir.display()))?;
            let sim = config.data_dir.join("sim.toml");
            std::fs::write(&sim, EMBEDDED_SIM)
                .with_context(|| format!("writing {}", sim.display()))?;
            for s in &mut config.simulators {
                s.config = Some(sim.clone());
            }
            Ok(config)
        }
    }
}

/// The smsc-sim binary: beside this one; under `cargo run` it is built first if missing.
fn simulator_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("where is this program?")?;
    let dir = exe.parent().context("no directory")?;
    let sim = dir.join(format!("smsc-sim{}", std::env::consts::EXE_SUFFIX));
    if sim.exists() {
        return Ok(sim);
    }
    if let Ok(cargo) = std::env::var("CARGO") {
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut build = std::process::Command::new(cargo);
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        build.args([
            "build",
            "--quiet",
            "-p",
            "smsc-sim",
            "--bin",
            "smsc-sim",
            "--manifest-path",
        ]);
        build.arg(manifest);
        if release {
            build.arg("--release");
        }
        eprintln!("smppd: building smsc-sim for the simulated carriers ...");
        let status = build.status().context("running cargo build -p smsc-sim")?;
        if status.success() && sim.exists() {
            return Ok(sim);
        }
    }
    bail!(
        "the configuration starts simulators but {} does not exist: build it with `cargo build --release -p smsc-sim`",
        sim.display()
    )
}

fn start_simulators(sims: &[SimulatorSection]) -> anyhow::Result<Vec<Child>> {
    if sims.is_empty() {
        return Ok(Vec::new());
    }
    let binary = simulator_binary()?;
    let mut children = Vec::new();
    for s in sims {
        let mut cmd = std::process::Command::new(&binary);
        cmd.args(["--listen", &s.listen, "--control", &s.control]);
        if let Some(config) = &s.config {
            cmd.arg("--config").arg(config);
        }
        for account in &s.accounts {
            cmd.args(["--account", account]);
        }
        cmd.stdout(std::process::Stdio::null());
        children.push(
            cmd.spawn()
                .with_context(|| format!("starting {}", binary.display()))?,
        );
        eprintln!(
            "smppd: simulated carrier on {} (control {})",
            s.listen, s.control
        );
    }
    Ok(children)
}

fn stop_simulators(children: Vec<Child>) {
    for mut child in children {
        // SIGTERM lets the simulator unbind and exit; kill() if that is not possible.
        let terminated = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !terminated {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

async fn serve_metrics(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}

async fn wait_for_signal() {
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

/// `smppd run`: the configuration decides the runtime's threads.
fn run_command(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = load(config_path.as_deref())?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let children = start_simulators(&config.simulators)?;
    if !children.is_empty() {
        // Give the simulators a moment to listen; the binds retry anyway.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if let Some(addr) = config.metrics_listen {
        serve_metrics(addr).await?;
    }
    let engine = match Engine::start(config.clone(), None).await {
        Ok(e) => e,
        Err(e) => {
            stop_simulators(children);
            return Err(e.into());
        }
    };
    tracing::info!(
        api = %engine.api_addr,
        metrics = ?config.metrics_listen,
        data = %config.data_dir.display(),
        "smppd running"
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    engine.shutdown().await;
    stop_simulators(children);
    Ok(())
}

async fn send(
    to: String,
    body: String,
    from: String,
    url: String,
    key: Option<String>,
    wait: bool,
) -> anyhow::Result<()> {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let key = key
        .or_else(|| std::env::var("SMPPD_API_KEY").ok())
        .unwrap_or_else(|| "demo-key-change-me".into());
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let call = |method: &str, path: String, body: Option<serde_json::Value>| {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", url.trim_end_matches('/')))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )));
        let client = client.clone();
        async move {
            let resp = client.request(req?).await.context("is smppd running?")?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await?.to_bytes();
            let value: serde_json::Value =
                serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            anyhow::Ok((status, value))
        }
    };
    let (status, accepted) = call(
        "POST",
        "/messages".into(),
        Some(serde_json::json!({"to": to, "from": from, "body": body})),
    )
    .await?;
    println!("{}", serde_json::to_string_pretty(&accepted)?);
    if !status.is_success() {
        bail!("refused ({status})");
    }
    if !wait {
        return Ok(());
    }
    let id = accepted["id"]
        .as_str()
        .context("no id in the answer")?
        .to_owned();
    loop {
        let (_, m) = call("GET", format!("/messages/{id}"), None).await?;
        let state = m["status"].as_str().unwrap_or("");
        if [
            "delivered",
            "failed",
            "expired",
            "rejected",
            "unknown",
            "cancelled",
        ]
        .contains(&state)
        {
            println!("{}", serde_json::to_string_pretty(&m)?);
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the runtime")
    };
    let result = match cli.command {
        Command::Run { config } => run_command(config),
        Command::CheckConfig { config } => Config::load(&config)
            .map(|c| {
                println!(
                    "{}: ok ({} carrier(s), API on {})",
                    config.display(),
                    c.carriers.len(),
                    c.api_listen
                )
            })
            .map_err(|e| anyhow::anyhow!("{}: {e}", config.display())),
        Command::Send {
            to,
            body,
            from,
            url,
            key,
            wait,
        } => runtime().and_then(|rt| rt.block_on(send(to, body, from, url, key, wait))),
        Command::Load(args) => load_command(args),
        Command::Pdu(PduCommand::Decode { hex }) => argument_or_stdin(hex.join(" "))
            .and_then(|t| decode(&t))
            .map(|out| println!("{out}")),
        Command::Pdu(PduCommand::Encode { json }) => argument_or_stdin(json)
            .and_then(|t| encode(&t))
            .map(|out| println!("{out}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smppd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
