//! One book per load loop: a loop tells its [`Book`] each request's outcome once — [`Book::ok`] or
//! [`Book::fail`] — and from that one event the book keeps the operation's counts and latency
//! distribution, the failures by code and kind with the first messages, the per-second series,
//! and the step's live totals. A loop's own extras (conflicts, bytes) stay beside it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::latency::Recorder;
use super::totals::{OpTotals, SharedFeed};
use crate::exit::{ErrorKind, FailCode};

/// How many failure messages a book keeps (the first ones): enough to say what went wrong.
pub const MESSAGES: usize = 5;

/// One operation's tally: successes with their latency, and failures.
#[derive(Debug, Default, Clone)]
pub struct OpBook {
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Latency of the successful ones.
    pub latency: Recorder,
}

impl OpBook {
    /// Adds another tally of the same operation (or second) to this one.
    fn add(&mut self, other: &OpBook) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.latency.merge(&other.latency);
    }
}

/// One second of a load loop's per-second series: what a book folds, and what a load's record
/// keeps (`etcd::stress`, `cluster::heartbeat`). The one per-second type.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Second {
    /// Seconds since the load started.
    pub t: u64,
    /// Successful requests in this second (completed in it, or due in it for a loop at intended
    /// times).
    pub ok: u64,
    /// Failed requests in this second.
    pub errors: u64,
    /// Median latency of this second's successes (`null`: none succeeded). Absent in reports
    /// of scen before 2026-12-07.
    #[serde(default)]
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub p50: Option<f64>,
    /// 99th percentile latency of this second's successes (`null`: none succeeded).
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub p99: Option<f64>,
    /// Slowest successful request of this second (`null`: none succeeded).
    #[schemars(with = "Option<crate::measure::Ms>")]
    pub max: Option<f64>,
}

/// The book of one load loop, by operation `K`.
#[derive(Debug)]
pub struct Book<K: Ord> {
    ops: BTreeMap<K, OpBook>,
    codes: BTreeMap<String, u64>,
    kinds: BTreeMap<ErrorKind, u64>,
    messages: Vec<String>,
    /// Seconds still receiving results, folded into `series` once they cannot change.
    open: BTreeMap<u64, OpBook>,
    series: Vec<Second>,
    live: BTreeMap<K, Arc<Mutex<OpTotals>>>,
    /// Buffered live totals (see [`Book::buffered`]): added to `live` when seconds are taken.
    pending_live: Option<BTreeMap<K, OpTotals>>,
}

impl<K: Ord> Default for Book<K> {
    fn default() -> Self {
        Book {
            ops: BTreeMap::new(),
            codes: BTreeMap::new(),
            kinds: BTreeMap::new(),
            messages: Vec::new(),
            open: BTreeMap::new(),
            series: Vec::new(),
            live: BTreeMap::new(),
            pending_live: None,
        }
    }
}

