//! The etcd a run talks to: how to connect (endpoints, TLS, user — the flags etcdctl uses), the
//! run's key prefix, and the rule that scen never writes outside that prefix on an etcd it did
//! not start.

use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use serde::Serialize;

/// How to reach an etcd cluster, mirroring etcdctl's global flags.
#[derive(Debug, Clone, Default)]
pub struct ConnectSettings {
    /// Client URLs or `host:port` pairs.
    pub endpoints: Vec<String>,
    /// `--cacert`: CA bundle to verify the server.
    pub cacert: Option<PathBuf>,
    /// `--cert`: client certificate.
    pub cert: Option<PathBuf>,
    /// `--key`: client key.
    pub key: Option<PathBuf>,
    /// `--user name:password`.
    pub user: Option<String>,
    /// Dial timeout (default 5 s).
    pub dial_timeout: Option<Duration>,
    /// Per-request timeout (default 30 s).
    pub request_timeout: Option<Duration>,
}

/// Connection and prefix errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A TLS file could not be read.
    #[error("cannot read {what} file {path}: {source}")]
    TlsFile {
        /// Which flag.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A TLS file that is not usable PEM.
    #[error("{what} {path}: not a usable PEM file: {reason}")]
    BadPem {
        /// Which flag.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the TLS library said.
        reason: String,
    },
    /// `--cert` without `--key`, or the reverse.
    #[error("--cert and --key must be given together")]
    CertWithoutKey,
    /// `--user` is not `name:password`.
    #[error("--user must be name:password")]
    BadUser,
    /// The cluster could not be reached or refused us.
    #[error("cannot reach etcd at {endpoints}: {reason} (check --endpoints, TLS flags and that etcd is running)")]
    Unreachable {
        /// The endpoints tried.
        endpoints: String,
        /// What the client said, without its debug text.
        reason: String,
        /// The client error.
        #[source]
        source: etcd_client::Error,
    },
    /// The TLS files do not hold what their flags need (`--cacert` without a certificate, a
    /// `--key` that does not belong to `--cert`).
    #[error("{0}")]
    TlsFiles(String),
    /// The TLS handshake with a member failed: who rejected what.
    #[error("TLS with etcd at {endpoint} failed: {why}")]
    TlsRejected {
        /// The member's URL.
        endpoint: String,
        /// Which side rejected which certificate.
        why: String,
    },
    /// No endpoints were given.
    #[error("no etcd endpoints given")]
    NoEndpoints,
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the flags are wrong (exit code 2) rather than the cluster unreachable (exit code 3).
    pub fn is_usage(&self) -> bool {
        !matches!(self, Error::Unreachable { .. } | Error::TlsRejected { .. })
    }
}

