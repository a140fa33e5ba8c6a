//! `fault::partition`, `fault::heal`, `fault::link`: network faults between the members scen
//! started, through the peer proxies it owns (`embedded_etcd(#{ network_faults: true })`), and
//! measured: who led before, how long the majority side took to elect a leader, when the isolated
//! leader stepped down, raft terms before and after, and after a heal how long until every
//! member agrees on one leader again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::fault::{cluster, member_client, member_status, snapshot};
use super::{ms, Error, Result};
use crate::embedded::proxy::{Rules, Slow};
use crate::target::Target;

/// What a network fault did.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct NetworkRecord {
    /// `partition`, `heal` or `link`.
    pub action: String,
    /// Partition: the two sides, by member name.
    pub sides: Vec<Vec<String>>,
    /// Link: the member whose traffic is slowed.
    pub member: Option<String>,
    /// The leader before.
    pub leader_before: Option<String>,
    /// The leader once it settled (on a partition, the majority side's).
    pub leader_after: Option<String>,
    /// Partition: ms until the majority side had a leader of its own (`null`: it already had
    /// one, or none was elected within the limit).
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub election_ms: Option<f64>,
    /// Partition of the leader: ms until the isolated leader stopped calling itself leader.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub stepped_down_ms: Option<f64>,
    /// Heal: ms until every member agreed on one leader and term.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub recovered_ms: Option<f64>,
    /// Partition: a write sent through each member once the partition settled (1 s to answer),
    /// by side: what clients of that side see.
    pub writes_by_side: Vec<SideWrites>,
    /// Raft term of each member before.
    pub terms_before: BTreeMap<String, u64>,
    /// Raft term of each member after.
    pub terms_after: BTreeMap<String, u64>,
    /// Link: the added delay and jitter, ms.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub delay_ms: Option<f64>,
    /// Link: the jitter, ms.
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub jitter_ms: Option<f64>,
    /// Link: the share of packets lost.
    #[schemars(with = "Option<crate::measure::Ratio>")]
    pub loss: Option<f64>,
    /// Link: the bandwidth each way, bytes per second.
    #[schemars(with = "Option<crate::measure::Bytes>")]
    pub bandwidth: Option<f64>,
    /// Wall time of the action, ms.
    #[schemars(with = "crate::measure::Ms")]
    pub duration_ms: f64,
    /// The fault as the clients of a load running across it saw it (filled once the run's steps
    /// have finished; `null`: no load ran across it, or this action starts no fault).
    pub outage: Option<super::fault::ClientOutage>,
}

/// Writes through the members of one side of a partition.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct SideWrites {
    /// The side's members.
    pub members: Vec<String>,
    /// Writes that succeeded.
    pub ok: u64,
    /// Writes that failed or timed out.
    #[schemars(extend("x-better" = "lower"))]
    pub failed: u64,
}

/// A write through `member` alone, under the run's prefix, within 1 s: whether it succeeded.
async fn write_through(target: &Target, url: &str, member: &str) -> bool {
    let Some(client) = member_client(target, url, Duration::from_secs(1)).await else {
        return false;
    };
    let mut kv = crate::target::kv(&client);
    let key = format!("{}fault/partition/{member}", target.info.prefix);
    matches!(
        tokio::time::timeout(Duration::from_millis(1500), kv.put(key, "probe", None)).await,
        Ok(Ok(_))
    )
}

/// Options of `fault::link`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkOptions {
    /// The member whose peer traffic (both ways, with every other member) is slowed.
    pub to: String,
    /// Fixed delay per chunk (`"50ms"`; `"0ms"` removes it).
    pub delay: String,
    /// Uniform extra delay, up to this (`"10ms"`).
    pub jitter: Option<String>,
    /// Share of packets lost (`"1%"`): each costs the stream a 200 ms retransmission.
    pub loss: Option<String>,
    /// Bandwidth each way (`"1MiB"` per second).
    pub bandwidth: Option<String>,
}

impl LinkOptions {
    /// The link these options describe: durations, a share of loss, a bandwidth, all checked.
    fn slow(&self) -> Result<Slow> {
        let dur = |t: &str, what: &str| {
            crate::units::parse_duration(t).map_err(|e| Error::Options(format!("{what}: {e}")))
        };
        Ok(Slow {
            delay: dur(&self.delay, "delay")?,
            jitter: self
                .jitter
                .as_deref()
                .map(|j| dur(j, "jitter"))
                .transpose()?
                .unwrap_or_default(),
            loss: match &self.loss {
                None => 0.0,
                Some(l) => match crate::units::parse_quantity(l) {
                    Ok(q)
                        if q.dimension == crate::units::Dimension::Ratio
                            && (0.0..=1.0).contains(&q.value) =>
                    {
                        q.value
                    }
                    _ => {
                        return Err(Error::Options(format!(
                            "loss `{l}`: a share of packets such as 1%"
                        )))
                    }
                },
            },
            bandwidth: self
                .bandwidth
                .as_deref()
                .map(|b| {
                    crate::units::parse_size(b).map_err(|e| {
                        Error::Options(format!(
                            "bandwidth `{b}`: {e} (bytes per second, such as 1MiB)"
                        ))
                    })
                })
                .transpose()?,
        })
    }
}