impl<K: Ord + Clone> Book<K> {
    /// An empty book whose operations `ops` (key, live name) also feed the step's live totals,
    /// when the run has live outputs.
    pub fn new<'a>(feed: Option<&SharedFeed>, ops: impl IntoIterator<Item = (K, &'a str)>) -> Self {
        let mut book = Book::default();
        if let Some(feed) = feed {
            book.live = ops
                .into_iter()
                .map(|(k, name)| (k, feed.op(name)))
                .collect();
        }
        book
    }

    /// As [`Book::new`], for a loop of many workers each with a book of its own: the live totals
    /// gather in the book and reach the shared ones when its seconds are taken
    /// ([`Book::take_open`]), so no request takes a lock shared with the other workers.
    pub fn buffered<'a>(
        feed: Option<&SharedFeed>,
        ops: impl IntoIterator<Item = (K, &'a str)>,
    ) -> Self {
        let mut book = Book::new(feed, ops);
        if !book.live.is_empty() {
            book.pending_live = Some(BTreeMap::new());
        }
        book
    }

    /// The live totals an event of `op` goes to: the book's buffer, or the shared ones.
    fn with_live(&mut self, op: &K, f: impl FnOnce(&mut OpTotals)) {
        match &mut self.pending_live {
            Some(pending) if self.live.contains_key(op) => {
                f(pending.entry(op.clone()).or_default())
            }
            _ => {
                if let Some(live) = self.live.get(op) {
                    f(&mut live.lock().expect("live lock"))
                }
            }
        }
    }

    /// Records a success of `op`, due in second `sec` of the loop, that took `took`.
    pub fn ok(&mut self, op: K, sec: u64, took: Duration) {
        self.with_live(&op, |t| t.ok(took));
        let o = self.ops.entry(op).or_default();
        o.ok += 1;
        o.latency.record(took);
        let s = self.open.entry(sec).or_default();
        s.ok += 1;
        s.latency.record(took);
    }

    /// Records a failure of `op`, due in second `sec`, with its code, its kind (what decides the
    /// exit code when every request failed) and its message.
    pub fn fail(&mut self, op: K, sec: u64, code: &FailCode, kind: ErrorKind, message: &str) {
        let name = code.name();
        self.with_live(&op, |t| t.error(&name));
        self.ops.entry(op).or_default().failed += 1;
        self.open.entry(sec).or_default().failed += 1;
        *self.codes.entry(name).or_default() += 1;
        *self.kinds.entry(kind).or_default() += 1;
        if self.messages.len() < MESSAGES {
            self.messages.push(message.to_string());
        }
    }

    /// Whether a failure's message would still be kept (fewer than [`MESSAGES`] so far): a hot
    /// loop formats one only then.
    pub fn wants_message(&self) -> bool {
        self.messages.len() < MESSAGES
    }

    /// Marks second `sec` as one in which requests were due, so the series has it even when
    /// none was made (a write to an adopted object is due, never made).
    pub fn due(&mut self, sec: u64) {
        self.open.entry(sec).or_default();
    }

    /// Closes the seconds before `before` into the series (they can get no more results).
    pub fn fold(&mut self, before: u64) {
        while let Some(entry) = self.open.first_entry() {
            if *entry.key() >= before {
                break;
            }
            let (t, s) = entry.remove_entry();
            let summary = s.latency.summary();
            let second = Second {
                t,
                ok: s.ok,
                errors: s.failed,
                p50: summary.p50,
                p99: summary.p99,
                max: summary.max,
            };
            // A result for a second already closed (a loop that folded too early) adds to that
            // second's counts; its p99 stays the one of the results in when it closed. Never a
            // second entry for one second.
            match self.series.binary_search_by_key(&t, |x| x.t) {
                Ok(i) => {
                    let x = &mut self.series[i];
                    x.ok += second.ok;
                    x.errors += second.errors;
                    x.p50 = x.p50.or(second.p50);
                    x.p99 = x.p99.or(second.p99);
                    x.max = match (x.max, second.max) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                }
                Err(i) => self.series.insert(i, second),
            }
        }
    }

    /// Records that a request of `op` due in second `sec` was never sent (the loop ended first),
    /// having waited at least `waited`: it enters the operation's latency distribution with that
    /// lower bound, as an open loop counts its dropped requests, is neither a success nor a
    /// failure, and its second is in the series (with nothing done in it, when nothing was).
    pub fn unsent(&mut self, op: K, sec: u64, waited: Duration) {
        self.ops.entry(op).or_default().latency.record(waited);
        self.due(sec);
    }

    /// Takes the seconds before `before` out of the book, still open (mergeable), for a loop
    /// whose workers gather their seconds in one shared series; buffered live totals reach the
    /// shared ones.
    pub fn take_open(&mut self, before: u64) -> Vec<(u64, OpBook)> {
        self.flush_live();
        let later = self.open.split_off(&before);
        std::mem::replace(&mut self.open, later)
            .into_iter()
            .collect()
    }

    /// Adds the buffered live totals to the shared ones.
    fn flush_live(&mut self) {
        if let Some(pending) = &mut self.pending_live {
            for (op, delta) in pending.iter_mut() {
                if let (false, Some(total)) = (delta.is_empty(), self.live.get(op)) {
                    total.lock().expect("live lock").absorb(delta);
                }
            }
        }
    }

    /// Adds a worker's book to this one: loops whose workers each keep a book of their own (no
    /// shared lock per request) merge them when the workers end. Their seconds must still be
    /// open (a closed second's p99 cannot be merged); messages stay the first [`MESSAGES`].
    pub fn merge(&mut self, mut other: Book<K>) {
        other.flush_live();
        debug_assert!(
            self.series.is_empty() && other.series.is_empty(),
            "books merge before their seconds are closed"
        );
        for (op, o) in other.ops {
            self.ops.entry(op).or_default().add(&o);
        }
        for (t, o) in other.open {
            self.open.entry(t).or_default().add(&o);
        }
        for (code, n) in other.codes {
            *self.codes.entry(code).or_default() += n;
        }
        for (kind, n) in other.kinds {
            *self.kinds.entry(kind).or_default() += n;
        }
        let room = MESSAGES.saturating_sub(self.messages.len());
        self.messages.extend(other.messages.into_iter().take(room));
        for (op, live) in other.live {
            self.live.entry(op).or_insert(live);
        }
    }

    /// The tally of `op` (empty when it never ran).
    pub fn op(&self, op: &K) -> OpBook {
        self.ops.get(op).cloned().unwrap_or_default()
    }

    /// Every operation's tally.
    pub fn ops(&self) -> &BTreeMap<K, OpBook> {
        &self.ops
    }

    /// Successes over all operations.
    pub fn total_ok(&self) -> u64 {
        self.ops.values().map(|o| o.ok).sum()
    }

    /// Failures over all operations.
    pub fn total_failed(&self) -> u64 {
        self.ops.values().map(|o| o.failed).sum()
    }

    /// The kind most failures had (`None`: nothing failed).
    pub fn main_kind(&self) -> Option<ErrorKind> {
        self.kinds.iter().max_by_key(|(_, n)| **n).map(|(k, _)| *k)
    }

    /// The finished seconds so far.
    pub fn series(&self) -> &[Second] {
        &self.series
    }

    /// Failures by code, the first messages and the series, closing every second still open:
    /// what a record keeps once the loop has ended.
    pub fn finish(mut self) -> Finished<K> {
        self.fold(u64::MAX);
        Finished {
            ops: self.ops,
            codes: self.codes,
            kinds: self.kinds,
            messages: self.messages,
            series: self.series,
        }
    }
}

