//! `config.toml` -> validated runtime settings. Every default is documented here (and in the
//! README's configuration reference); errors name the key and the problem.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::api::server::ApiKeyConfig;
use crate::api::validate::Limits;
use crate::carrier::config::{CarrierConfig, CarrierSpec};
use crate::dispatch::{DispatchConfig, DispatchOptions};
use crate::receipts::MoConfig;
use crate::routing::{RouteConfig, Router};
use crate::store::{SqliteConfig, Synchronous};
use crate::webhook::WebhookConfig;

/// A configuration that cannot be used; the text names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed, a key is unknown or a value has the wrong type.
    #[error("{0}")]
    Parse(String),
    /// A value is out of range or inconsistent.
    #[error("{key}: {problem}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// The most `engine.worker_threads` may ask for.
const MAX_WORKER_THREADS: usize = 1024;

/// `engine.worker_threads` resolved: as set, or for 0 one fewer than the cores, at least one.
pub fn worker_threads(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// `[engine]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSection {
    /// Where the store lives. Default `./data`.
    pub data_dir: PathBuf,
    /// How long shutdown waits for windows to drain before unbinding, seconds. Default 10.
    pub shutdown_grace_secs: u64,
    /// Threads of the async runtime (API, dispatch, binds, receipts). 0, the default: one
    /// fewer than the machine's cores, at least one, since the store's writer has a thread
    /// of its own.
    pub worker_threads: usize,
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            data_dir: PathBuf::from("./data"),
            shutdown_grace_secs: 10,
            worker_threads: 0,
        }
    }
}

/// `[api]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSection {
    /// TCP address of the submit socket. Default `127.0.0.1:8080`.
    pub listen: String,
    /// Also listen on this Unix socket. Default none.
    pub unix_socket: Option<PathBuf>,
    /// Largest request body, octets. Default 1 048 576.
    pub max_body_bytes: usize,
    /// `ttl` when a request has none, seconds. Default 172 800 (48 h).
    pub default_ttl_secs: u64,
    /// Largest `ttl`, seconds. Default 604 800 (7 days).
    pub max_ttl_secs: u64,
    /// `priority` when a request has none (0–3). Default 1.
    pub default_priority: u8,
    /// The API keys. At least one is required.
    pub keys: Vec<ApiKeyConfig>,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            listen: "127.0.0.1:8080".into(),
            unix_socket: None,
            max_body_bytes: 1 << 20,
            default_ttl_secs: 48 * 3600,
            max_ttl_secs: 7 * 24 * 3600,
            default_priority: 1,
            keys: Vec::new(),
        }
    }
}

/// `[metrics]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Address of the Prometheus listener (`GET /metrics`); empty to turn it off. Default
    /// `127.0.0.1:9090`.
    pub listen: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: "127.0.0.1:9090".into(),
        }
    }
}

/// `[store]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// `full` (fsync every commit; survives power loss) or `normal` (survives a process
    /// crash). Default `full`.
    pub synchronous: String,
    /// Days finished messages are kept. Default 7.
    pub retention_days: u64,
    /// The most messages accepted and not yet handed to a carrier; beyond it the API answers
    /// 503 `overloaded`, so the intake cannot outrun the pipeline without bound. 0 for no
    /// limit. Default 200 000.
    pub max_backlog: u64,
    /// How many of the latest submitted parts are held in memory to match their receipts
    /// (up to about 80 bytes each); older parts are matched through an index on disk, at the cost
    /// of a random page write each. Default 500 000.
    pub recent_parts: usize,
    /// The store writer's page cache in MiB (a larger one costs every commit a longer scan;
    /// misses are served by the OS's file cache). Default 16.
    pub cache_mib: u32,
    /// The least milliseconds between two commits while writes keep coming: a longer
    /// spacing puts more rows in each commit (less store writer time per message) and adds
    /// up to that much latency under load. 0 to 1000. Default 8.
    pub commit_spacing_ms: u64,
    /// A commit starts before its spacing is up once this many writes (API requests, batches
    /// of receipts or outcomes) wait for it. At least 1. Default 32.
    pub commit_waiters: usize,
    /// Index messages by destination, for `GET /messages?to=` (about 1 µs of the store
    /// writer's time per message); without the index such a query walks the messages from
    /// the newest, bounded by `since`. Default true.
    pub index_destinations: bool,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            synchronous: "full".into(),
            retention_days: 7,
            max_backlog: 200_000,
            recent_parts: 500_000,
            cache_mib: 16,
            commit_spacing_ms: 8,
            commit_waiters: 32,
            index_destinations: true,
        }
    }
}

