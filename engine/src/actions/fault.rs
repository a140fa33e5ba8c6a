//! `fault::`: what goes wrong with etcd members, done to the members scen started — kill, restart,
//! pause, resume, slow fsync — and measured: who led before and after, how long the election took,
//! whether the cluster kept quorum, how long a member took to answer again.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{ms, Error, Result};
use crate::embedded::Shared;
use crate::target::Target;

/// What a fault did.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct FaultRecord {
    /// `kill`, `restart`, `pause`, `resume` or `slow_disk`.
    pub action: String,
    /// The member acted on.
    pub member: String,
    /// Whether it led the cluster before the fault.
    pub was_leader: bool,
    /// The leader before the fault (`null`: none).
    pub leader_before: Option<String>,
    /// The leader once the fault settled (`null`: none, e.g. quorum lost).
    pub leader_after: Option<String>,
    /// Killing or pausing the leader: ms until another member was leader (`null` otherwise, or when
    /// no leader could be elected).
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub election_ms: Option<f64>,
    /// Restart or resume: ms until the member answered `/health` again.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub ready_ms: Option<f64>,
    /// `slow_disk`: the added fsync delay, ms (0: removed).
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub delay_ms: Option<f64>,
    /// Members in the cluster.
    pub members: u64,
    /// Members running and not paused, after the fault.
    pub alive: u64,
    /// Whether the alive members still form a majority.
    pub quorum: bool,
    /// Wall time of the action, ms.
    #[schemars(with = "crate::measure::Ms")]
    pub duration_ms: f64,
    /// The fault as the clients of a load running across it saw it (filled once the run's steps
    /// have finished; `null`: no load ran across it, or this action starts no fault).
    pub outage: Option<ClientOutage>,
}

/// One member, as `fault::members()` reports it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct MemberState {
    /// Name.
    pub name: String,
    /// Client URL.
    pub client_url: String,
    /// Process id, while running.
    pub pid: Option<u32>,
    /// Running (paused counts).
    pub running: bool,
    /// Stopped with SIGSTOP.
    pub paused: bool,
    /// fsyncs are slowed.
    pub slowed: bool,
    /// Leads the cluster.
    pub leader: bool,
}

/// The record of `fault::members()`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct MembersRecord {
    /// Every member.
    pub members: Vec<MemberState>,
    /// The leader's name (`null`: none).
    pub leader: Option<String>,
    /// Members running and not paused.
    pub alive: u64,
    /// Whether they form a majority.
    pub quorum: bool,
}

/// The embedded cluster, or why faults cannot run here.
pub(crate) fn cluster(target: &Target) -> Result<&Shared> {
    target.embedded.as_ref().ok_or_else(|| {
        Error::Options(
            "fault:: acts only on members scen started: run without --endpoints (scen never injects faults into a cluster it did not start)"
                .into(),
        )
    })
}

/// (name, client URL, alive) of every member.
pub(crate) fn snapshot(c: &Shared) -> Vec<(String, String, bool)> {
    let mut e = c.lock().expect("embedded lock");
    (0..e.members().len())
        .map(|i| {
            let (m, _) = e.member_mut(i);
            let alive = m.is_running() && !m.is_paused();
            (m.name.clone(), m.client_url.clone(), alive)
        })
        .collect()
}

/// A client of the member at `url` alone, quick to give up (a member cut off or paused must not
/// hold a fault's measurement up): 500 ms to dial, `request` per request.
pub(crate) async fn member_client(
    target: &Target,
    url: &str,
    request: Duration,
) -> Option<etcd_client::Client> {
    let mut settings = target.settings.clone();
    settings.dial_timeout = Some(Duration::from_millis(500));
    settings.request_timeout = Some(request);
    settings.connect_to(&[url.to_string()]).await.ok()
}

/// The status of the member at `url`, within 700 ms.
pub(crate) async fn member_status(
    target: &Target,
    url: &str,
) -> Option<etcd_client::StatusResponse> {
    let mut c = member_client(target, url, Duration::from_millis(500)).await?;
    tokio::time::timeout(Duration::from_millis(700), c.status())
        .await
        .ok()?
        .ok()
}