/// What a book holds once its loop ended.
#[derive(Debug)]
pub struct Finished<K: Ord> {
    /// Every operation's tally.
    pub ops: BTreeMap<K, OpBook>,
    /// Failures by code name.
    pub codes: BTreeMap<String, u64>,
    /// Failures by kind.
    pub kinds: BTreeMap<ErrorKind, u64>,
    /// The first failure messages.
    pub messages: Vec<String>,
    /// Every second, in order.
    pub series: Vec<Second>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Feed(Mutex<BTreeMap<String, Arc<Mutex<OpTotals>>>>);

    impl super::super::totals::LiveFeed for Feed {
        fn op(&self, op: &str) -> Arc<Mutex<OpTotals>> {
            self.0
                .lock()
                .unwrap()
                .entry(op.to_string())
                .or_default()
                .clone()
        }
        fn intended_rate(&self, _: Option<f64>) {}
    }

    #[test]
    fn each_event_feeds_the_tally_the_series_the_codes_and_the_live_totals_once() {
        let feed: SharedFeed = Arc::new(Feed(Mutex::new(BTreeMap::new())));
        let mut book = Book::new(Some(&feed), [(0u8, "leases"), (1u8, "status")]);
        for ms in 1..=10u64 {
            book.ok(0, ms / 6, Duration::from_millis(ms));
        }
        for i in 0..7u64 {
            book.fail(
                1,
                1,
                &FailCode::Grpc(tonic::Code::Unavailable),
                ErrorKind::ConnectionLost,
                &format!("gone {i}"),
            );
        }
        book.fail(1, 2, &FailCode::NotOwned, ErrorKind::Script, "not ours");
        assert_eq!((book.total_ok(), book.total_failed()), (10, 8));
        assert_eq!(book.op(&0).latency.summary().count, 10);
        assert_eq!(book.op(&1).failed, 8);
        assert_eq!(book.main_kind(), Some(ErrorKind::ConnectionLost));
        book.fold(1);
        assert_eq!(book.series().len(), 1, "only second 0 is closed");
        assert_eq!(book.series()[0].ok, 5);
        let live = feed.op("leases");
        assert_eq!(
            live.lock().unwrap().ok,
            10,
            "live totals fed from the same event"
        );
        assert_eq!(feed.op("status").lock().unwrap().errors["Unavailable"], 7);
        let done = book.finish();
        assert_eq!(done.codes["Unavailable"], 7);
        assert_eq!(done.codes["NotOwned"], 1);
        assert_eq!(done.messages.len(), MESSAGES, "the first messages only");
        let series: Vec<(u64, u64, u64)> =
            done.series.iter().map(|s| (s.t, s.ok, s.errors)).collect();
        assert_eq!(series, [(0, 5, 0), (1, 5, 7), (2, 0, 1)]);
        assert!(done.series[2].p99.is_none(), "no success: no p99, never 0");
    }