/// One simulator `smppd run` starts beside the engine (`[[simulators]]`), for demos: the
/// `smsc-sim` binary as a child process, stopped with the engine.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorSection {
    /// SMPP address. Required.
    pub listen: String,
    /// Control address. Required.
    pub control: String,
    /// Its `sim.toml`, relative to this file. Default none.
    pub config: Option<PathBuf>,
    /// `ID:PASSWORD` accounts. Default none.
    #[serde(default)]
    pub accounts: Vec<String>,
}

/// The whole file, as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    /// `[engine]`.
    pub engine: EngineSection,
    /// `[api]`.
    pub api: ApiSection,
    /// `[metrics]`.
    pub metrics: MetricsSection,
    /// `[store]`.
    pub store: StoreSection,
    /// `[webhook]`.
    pub webhook: WebhookConfig,
    /// `[dispatch]`.
    pub dispatch: DispatchConfig,
    /// `[mo]`.
    pub mo: MoConfig,
    /// `[[carriers]]`: binds, credentials, throttles.
    pub carriers: Vec<CarrierConfig>,
    /// `[policies.NAME]`: each carrier's retry, in-doubt, id and receipt settings.
    pub policies: HashMap<String, DispatchOptions>,
    /// `[[routes]]`.
    pub routes: Vec<RouteConfig>,
    /// `[[simulators]]`.
    pub simulators: Vec<SimulatorSection>,
}

/// A checked configuration, ready to start an engine.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// Shutdown grace.
    pub shutdown_grace: std::time::Duration,
    /// Threads of the async runtime (`engine.worker_threads`, resolved).
    pub worker_threads: usize,
    /// Submit socket address.
    pub api_listen: SocketAddr,
    /// Optional Unix socket.
    pub api_unix_socket: Option<PathBuf>,
    /// Body limit.
    pub max_body_bytes: usize,
    /// API keys, resolved.
    pub api_keys: Vec<(String, ApiKeyConfig)>,
    /// Request limits.
    pub limits: Limits,
    /// Metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Store settings.
    pub store: SqliteConfig,
    /// Webhooks, and the resolved secret.
    pub webhook: WebhookConfig,
    /// The webhook secret.
    pub webhook_secret: Option<Vec<u8>>,
    /// Dispatch loop.
    pub dispatch: DispatchConfig,
    /// MO keywords.
    pub mo: MoConfig,
    /// Carriers in order, with their dispatch settings.
    pub carriers: Vec<(CarrierSpec, DispatchOptions)>,
    /// Routing.
    pub router: Router,
    /// Simulators to start (paths resolved).
    pub simulators: Vec<SimulatorSection>,
}

/// `env:NAME` reads the variable; anything else is the value itself.
fn secret(key: &str, value: &str) -> Result<String, ConfigError> {
    match value.strip_prefix("env:") {
        Some(name) => std::env::var(name)
            .map_err(|_| invalid(key, format!("environment variable {name} is not set"))),
        None => Ok(value.to_owned()),
    }
}

fn address(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        invalid(
            key,
            format!("{value:?} is not an address like 127.0.0.1:8080"),
        )
    })
}