impl crate::actions::CheckOptions for LinkOptions {
    fn check(&self) -> Result<()> {
        self.slow().map(|_| ())
    }
}

/// One member's view: its id, who it thinks leads, its raft term.
#[derive(Debug, Clone, Copy)]
struct View {
    id: u64,
    leader: u64,
    term: u64,
}

/// Every member's status (clients still reach every member), by name.
async fn views(target: &Target) -> Result<BTreeMap<String, Option<View>>> {
    let c = cluster(target)?;
    let mut out = BTreeMap::new();
    for (name, url, alive) in snapshot(c) {
        if !alive {
            out.insert(name, None);
            continue;
        }
        let view = member_status(target, &url).await.and_then(|s| {
            s.header().map(|h| View {
                id: h.member_id(),
                leader: s.leader(),
                term: s.raft_term(),
            })
        });
        out.insert(name, view);
    }
    Ok(out)
}

fn name_of(v: &BTreeMap<String, Option<View>>, id: u64) -> Option<String> {
    v.iter()
        .find(|(_, x)| x.is_some_and(|x| x.id == id))
        .map(|(n, _)| n.clone())
}

fn terms(v: &BTreeMap<String, Option<View>>) -> BTreeMap<String, u64> {
    v.iter()
        .filter_map(|(n, x)| Some((n.clone(), x.as_ref()?.term)))
        .collect()
}

/// The leader most members that answer name.
fn leader_of(v: &BTreeMap<String, Option<View>>) -> Option<String> {
    let mut count: BTreeMap<u64, usize> = BTreeMap::new();
    for x in v.values().flatten().filter(|x| x.leader != 0) {
        *count.entry(x.leader).or_default() += 1;
    }
    let (id, _) = count.into_iter().max_by_key(|(_, n)| *n)?;
    name_of(v, id)
}

/// The proxies' rules, with member ids learned from their status.
async fn rules(
    target: &Target,
) -> Result<(
    std::sync::Arc<std::sync::Mutex<Rules>>,
    BTreeMap<String, Option<View>>,
)> {
    let c = cluster(target)?;
    let Some(rules) = c.lock().expect("embedded lock").network() else {
        return Err(Error::Options(
            "network faults need the peer proxies: declare embedded_etcd(#{ members: 3, network_faults: true })"
                .into(),
        ));
    };
    let v = views(target).await?;
    {
        let mut r = rules.lock().expect("rules lock");
        for (name, x) in &v {
            if let Some(x) = x {
                r.ids.insert(format!("{:x}", x.id), name.clone());
            }
        }
    }
    Ok((rules, v))
}