/// Asks every alive member who leads: (leader name, whether all answering members agree).
async fn leader(target: &Target, members: &[(String, String, bool)]) -> Option<String> {
    let mut ids = Vec::new();
    let mut leader_id = None;
    for (name, url, alive) in members {
        if !*alive {
            continue;
        }
        let Some(s) = member_status(target, url).await else {
            continue;
        };
        if let Some(h) = s.header() {
            ids.push((h.member_id(), name.clone()));
        }
        if s.leader() != 0 {
            leader_id = Some(s.leader());
        }
    }
    let id = leader_id?;
    ids.into_iter().find(|(i, _)| *i == id).map(|(_, n)| n)
}

/// The index of the member `which` names: a name, `"leader"`, `"follower"`, `"stopped"` (not
/// running) or `"paused"`.
async fn pick(target: &Target, c: &Shared, which: &str) -> Result<usize> {
    let members = snapshot(c);
    let names: Vec<&str> = members.iter().map(|m| m.0.as_str()).collect();
    let found = match which {
        "leader" | "follower" => {
            let l = leader(target, &members).await;
            let Some(l) = l else {
                return Err(Error::Fault(format!(
                    "no member leads the cluster now, so `{which}` names none; name a member ({})",
                    names.join(", ")
                )));
            };
            members.iter().position(|(n, _, alive)| {
                if which == "leader" {
                    *n == l
                } else {
                    *n != l && *alive
                }
            })
        }
        "stopped" => {
            let mut e = c.lock().expect("embedded lock");
            (0..members.len()).find(|&i| !e.member_mut(i).0.is_running())
        }
        "paused" => {
            let e = c.lock().expect("embedded lock");
            e.members().iter().position(|m| m.is_paused())
        }
        name => members.iter().position(|m| m.0 == name),
    };
    found.ok_or_else(|| {
        Error::Fault(format!(
            "no member matches `{which}`: use a member name ({}), \"leader\", \"follower\", \"stopped\" or \"paused\"",
            names.join(", ")
        ))
    })
}