impl ConfigFile {
    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Reads a file.
    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        ConfigFile::parse(&text)
    }

    /// Checks everything; `base` is the directory relative paths are read from.
    pub fn validate(self, base: &Path) -> Result<Config, ConfigError> {
        if self.api.keys.is_empty() {
            return Err(invalid("api.keys", "at least one API key is required"));
        }
        let mut api_keys = Vec::new();
        for (i, key) in self.api.keys.iter().enumerate() {
            let resolved = secret(&format!("api.keys[{i}].key"), &key.key)?;
            if resolved.len() < 8 {
                return Err(invalid(
                    format!("api.keys[{i}].key"),
                    "at least 8 characters",
                ));
            }
            api_keys.push((resolved, key.clone()));
        }
        if self.engine.worker_threads > MAX_WORKER_THREADS {
            return Err(invalid(
                "engine.worker_threads",
                format!("0 (one fewer than the cores) to {MAX_WORKER_THREADS}"),
            ));
        }
        if self.api.default_priority > 3 {
            return Err(invalid("api.default_priority", "0 to 3"));
        }
        if self.api.default_ttl_secs == 0 || self.api.default_ttl_secs > self.api.max_ttl_secs {
            return Err(invalid(
                "api.default_ttl_secs",
                "from 1 to api.max_ttl_secs",
            ));
        }
        if self.carriers.is_empty() {
            return Err(invalid("carriers", "at least one carrier is required"));
        }
        if self.store.cache_mib == 0 {
            return Err(invalid("store.cache_mib", "must be at least 1"));
        }
        if self.store.commit_spacing_ms > 1000 {
            return Err(invalid("store.commit_spacing_ms", "0 to 1000"));
        }
        if self.store.commit_waiters == 0 {
            return Err(invalid("store.commit_waiters", "must be at least 1"));
        }
        // The store claims at most MAX_PAGE messages at once; a larger batch would make every
        // claim fail and nothing would ever be sent.
        if !(1..=crate::store::MAX_PAGE).contains(&self.dispatch.claim_batch) {
            return Err(invalid(
                "dispatch.claim_batch",
                format!("from 1 to {}", crate::store::MAX_PAGE),
            ));
        }
        if self.dispatch.max_in_flight == 0 {
            return Err(invalid("dispatch.max_in_flight", "at least 1"));
        }
        if self.dispatch.poll_interval_ms == 0 || self.dispatch.receipt_scan_ms == 0 {
            let key = if self.dispatch.poll_interval_ms == 0 {
                "dispatch.poll_interval_ms"
            } else {
                "dispatch.receipt_scan_ms"
            };
            return Err(invalid(key, "at least 1 (milliseconds)"));
        }
        let mut carriers = Vec::new();
        for c in self.carriers {
            let name = c.name.clone();
            let spec = CarrierSpec::try_from(c).map_err(|e| invalid("carriers", e.to_string()))?;
            let options = self.policies.get(&name).cloned().unwrap_or_default();
            options
                .retry
                .validate()
                .map_err(|e| invalid(format!("policies.{name}"), e.to_string()))?;
            carriers.push((spec, options));
        }
        for name in self.policies.keys() {
            if !carriers.iter().any(|(s, _)| &*s.name == name) {
                return Err(invalid(
                    format!("policies.{name}"),
                    "no carrier has this name",
                ));
            }
        }
        let names: Vec<(String, f64)> = carriers
            .iter()
            .map(|(s, o)| (s.name.to_string(), o.price))
            .collect();
        let routes = if self.routes.is_empty() {
            // No routes: every destination goes to the carriers in the order listed.
            vec![RouteConfig {
                prefix: String::new(),
                carriers: names.iter().map(|(n, _)| n.clone()).collect(),
                policy: crate::routing::RoutePolicy::Priority,
                weights: Vec::new(),
            }]
        } else {
            self.routes
        };
        let refs: Vec<(&str, f64)> = names.iter().map(|(n, p)| (n.as_str(), *p)).collect();
        let router = Router::new(&routes, &refs).map_err(|e| invalid("routes", e.to_string()))?;
        let synchronous = match self.store.synchronous.as_str() {
            "full" => Synchronous::Full,
            "normal" => Synchronous::Normal,
            other => {
                return Err(invalid(
                    "store.synchronous",
                    format!("{other:?}: expected full or normal"),
                ));
            }
        };
        let data_dir = base.join(&self.engine.data_dir);
        let mut store = SqliteConfig::new(data_dir.join("smppd.db"));
        store.synchronous = synchronous;
        store.max_backlog = self.store.max_backlog;
        store.recent_parts = self.store.recent_parts;
        store.cache_mib = self.store.cache_mib;
        store.commit_spacing = std::time::Duration::from_millis(self.store.commit_spacing_ms);
        store.commit_waiters = self.store.commit_waiters;
        store.index_destinations = self.store.index_destinations;
        store.retention = std::time::Duration::from_secs(self.store.retention_days.max(1) * 86_400);
        let hook = &self.webhook;
        if hook.timeout_ms == 0 {
            return Err(invalid("webhook.timeout_ms", "at least 1 (milliseconds)"));
        }
        if hook.initial_backoff_ms == 0 || hook.initial_backoff_ms > hook.max_backoff_ms {
            return Err(invalid(
                "webhook.initial_backoff_ms",
                "from 1 to webhook.max_backoff_ms",
            ));
        }
        if hook.concurrency == 0 || hook.max_queued == 0 {
            let key = if hook.concurrency == 0 {
                "webhook.concurrency"
            } else {
                "webhook.max_queued"
            };
            return Err(invalid(key, "at least 1"));
        }
        if let Some(url) = &hook.default_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "webhook.default_url",
                format!("{url:?} is not an http:// or https:// URL"),
            ));
        }
        let webhook_secret = match &self.webhook.secret {
            Some(s) => Some(secret("webhook.secret", s)?.into_bytes()),
            None => None,
        };
        let metrics_listen = if self.metrics.listen.is_empty() {
            None
        } else {
            Some(address("metrics.listen", &self.metrics.listen)?)
        };
        let text = carriers
            .first()
            .map(|(s, _)| s.text.clone())
            .unwrap_or_default();
        let simulators = self
            .simulators
            .into_iter()
            .map(|mut s| {
                s.config = s.config.map(|p| base.join(p));
                s
            })
            .collect();
        Ok(Config {
            data_dir,
            shutdown_grace: std::time::Duration::from_secs(self.engine.shutdown_grace_secs),
            worker_threads: worker_threads(self.engine.worker_threads),
            api_listen: address("api.listen", &self.api.listen)?,
            api_unix_socket: self.api.unix_socket,
            max_body_bytes: self.api.max_body_bytes.max(1024),
            api_keys,
            limits: Limits {
                text,
                default_ttl_secs: self.api.default_ttl_secs,
                max_ttl_secs: self.api.max_ttl_secs,
                default_priority: self.api.default_priority,
                carriers: names.into_iter().map(|(n, _)| n).collect(),
            },
            metrics_listen,
            store,
            webhook: self.webhook,
            webhook_secret,
            dispatch: self.dispatch,
            mo: self.mo,
            carriers,
            router,
            simulators,
        })
    }
}

