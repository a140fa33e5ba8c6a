//! Network faults between embedded members: a proxy scen owns in front of each member's peer
//! listener, on loopback (no root, no namespaces). Members advertise the proxy's address, so every
//! raft connection to a member goes through its proxy; the proxy learns which member the
//! connection comes from by the `X-Server-From` header etcd's rafthttp sends, and applies the
//! rules of that pair of members: **cut** (the connection is closed and new ones are refused:
//! a partition), or **delay** with jitter on every chunk, both ways (a slow link). Clients are
//! not proxied: they still reach every member, as in real partitions between etcd hosts.
//!
//! Every directed link is probed twice a second the way etcd's own prober does it (`GET
//! /raft/probing` on the peer's listener, here through its proxy with the sender's
//! `X-Server-From`): etcd observes its peer round trip only every 30 s, too seldom for a step.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A slow link: every chunk waits `delay` plus up to `jitter`; a `loss` share of chunks wait a
/// retransmission timeout more (200 ms, TCP's minimum: what a lost packet costs a TCP stream);
/// with `bandwidth`, a chunk of n bytes also waits n / bandwidth.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Slow {
    /// Fixed delay.
    pub delay: Duration,
    /// Uniform extra delay, up to this.
    pub jitter: Duration,
    /// Share of chunks "lost" (0..1): each costs a retransmission timeout.
    pub loss: f64,
    /// Bytes per second, each direction of each connection (`None`: unlimited).
    pub bandwidth: Option<u64>,
}

/// What a lost packet costs a TCP stream: its minimum retransmission timeout.
pub const RETRANSMIT: Duration = Duration::from_millis(200);

/// What the proxies do, by pair of members.
#[derive(Debug, Default)]
pub struct Rules {
    /// Member ids (hex, as `X-Server-From` carries them) to names.
    pub ids: HashMap<String, String>,
    /// Pairs of members cut from each other (names, sorted).
    pub cut: HashSet<(String, String)>,
    /// Slow links, by member: every connection to or from it.
    pub slow: HashMap<String, Slow>,
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

impl Rules {
    /// Whether traffic between `a` and `b` is cut.
    pub fn is_cut(&self, a: &str, b: &str) -> bool {
        self.cut.contains(&pair(a, b))
    }

    /// Cuts every pair between `one` and `other`.
    pub fn partition(&mut self, one: &[String], other: &[String]) {
        for a in one {
            for b in other {
                if a != b {
                    self.cut.insert(pair(a, b));
                }
            }
        }
    }

    /// The delay of a connection between `a` and `b`: the slower of their links.
    fn slow(&self, a: &str, b: &str) -> Slow {
        let (x, y) = (
            self.slow.get(a).copied().unwrap_or_default(),
            self.slow.get(b).copied().unwrap_or_default(),
        );
        if x.delay + x.jitter >= y.delay + y.jitter {
            x
        } else {
            y
        }
    }
}

/// The proxies of one cluster; dropping it stops them.
pub struct Proxies {
    /// The rules every proxy reads.
    pub rules: Arc<Mutex<Rules>>,
    /// The link probes, oldest first.
    pub probes: Probes,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// One probe of a directed link between members.
#[derive(Debug, Clone)]
pub struct Probe {
    /// When it was sent.
    pub at: Instant,
    /// The member it went from (name).
    pub from: String,
    /// The member it went to.
    pub to: String,
    /// Its round trip; `None` when it failed or timed out (a cut link, a stopped member).
    pub rtt: Option<Duration>,
}

/// The probes of every link, oldest first, bounded to [`KEEP_PROBES`].
pub type Probes = Arc<Mutex<VecDeque<Probe>>>;

/// How often each link is probed.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);

/// Probes kept (hours of a 5-member cluster); older ones are dropped.
pub const KEEP_PROBES: usize = 200_000;

/// Probes every directed link between `members` (name, proxy address) until aborted: a request
/// to the receiver's proxy carrying the sender's id, so the link's rules apply to it.
async fn probe_links(members: Vec<(String, String)>, rules: Arc<Mutex<Rules>>, probes: Probes) {
    let Ok(client) = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
    else {
        return;
    };
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Before a fault has named the members' ids, a probe carries none: only the receiver's
        // own slow link applies to it (there is no cut yet to apply).
        let ids: HashMap<String, String> = rules
            .lock()
            .expect("rules lock")
            .ids
            .iter()
            .map(|(id, name)| (name.clone(), id.clone()))
            .collect();
        let mut set = tokio::task::JoinSet::new();
        for (from, _) in &members {
            for (to, addr) in members.iter().filter(|(to, _)| to != from) {
                let mut req = client.get(format!("http://{addr}/raft/probing"));
                if let Some(id) = ids.get(from) {
                    req = req.header("X-Server-From", id);
                }
                let (from, to) = (from.clone(), to.clone());
                set.spawn(async move {
                    let at = Instant::now();
                    let ok = match req.send().await {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    Probe {
                        at,
                        from,
                        to,
                        rtt: ok.then(|| at.elapsed()),
                    }
                });
            }
        }
        while let Some(done) = set.join_next().await {
            if let Ok(p) = done {
                let mut all = probes.lock().expect("probes lock");
                all.push_back(p);
                while all.len() > KEEP_PROBES {
                    all.pop_front();
                }
            }
        }
    }
}

impl Drop for Proxies {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl std::fmt::Debug for Proxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxies").finish_non_exhaustive()
    }
}

/// The member a peer connection comes from: the `X-Server-From` header of a request in `bytes`.
fn source(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("X-Server-From")
            .then(|| v.trim().to_string())
    })
}