    #[test]
    fn workers_books_merge_into_the_same_figures_as_one_book() {
        let (mut one, mut a, mut b) = (Book::default(), Book::default(), Book::default());
        for i in 0..40u64 {
            let took = Duration::from_micros(100 + 37 * i);
            one.ok("put", i / 10, took);
            if i % 2 == 0 {
                a.ok("put", i / 10, took)
            } else {
                b.ok("put", i / 10, took)
            }
        }
        let transport = |book: &mut Book<&str>, i: u64| {
            book.fail(
                "put",
                3,
                &FailCode::Transport,
                ErrorKind::ConnectionLost,
                &format!("{i}"),
            );
        };
        for i in 0..2 {
            transport(&mut one, i);
        }
        transport(&mut a, 0);
        transport(&mut b, 1);
        a.merge(b);
        let (one, merged) = (one.finish(), a.finish());
        let put = |f: &Finished<&str>| {
            let o = &f.ops["put"];
            (o.ok, o.failed, o.latency.summary().p99)
        };
        assert_eq!(put(&one), put(&merged));
        assert_eq!(one.codes, merged.codes);
        let secs = |f: &Finished<&str>| f.series.clone();
        assert_eq!(secs(&one), secs(&merged));
    }

    #[test]
    fn a_buffered_book_feeds_the_live_totals_when_its_seconds_are_taken() {
        let feed: SharedFeed = Arc::new(Feed(Mutex::new(BTreeMap::new())));
        let mut book = Book::buffered(Some(&feed), [("put", "put")]);
        for i in 0..6u64 {
            book.ok("put", i / 3, Duration::from_millis(1 + i));
        }
        book.fail(
            "put",
            1,
            &FailCode::Timeout,
            ErrorKind::RequestTimeout,
            "late",
        );
        let live = feed.op("put");
        assert_eq!(live.lock().unwrap().ok, 0, "no shared lock per request");
        let taken = book.take_open(1);
        let got: Vec<(u64, u64, u64)> = taken.iter().map(|(t, o)| (*t, o.ok, o.failed)).collect();
        assert_eq!(got, [(0, 3, 0)], "only the seconds before the bound");
        assert_eq!(live.lock().unwrap().ok, 6, "every event so far, once");
        assert_eq!(live.lock().unwrap().errors["DeadlineExceeded"], 1);
        let rest = book.take_open(u64::MAX);
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].1.ok, rest[0].1.failed), (3, 1));
        assert_eq!(live.lock().unwrap().ok, 6, "nothing counted twice");
        let done = book.finish();
        assert!(done.series.is_empty(), "taken seconds are the caller's");
        assert_eq!((done.ops["put"].ok, done.ops["put"].failed), (6, 1));
        assert_eq!(done.kinds[&ErrorKind::RequestTimeout], 1);
    }

    #[test]
    fn a_result_after_its_second_closed_adds_to_that_second_never_a_second_entry() {
        let mut book = Book::default();
        book.ok(0u8, 0, Duration::from_millis(1));
        book.ok(0u8, 1, Duration::from_millis(2));
        book.fold(2);
        book.ok(0u8, 0, Duration::from_millis(900));
        book.fail(
            0u8,
            1,
            &FailCode::Timeout,
            ErrorKind::RequestTimeout,
            "late",
        );
        book.unsent(0u8, 3, Duration::from_secs(3));
        let done = book.finish();
        let series: Vec<(u64, u64, u64)> =
            done.series.iter().map(|s| (s.t, s.ok, s.errors)).collect();
        assert_eq!(series, [(0, 2, 0), (1, 1, 1), (3, 0, 0)]);
        assert!(done.series[2].p99.is_none(), "nothing done: no p99");
        let put = &done.ops[&0];
        assert_eq!((put.ok, put.failed), (3, 1), "an unsent request is neither");
        assert_eq!(
            put.latency.summary().count,
            4,
            "its lower bound is in the distribution"
        );
    }
}