impl Config {
    /// Reads and checks a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let base = path.parent().unwrap_or(Path::new("."));
        ConfigFile::read(path)?.validate(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(extra: &str) -> Result<Config, ConfigError> {
        let text = format!(
            r#"
[api]
keys = [{{ name = "t", key = "a-long-key" }}]
[[carriers]]
name = "c"
hosts = ["127.0.0.1:2775"]
system_id = "esme"
{extra}
"#
        );
        ConfigFile::parse(&text)?.validate(Path::new("."))
    }

    fn key_of(result: Result<Config, ConfigError>) -> String {
        match result {
            Err(ConfigError::Invalid { key, .. }) => key,
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn the_store_backlog_bound_reaches_the_store() {
        assert_eq!(check("").unwrap().store.max_backlog, 200_000);
        let config = check(
            "[store]\nmax_backlog = 0\nsynchronous = \"normal\"\nrecent_parts = 7\ncache_mib = 3\n\
             commit_spacing_ms = 0\ncommit_waiters = 5\nindex_destinations = false",
        )
        .unwrap();
        assert_eq!(config.store.max_backlog, 0);
        assert_eq!(config.store.recent_parts, 7);
        assert_eq!(config.store.cache_mib, 3);
        assert_eq!(config.store.commit_spacing, std::time::Duration::ZERO);
        assert_eq!(config.store.commit_waiters, 5);
        let defaults = check("").unwrap();
        assert_eq!(
            defaults.store.commit_spacing,
            std::time::Duration::from_millis(8)
        );
        assert_eq!(defaults.store.commit_waiters, 32);
        assert_eq!(
            key_of(check("[store]\ncommit_spacing_ms = 1001")),
            "store.commit_spacing_ms"
        );
        assert_eq!(
            key_of(check("[store]\ncommit_waiters = 0")),
            "store.commit_waiters"
        );
        assert!(!config.store.index_destinations);
        assert!(check("").unwrap().store.index_destinations);
        assert_eq!(key_of(check("[store]\ncache_mib = 0")), "store.cache_mib");
        assert_eq!(config.store.synchronous, Synchronous::Normal);
    }

    #[test]
    fn worker_threads_default_to_one_fewer_than_the_cores() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(check("").unwrap().worker_threads, (cores - 1).max(1));
        let config = check("[engine]\nworker_threads = 3").unwrap();
        assert_eq!(config.worker_threads, 3);
        assert_eq!(
            key_of(check("[engine]\nworker_threads = 1025")),
            "engine.worker_threads"
        );
    }

    #[test]
    fn the_dispatch_section_is_checked() {
        assert!(check("").is_ok());
        assert!(check("[dispatch]\nclaim_batch = 1000\nreceipt_scan_ms = 50").is_ok());
        assert_eq!(
            key_of(check("[dispatch]\nclaim_batch = 1001")),
            "dispatch.claim_batch"
        );
        assert_eq!(
            key_of(check("[dispatch]\nclaim_batch = 0")),
            "dispatch.claim_batch"
        );
        assert_eq!(
            key_of(check("[dispatch]\nmax_in_flight = 0")),
            "dispatch.max_in_flight"
        );
        assert_eq!(
            key_of(check("[dispatch]\nreceipt_scan_ms = 0")),
            "dispatch.receipt_scan_ms"
        );
        assert_eq!(
            key_of(check("[dispatch]\npoll_interval_ms = 0")),
            "dispatch.poll_interval_ms"
        );
    }

    #[test]
    fn the_webhook_section_is_checked() {
        assert!(check("[webhook]\ndefault_url = \"http://hooks.example/x\"").is_ok());
        for (section, key) in [
            ("timeout_ms = 0", "webhook.timeout_ms"),
            ("initial_backoff_ms = 0", "webhook.initial_backoff_ms"),
            (
                "initial_backoff_ms = 5000\nmax_backoff_ms = 10",
                "webhook.initial_backoff_ms",
            ),
            ("concurrency = 0", "webhook.concurrency"),
            ("max_queued = 0", "webhook.max_queued"),
            ("default_url = \"hooks.example\"", "webhook.default_url"),
        ] {
            assert_eq!(key_of(check(&format!("[webhook]\n{section}"))), key);
        }
    }
}