impl ConnectSettings {
    fn tls(&self) -> Result<Option<TlsOptions>> {
        if self.cacert.is_none() && self.cert.is_none() && self.key.is_none() {
            return Ok(None);
        }
        crate::tls::check_files(
            self.cacert.as_deref(),
            self.cert.as_deref(),
            self.key.as_deref(),
        )
        .map_err(Error::TlsFiles)?;
        let read = |what: &'static str, path: &PathBuf| {
            std::fs::read(path).map_err(|source| Error::TlsFile {
                what,
                path: path.clone(),
                source,
            })
        };
        let mut tls = TlsOptions::new();
        if let Some(ca) = &self.cacert {
            tls = tls.ca_certificate(Certificate::from_pem(read("--cacert", ca)?));
        }
        match (&self.cert, &self.key) {
            (Some(c), Some(k)) => {
                tls = tls.identity(Identity::from_pem(read("--cert", c)?, read("--key", k)?))
            }
            (None, None) => {}
            _ => return Err(Error::CertWithoutKey),
        }
        Ok(Some(tls))
    }

    /// An HTTP client with the same TLS settings as the etcd connection (CA, client certificate),
    /// for the members' `/metrics`.
    pub fn http_client(&self) -> Result<reqwest::Client> {
        let read = |what: &'static str, path: &PathBuf| {
            std::fs::read(path).map_err(|source| Error::TlsFile {
                what,
                path: path.clone(),
                source,
            })
        };
        let mut b = reqwest::Client::builder().use_rustls_tls();
        if let Some(ca) = &self.cacert {
            let pem = read("--cacert", ca)?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| Error::BadPem {
                what: "--cacert",
                path: ca.clone(),
                reason: e.to_string(),
            })?;
            b = b.add_root_certificate(cert);
        }
        match (&self.cert, &self.key) {
            (Some(c), Some(k)) => {
                let mut pem = read("--cert", c)?;
                pem.push(b'\n');
                pem.extend(read("--key", k)?);
                let id = reqwest::Identity::from_pem(&pem).map_err(|e| Error::BadPem {
                    what: "--cert/--key",
                    path: c.clone(),
                    reason: e.to_string(),
                })?;
                b = b.identity(id);
            }
            (None, None) => {}
            _ => return Err(Error::CertWithoutKey),
        }
        b.build().map_err(|e| Error::BadPem {
            what: "TLS settings",
            path: PathBuf::new(),
            reason: e.to_string(),
        })
    }

    /// Endpoints with a scheme: `https://` when TLS flags are set, `http://` otherwise.
    pub fn urls(&self) -> Vec<String> {
        let tls = self.cacert.is_some() || self.cert.is_some();
        self.endpoints
            .iter()
            .map(|e| {
                if e.contains("://") {
                    e.clone()
                } else if tls {
                    format!("https://{e}")
                } else {
                    format!("http://{e}")
                }
            })
            .collect()
    }

    /// Connects to the given endpoints (all of them, or one member's URL) with these settings.
    pub async fn connect_to(&self, endpoints: &[String]) -> Result<Client> {
        if endpoints.is_empty() {
            return Err(Error::NoEndpoints);
        }
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(self.dial_timeout.unwrap_or(Duration::from_secs(5)))
            .with_timeout(self.request_timeout.unwrap_or(Duration::from_secs(30)))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if let Some(tls) = self.tls()? {
            opts = opts.with_tls(tls);
        }
        if let Some(user) = &self.user {
            let (name, password) = user.split_once(':').ok_or(Error::BadUser)?;
            opts = opts.with_user(name, password);
        }
        match Client::connect(endpoints, Some(opts)).await {
            Ok(c) => Ok(c),
            Err(source) => Err(self.unreachable(endpoints, source).await),
        }
    }

    /// Why `endpoints` could not be used: a TLS handshake of our own says who rejected what,
    /// else the client's error without its debug text.
    async fn unreachable(&self, endpoints: &[String], source: etcd_client::Error) -> Error {
        if let Some(url) = endpoints.iter().find(|u| u.starts_with("https://")) {
            let why = crate::tls::diagnose(
                url,
                self.cacert.as_deref(),
                self.cert.as_deref(),
                self.key.as_deref(),
            )
            .await;
            if let Some(why) = why {
                return Error::TlsRejected {
                    endpoint: url.clone(),
                    why,
                };
            }
        }
        Error::Unreachable {
            endpoints: endpoints.join(","),
            reason: etcd_message(&source),
            source,
        }
    }
}

/// The largest answer scen accepts from etcd, as etcd's Go client (`MaxCallRecvMsgSize`): tonic's
/// default of 4 MiB would fail an unpaginated range over a few thousand pods.
pub const MAX_RECV_MESSAGE: usize = i32::MAX as usize;

/// A KV handle on `client` that accepts answers up to [`MAX_RECV_MESSAGE`].
pub fn kv(client: &Client) -> etcd_client::KvClient {
    client
        .kv_client()
        .max_decoding_message_size(MAX_RECV_MESSAGE)
}

/// A watch handle on `client` that accepts events up to [`MAX_RECV_MESSAGE`].
pub fn watch(client: &Client) -> etcd_client::WatchClient {
    client
        .watch_client()
        .max_decoding_message_size(MAX_RECV_MESSAGE)
}

/// What the report says about the cluster a run used.
#[derive(Debug, Clone, Serialize)]
pub struct TargetInfo {
    /// Client URLs.
    pub endpoints: Vec<String>,
    /// True when scen started this etcd itself.
    pub embedded: bool,
    /// The server version the first member reported.
    pub etcd_version: String,
    /// Every key the run writes lives under this prefix (unless the scenario, on an embedded
    /// etcd, writes elsewhere explicitly).
    pub prefix: String,
}