/// The source of a connection, learned from the first request that names it (a prober's
/// requests on the same connection do not).
type Source = Arc<Mutex<Option<String>>>;

/// Copies `from` to `to` chunk by chunk while the pair is not cut, delaying chunks on a slow link;
/// the client-to-member direction (`learn`) also looks for the `X-Server-From` header until found.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    rules: Arc<Mutex<Rules>>,
    owner: String,
    src: Source,
    learn: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if learn && src.lock().expect("source lock").is_none() {
            // A header may straddle two chunks: look at the end of the last one too.
            tail.extend_from_slice(&buf[..n]);
            if let Some(id) = source(&tail) {
                *src.lock().expect("source lock") = Some(id);
            }
            let keep = tail.len().saturating_sub(256);
            tail.drain(..keep);
        }
        let (cut, slow) = {
            let r = rules.lock().expect("rules lock");
            let id = src.lock().expect("source lock").clone();
            match id.and_then(|id| r.ids.get(&id).cloned()) {
                Some(s) => (r.is_cut(&s, &owner), r.slow(&s, &owner)),
                None => (false, r.slow.get(&owner).copied().unwrap_or_default()),
            }
        };
        if cut {
            break;
        }
        let wait = {
            // The thread's generator, dropped before the await below.
            let mut rng = rand::rng();
            let mut wait = slow.delay
                + if slow.jitter.is_zero() {
                    Duration::ZERO
                } else {
                    slow.jitter.mul_f64(rng.random::<f64>())
                };
            if slow.loss > 0.0 && rng.random_bool(slow.loss.clamp(0.0, 1.0)) {
                wait += RETRANSMIT;
            }
            if let Some(bw) = slow.bandwidth.filter(|b| *b > 0) {
                wait += Duration::from_secs_f64(n as f64 / bw as f64);
            }
            wait
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// One connection to `owner`'s proxy, forwarded both ways to `target`.
async fn serve(client: TcpStream, target: String, rules: Arc<Mutex<Rules>>, owner: String) {
    let Ok(server) = TcpStream::connect(&target).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    let src: Source = Arc::new(Mutex::new(None));
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = tokio::spawn(pump(
        cr,
        sw,
        rules.clone(),
        owner.clone(),
        src.clone(),
        true,
    ));
    pump(sr, cw, rules, owner, src, false).await;
    up.abort();
}

impl Proxies {
    /// Starts one proxy per member: `(name, listen address, the member's own peer address)`.
    pub async fn start(members: &[(String, String, String)]) -> std::io::Result<Proxies> {
        let rules = Arc::new(Mutex::new(Rules::default()));
        let probes: Probes = Default::default();
        let mut tasks = vec![tokio::spawn(probe_links(
            members
                .iter()
                .map(|(name, listen, _)| (name.clone(), listen.clone()))
                .collect(),
            rules.clone(),
            probes.clone(),
        ))];
        for (name, listen, target) in members {
            let l = TcpListener::bind(listen).await?;
            let (rules, name, target) = (rules.clone(), name.clone(), target.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((c, _)) = l.accept().await else {
                        continue;
                    };
                    let _ = c.set_nodelay(true);
                    tokio::spawn(serve(c, target.clone(), rules.clone(), name.clone()));
                }
            }));
        }
        Ok(Proxies {
            rules,
            probes,
            tasks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_member_comes_from_rafthttp_headers() {
        let head = b"GET /raft/stream/msgappv2/8e9e05c52164694d HTTP/1.1\r\nHost: 127.0.0.1:1\r\nX-Server-From: 91bc3c398fb3c146\r\nX-Raft-To: 8e9e05c52164694d\r\n\r\n";
        assert_eq!(source(head).as_deref(), Some("91bc3c398fb3c146"));
        assert_eq!(source(b"GET / HTTP/1.1\r\n\r\n"), None);
    }

    #[test]
    fn a_partition_cuts_every_pair_across_and_slow_links_take_the_slower() {
        let mut r = Rules::default();
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        r.partition(&n(&["scen-0"]), &n(&["scen-1", "scen-2"]));
        assert!(r.is_cut("scen-1", "scen-0") && r.is_cut("scen-0", "scen-2"));
        assert!(!r.is_cut("scen-1", "scen-2"));
        r.slow.insert(
            "scen-2".into(),
            Slow {
                delay: Duration::from_millis(50),
                jitter: Duration::from_millis(10),
                ..Slow::default()
            },
        );
        assert_eq!(r.slow("scen-1", "scen-2").delay, Duration::from_millis(50));
        assert_eq!(r.slow("scen-0", "scen-1"), Slow::default());
    }
}