/// Member names a side names: names, `"leader"`, `"followers"`/`"others"` (every member not on
/// the other side).
fn resolve(
    side: &[String],
    other: &[String],
    v: &BTreeMap<String, Option<View>>,
) -> Result<Vec<String>> {
    let names: Vec<String> = v.keys().cloned().collect();
    let leader = leader_of(v);
    let mut out = Vec::new();
    for s in side {
        match s.as_str() {
            "leader" => out.push(leader.clone().ok_or_else(|| {
                Error::Fault("no member leads now, so \"leader\" names none".into())
            })?),
            "others" | "followers" => {
                let mut excluded = Vec::new();
                for o in other {
                    match o.as_str() {
                        "leader" => excluded.extend(leader.clone()),
                        n => excluded.push(n.to_string()),
                    }
                }
                out.extend(names.iter().filter(|n| !excluded.contains(n)).cloned());
            }
            n if names.iter().any(|x| x == n) => out.push(n.to_string()),
            n => {
                return Err(Error::Fault(format!(
                    "no member `{n}`: use a member name ({}), \"leader\" or \"others\"",
                    names.join(", ")
                )))
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn blank(action: &str) -> NetworkRecord {
    NetworkRecord {
        action: action.into(),
        sides: Vec::new(),
        member: None,
        leader_before: None,
        leader_after: None,
        election_ms: None,
        stepped_down_ms: None,
        recovered_ms: None,
        writes_by_side: Vec::new(),
        terms_before: BTreeMap::new(),
        terms_after: BTreeMap::new(),
        delay_ms: None,
        jitter_ms: None,
        loss: None,
        bandwidth: None,
        duration_ms: 0.0,
        outage: None,
    }
}

/// Cuts the peer traffic between `one` and `other`; waits (15 s at most) for the majority side
/// to have a leader and an isolated leader to step down.
pub async fn partition(target: &Target, one: &[String], other: &[String]) -> Result<NetworkRecord> {
    let t0 = Instant::now();
    let (rules, before) = rules(target).await?;
    let a = resolve(one, other, &before)?;
    let b = resolve(other, one, &before)?;
    if a.is_empty() || b.is_empty() || a.iter().any(|x| b.contains(x)) {
        return Err(Error::Fault(format!(
            "a partition needs two sides with no member in both: {a:?} and {b:?}"
        )));
    }
    let leader_before = leader_of(&before);
    rules.lock().expect("rules lock").partition(&a, &b);
    let n = before.len();
    let majority = [&a, &b].into_iter().find(|s| s.len() * 2 > n).cloned();
    let minority_leader = leader_before
        .clone()
        .filter(|l| majority.as_ref().is_some_and(|m| !m.contains(l)));
    let mut rec = blank("partition");
    rec.sides = vec![a.clone(), b.clone()];
    rec.leader_before = leader_before.clone();
    rec.terms_before = terms(&before);
    let start = Instant::now();
    let mut after = before.clone();
    while start.elapsed() < Duration::from_secs(15) {
        after = views(target).await?;
        if let Some(m) = &majority {
            if rec.election_ms.is_none() {
                // A majority member names a leader on its own side, and that leader's own view
                // (polled at the same moment, maybe a little earlier) says it leads: its term is
                // the new one.
                let led = m.iter().find_map(|x| {
                    let v = after.get(x).copied().flatten()?;
                    let l = name_of(&after, v.leader)?;
                    let own = after.get(&l).copied().flatten()?;
                    (m.contains(&l) && own.leader == own.id).then_some(l)
                });
                if let Some(l) = led {
                    rec.leader_after = Some(l);
                    if minority_leader.is_some() {
                        rec.election_ms = Some(ms(start.elapsed()));
                    }
                }
            }
        }
        if let Some(old) = &minority_leader {
            if rec.stepped_down_ms.is_none() {
                let v = after.get(old).copied().flatten();
                if v.is_none_or(|v| v.leader != v.id) {
                    rec.stepped_down_ms = Some(ms(start.elapsed()));
                }
            }
        }
        let settled = (majority.is_none() || rec.leader_after.is_some())
            && (minority_leader.is_none() || rec.stepped_down_ms.is_some());
        if settled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rec.terms_after = terms(&after);
    // What clients of each side see: one write through each member.
    let urls: BTreeMap<String, String> = snapshot(cluster(target)?)
        .into_iter()
        .map(|(n, u, _)| (n, u))
        .collect();
    for side in [&a, &b] {
        let mut w = SideWrites {
            members: side.clone(),
            ok: 0,
            failed: 0,
        };
        for m in side {
            let url = urls.get(m).cloned().unwrap_or_default();
            if write_through(target, &url, m).await {
                w.ok += 1;
            } else {
                w.failed += 1;
            }
        }
        rec.writes_by_side.push(w);
    }
    rec.duration_ms = ms(t0.elapsed());
    Ok(rec)
}

/// Removes every cut and slow link; waits (15 s at most) until every member agrees on one
/// leader and term.
pub async fn heal(target: &Target) -> Result<NetworkRecord> {
    let t0 = Instant::now();
    let (rules, before) = rules(target).await?;
    {
        let mut r = rules.lock().expect("rules lock");
        r.cut.clear();
        r.slow.clear();
    }
    let mut rec = blank("heal");
    rec.leader_before = leader_of(&before);
    rec.terms_before = terms(&before);
    let start = Instant::now();
    let mut after = before;
    while start.elapsed() < Duration::from_secs(15) {
        after = views(target).await?;
        let answering: Vec<View> = after.values().flatten().copied().collect();
        let agreed = !answering.is_empty()
            && answering.len() == after.values().filter(|x| x.is_some()).count()
            && answering.iter().all(|v| {
                v.leader != 0 && v.leader == answering[0].leader && v.term == answering[0].term
            });
        if agreed && answering.len() == after.len() {
            rec.recovered_ms = Some(ms(start.elapsed()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rec.leader_after = leader_of(&after);
    rec.terms_after = terms(&after);
    rec.duration_ms = ms(t0.elapsed());
    Ok(rec)
}

/// Slows every peer connection to or from `opts.to` by `delay` plus up to `jitter`.
pub async fn link(target: &Target, opts: &LinkOptions) -> Result<NetworkRecord> {
    let t0 = Instant::now();
    let (rules, before) = rules(target).await?;
    let member = resolve(std::slice::from_ref(&opts.to), &[], &before)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Fault(format!("no member `{}`", opts.to)))?;
    let slow = opts.slow()?;
    {
        let mut r = rules.lock().expect("rules lock");
        if slow == Slow::default() {
            r.slow.remove(&member);
        } else {
            r.slow.insert(member.clone(), slow);
        }
    }
    let mut rec = blank("link");
    rec.member = Some(member);
    rec.leader_before = leader_of(&before);
    rec.leader_after = rec.leader_before.clone();
    rec.terms_before = terms(&before);
    rec.terms_after = rec.terms_before.clone();
    rec.delay_ms = Some(ms(slow.delay));
    rec.jitter_ms = Some(ms(slow.jitter));
    rec.loss = Some(slow.loss);
    rec.bandwidth = slow.bandwidth.map(|b| b as f64);
    rec.duration_ms = ms(t0.elapsed());
    Ok(rec)
}