/// Polls until a member other than `old` leads (`None` after `limit`).
async fn wait_new_leader(
    target: &Target,
    c: &Shared,
    old: Option<&str>,
    limit: Duration,
) -> Option<(String, Duration)> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        let members = snapshot(c);
        if let Some(l) = leader(target, &members).await {
            if Some(l.as_str()) != old {
                return Some((l, t0.elapsed()));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Polls member `i`'s `/health` until it answers 200.
async fn wait_healthy(c: &Shared, i: usize, limit: Duration) -> Result<Duration> {
    let url = format!(
        "{}/health",
        c.lock().expect("embedded lock").members()[i].metrics_url
    );
    let t0 = Instant::now();
    loop {
        if crate::embedded::http_get_ok(&url).await {
            return Ok(t0.elapsed());
        }
        let exited = {
            let mut e = c.lock().expect("embedded lock");
            let (m, _) = e.member_mut(i);
            (!m.is_running()).then(|| m.log_tail(5))
        };
        if let Some(log) = exited {
            return Err(Error::Fault(format!(
                "member {i} exited while coming back; its log ends:\n{log}"
            )));
        }
        if t0.elapsed() > limit {
            return Err(Error::Fault(format!(
                "member {i} did not answer /health within {limit:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The fault `action` on the member `which` names.
pub async fn fault(
    target: &Target,
    action: &str,
    which: &str,
    delay: Option<Duration>,
) -> Result<FaultRecord> {
    let c = cluster(target)?;
    let t0 = Instant::now();
    let i = pick(target, c, which).await?;
    let before = snapshot(c);
    let name = before[i].0.clone();
    let leader_before = leader(target, &before).await;
    let was_leader = leader_before.as_deref() == Some(name.as_str());
    {
        let mut e = c.lock().expect("embedded lock");
        let (m, spawner) = e.member_mut(i);
        match action {
            "kill" => m.kill(),
            "pause" => m.pause(),
            "resume" => m.resume(),
            "restart" => m.spawn(spawner).map_err(|e| Error::Fault(e.to_string()))?,
            "slow_disk" => match delay {
                Some(d) if !d.is_zero() => m
                    .slow_fsync(spawner, d)
                    .map_err(|e| Error::Fault(e.to_string()))?,
                _ => m.fast_fsync(),
            },
            other => return Err(Error::Options(format!("unknown fault `{other}`"))),
        }
    }
    let after = snapshot(c);
    let n = after.len() as u64;
    let alive = after.iter().filter(|m| m.2).count() as u64;
    let quorum = alive > n / 2;
    let mut rec = FaultRecord {
        action: action.into(),
        member: name,
        was_leader,
        leader_before: leader_before.clone(),
        leader_after: None,
        election_ms: None,
        ready_ms: None,
        delay_ms: (action == "slow_disk").then(|| ms(delay.unwrap_or_default())),
        members: n,
        alive,
        quorum,
        duration_ms: 0.0,
        outage: None,
    };
    match action {
        "kill" | "pause" if was_leader && quorum => {
            if let Some((l, took)) =
                wait_new_leader(target, c, leader_before.as_deref(), Duration::from_secs(30)).await
            {
                rec.leader_after = Some(l);
                rec.election_ms = Some(ms(took));
            }
        }
        "restart" | "resume" => {
            rec.ready_ms = Some(ms(wait_healthy(c, i, Duration::from_secs(30)).await?));
            rec.leader_after = leader(target, &snapshot(c)).await;
        }
        _ if quorum => rec.leader_after = leader(target, &after).await,
        _ => {}
    }
    rec.duration_ms = ms(t0.elapsed());
    Ok(rec)
}

/// Every member's state and the leader.
pub async fn members(target: &Target) -> Result<MembersRecord> {
    let c = cluster(target)?;
    let snap = snapshot(c);
    let leader = leader(target, &snap).await;
    let members = {
        let mut e = c.lock().expect("embedded lock");
        (0..snap.len())
            .map(|i| {
                let (m, _) = e.member_mut(i);
                MemberState {
                    name: m.name.clone(),
                    client_url: m.client_url.clone(),
                    pid: m.pid(),
                    running: m.is_running(),
                    paused: m.is_paused(),
                    slowed: m.is_slowed(),
                    leader: leader.as_deref() == Some(m.name.as_str()),
                }
            })
            .collect::<Vec<_>>()
    };
    let alive = snap.iter().filter(|m| m.2).count() as u64;
    Ok(MembersRecord {
        quorum: alive > snap.len() as u64 / 2,
        members,
        leader,
        alive,
    })
}

/// A fault's client-visible outage, measured on one load's per-second series (filled in after
/// the steps by `report::outage`, which says how).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ClientOutage {
    /// The step whose requests measured it (the busiest load running when the fault began).
    pub load: String,
    /// From the fault until the load completed ≥ 90% of its intended rate with p99 within twice
    /// its pre-fault level, held for 3 s (`null`: not back before the load ended). Resolution:
    /// one second, the series' bin.
    #[schemars(with = "Option<crate::measure::Ms>", extend("x-better" = "lower"))]
    pub outage_ms: Option<f64>,
    /// From the fault to the end of the step that undid it (`heal`, `restart`, `resume`,
    /// `slow_disk` with no delay); `null`: not undone while the load ran.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub fault_ms: Option<f64>,
    /// The window measured: the outage, or up to the load's end when it did not recover.
    #[schemars(with = "crate::measure::Ms")]
    pub window_ms: f64,
    /// Failed requests completed in the window.
    #[schemars(extend("x-better" = "lower"))]
    pub errors: u64,
    /// Successful requests completed in the window.
    pub completed: u64,
    /// Successful requests per second in the window (`null`: an empty window, no outage).
    #[schemars(with = "Option<crate::measure::PerSecond>", extend("x-better" = "higher"))]
    pub degraded_throughput: Option<f64>,
    /// Completed over intended in the window (0..1; `null`: an empty window).
    #[schemars(with = "Option<crate::measure::Ratio>", extend("x-better" = "higher"))]
    pub throughput_ratio: Option<f64>,
    /// The slowest second's p99 in the window (`null`: nothing succeeded in it).
    #[schemars(with = "Option<crate::measure::Ms>", extend("x-better" = "lower"))]
    pub worst_p99_ms: Option<f64>,
    /// The intended rate recovery is measured against: the load's target rate (open loop) or its
    /// median completed rate before the fault (closed loop).
    #[schemars(with = "crate::measure::PerSecond")]
    pub intended_rate: f64,
    /// `target_rate` or `pre_fault`: where `intended_rate` comes from.
    pub intended_from: String,
    /// The highest per-second p99 before the fault (its first second, the warm-up, left out
    /// when there are others): p99 must be back within twice it (`null`: no second before the
    /// fault; recovery then reads the rate alone).
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub pre_fault_p99_ms: Option<f64>,
    /// The series' bin, the resolution of `outage_ms` and `window_ms`.
    #[schemars(with = "crate::measure::Ms")]
    pub resolution_ms: f64,
}