/// A connected cluster plus the run's prefix rules; cheap to share.
#[derive(Clone)]
pub struct Target {
    /// The client (cheap to clone: a shared channel).
    pub client: Client,
    /// How it was reached, for per-member connections.
    pub settings: ConnectSettings,
    /// Report information.
    pub info: TargetInfo,
    /// `--allow-maintenance`: compaction, defragmentation and disarming on an etcd scen did not start.
    pub allow_maintenance: bool,
    /// `--allow-registry-writes`: simulated objects go to the real `/registry` of an etcd scen did
    /// not start (otherwise under the run prefix).
    pub allow_registry_writes: bool,
    /// The run's ledger: what its actions wrote and where, shared by every clone of the target.
    pub ledger: RunLedger,
    /// The embedded cluster, when scen started it: what `fault::` acts on.
    pub embedded: Option<crate::embedded::Shared>,
    /// The embedded Kubernetes control plane, when the scenario asked for one: the kube backend's
    /// default API server.
    pub kube: Option<KubeTarget>,
}

/// What actions need to know of the embedded control plane.
#[derive(Debug, Clone)]
pub struct KubeTarget {
    /// Its admin kubeconfig.
    pub kubeconfig: std::path::PathBuf,
    /// Whether kube-scheduler runs (pods are then left for it to bind).
    pub scheduler: bool,
    /// Whether the KWOK controller runs (node and pod status and leases are then its).
    pub kwok: bool,
    /// Whether kube-controller-manager runs (deployments go through its controllers).
    pub controller_manager: bool,
}

impl Target {
    /// Connects and checks the cluster answers, reading its version.
    pub async fn connect(
        settings: ConnectSettings,
        embedded: bool,
        prefix: String,
    ) -> Result<Self> {
        let urls = settings.urls();
        let mut client = settings.connect_to(&urls).await?;
        let status = match client.status().await {
            Ok(s) => s,
            Err(source) => return Err(settings.unreachable(&urls, source).await),
        };
        let info = TargetInfo {
            endpoints: urls,
            embedded,
            etcd_version: status.version().to_string(),
            prefix,
        };
        Ok(Target {
            client,
            settings,
            info,
            allow_maintenance: false,
            allow_registry_writes: false,
            ledger: RunLedger::default(),
            embedded: None,
            kube: None,
        })
    }

    /// The process ids of the etcd members scen started and that run now (empty otherwise): the
    /// server side of CPU figures.
    pub fn server_pids(&self) -> Vec<u32> {
        self.embedded
            .as_ref()
            .map(crate::embedded::running_pids)
            .unwrap_or_default()
    }

    /// Members of the embedded cluster that died on their own (empty for other clusters).
    pub fn died(&self) -> Vec<String> {
        self.embedded
            .as_ref()
            .map(|e| e.lock().unwrap_or_else(|p| p.into_inner()).died())
            .unwrap_or_default()
    }

    /// A mark of the embedded members' CPU, or `None` when scen did not start the cluster.
    pub fn server_cpu_mark(&self) -> Option<crate::measure::process::CpuMark> {
        self.embedded
            .is_some()
            .then(|| crate::measure::process::CpuMark::now(&self.server_pids()))
    }

    /// True when cluster-wide maintenance may run: on an etcd scen started, or with `--allow-maintenance`.
    pub fn may_maintain(&self) -> bool {
        self.info.embedded || self.allow_maintenance
    }

    /// True when keys outside the run prefix may be written (only on an etcd scen started).
    pub fn may_write_anywhere(&self) -> bool {
        self.info.embedded
    }
}

/// The run's ledger: what this run's actions wrote and where (`cluster::simulate`'s objects,
/// the places a range must find them), kept apart from the connection. Each action keeps its own
/// book here by type, so this layer knows nothing of what the actions record (as
/// `http::Extensions` carries a request's context); every clone of the target shares it.
#[derive(Clone, Default)]
pub struct RunLedger(
    std::sync::Arc<
        std::sync::Mutex<
            std::collections::HashMap<std::any::TypeId, Box<dyn std::any::Any + Send + Sync>>,
        >,
    >,
);

impl RunLedger {
    /// The run's shared book of type `T` (a handle: an `Arc` of the book), created empty on
    /// first use.
    pub fn get<T: Clone + Default + Send + Sync + 'static>(&self) -> T {
        let mut books = self.0.lock().unwrap_or_else(|p| p.into_inner());
        books
            .entry(std::any::TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_ref::<T>()
            .expect("a book is stored under its own type")
            .clone()
    }
}

impl std::fmt::Debug for RunLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let books = self.0.lock().map(|b| b.len()).unwrap_or_default();
        write!(f, "RunLedger({books} books)")
    }
}

/// An etcd client error as a person reads it: the gRPC code and etcd's message, never tonic's
/// debug text (`MetadataMap {...}`).
pub fn etcd_message(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
        other => other.to_string(),
    }
}
