//! Metric families as both live outputs carry them: a name, a type, help and unit, and samples with
//! labels — rendered here as OpenMetrics text (what `--metrics-listen` serves), and turned into
//! remote-write time series by [`super::remote_write`].

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

/// A metric family's type (OpenMetrics' names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A monotonic total (`_total` samples).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Cumulative buckets (`_bucket` with `le`, `_sum`, `_count`).
    Histogram,
}

impl Kind {
    /// The name OpenMetrics' `# TYPE` line uses.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One sample of a family: the suffix after the family's name (`_total`, `_bucket`, or empty),
/// its own labels (the run's labels are added on output) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Appended to the family's name: `""`, `"_total"`, `"_bucket"`, `"_sum"`, `"_count"`.
    pub suffix: &'static str,
    /// Labels besides the run's, in order.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// A metric family and its samples at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The family's name (without `_total` for counters).
    pub name: String,
    /// Its type.
    pub kind: Kind,
    /// One line of help.
    pub help: String,
    /// Its unit (`seconds`, `bytes`), when it has one; the name then ends in it.
    pub unit: Option<&'static str>,
    /// The samples.
    pub samples: Vec<Sample>,
}

impl Family {
    /// An empty family.
    pub fn new(name: &str, kind: Kind, help: &str, unit: Option<&'static str>) -> Self {
        Family {
            name: name.to_string(),
            kind,
            help: help.to_string(),
            unit,
            samples: Vec::new(),
        }
    }

    /// Adds a sample.
    pub fn push(&mut self, suffix: &'static str, labels: Vec<(String, String)>, value: f64) {
        self.samples.push(Sample {
            suffix,
            labels,
            value,
        });
    }
}

/// Labels as `(name, value)` pairs from string slices.
pub fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Kind {
    /// The prometheus-client type the family is encoded as.
    fn metric_type(self) -> MetricType {
        match self {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
            Kind::Histogram => MetricType::Histogram,
        }
    }
}

/// Families at one moment with the run's labels, as a prometheus-client collector: encoded by
/// prometheus-client's OpenMetrics text encoder (escaping, `# UNIT`, `_total`, `le`, `# EOF`).
#[derive(Debug)]
struct Snapshot {
    families: Vec<Family>,
    common: Vec<(String, String)>,
}

impl Snapshot {
    /// The run's labels, then the sample's own.
    fn labels(&self, own: &[(String, String)]) -> Vec<(String, String)> {
        self.common.iter().chain(own).cloned().collect()
    }

    /// A histogram family's series, one per label set without `le`: its sum, count and buckets
    /// (upper bound and the count in that bucket alone, as prometheus-client takes them).
    fn histograms(&self, f: &Family) -> Vec<(Vec<(String, String)>, Histogram)> {
        let mut out: Vec<(Vec<(String, String)>, Histogram)> = Vec::new();
        for s in &f.samples {
            let le = s.labels.iter().find(|(k, _)| k == "le").map(|(_, v)| v);
            let own: Vec<(String, String)> = s
                .labels
                .iter()
                .filter(|(k, _)| k != "le")
                .cloned()
                .collect();
            let i = match out.iter().position(|(l, _)| *l == own) {
                Some(i) => i,
                None => {
                    out.push((own, Histogram::default()));
                    out.len() - 1
                }
            };
            let h = &mut out[i].1;
            match (s.suffix, le) {
                ("_bucket", Some(le)) => {
                    let upper = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap_or(f64::INFINITY)
                    };
                    h.cumulative.push((upper, s.value as u64));
                }
                ("_sum", _) => h.sum = s.value,
                ("_count", _) => h.count = s.value as u64,
                _ => {}
            }
        }
        out
    }
}

/// One histogram series as a family's samples give it.
#[derive(Debug, Default)]
struct Histogram {
    sum: f64,
    count: u64,
    /// `(le, cumulative count)`.
    cumulative: Vec<(f64, u64)>,
}

impl Histogram {
    /// The buckets with each one's own count.
    fn buckets(&self) -> Vec<(f64, u64)> {
        let mut sorted = self.cumulative.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut below = 0;
        sorted
            .into_iter()
            .map(|(le, c)| {
                let own = c.saturating_sub(below);
                below = below.max(c);
                (le, own)
            })
            .collect()
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            // prometheus-client appends the unit to the name: a name must end in it.
            let (name, unit) = match f.unit.and_then(|u| {
                let base = f.name.strip_suffix(&format!("_{u}"))?;
                Some((base, unit_of(u)))
            }) {
                Some((base, unit)) => (base, Some(unit)),
                None => (f.name.as_str(), None),
            };
            let help = f.help.replace('\n', " ");
            let mut metric =
                encoder.encode_descriptor(name, &help, unit.as_ref(), f.kind.metric_type())?;
            match f.kind {
                Kind::Counter => {
                    for s in &f.samples {
                        let labels = self.labels(&s.labels);
                        metric
                            .encode_family(&labels)?
                            .encode_counter::<NoLabelSet, _, f64>(&s.value, None)?;
                    }
                }
                Kind::Gauge => {
                    for s in &f.samples {
                        let labels = self.labels(&s.labels);
                        metric.encode_family(&labels)?.encode_gauge(&s.value)?;
                    }
                }
                Kind::Histogram => {
                    for (own, h) in self.histograms(f) {
                        let labels = self.labels(&own);
                        metric
                            .encode_family(&labels)?
                            .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets(), None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// prometheus-client's unit for a family's unit name.
fn unit_of(u: &str) -> Unit {
    match u {
        "seconds" => Unit::Seconds,
        "bytes" => Unit::Bytes,
        "ratio" | "ratios" => Unit::Ratios,
        other => Unit::Other(other.to_string()),
    }
}

/// The OpenMetrics text exposition of `families`, each sample with `common` labels first;
/// ends with `# EOF`.
pub fn openmetrics(families: Vec<Family>, common: Vec<(String, String)>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot { families, common }));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_text_has_types_units_escaped_labels_and_eof() {
        let mut f = Family::new(
            "scen_request_duration_seconds",
            Kind::Histogram,
            "Latency.",
            Some("seconds"),
        );
        let step = |le: Option<&str>| {
            let mut l = labels(&[("step", "a\"b")]);
            l.extend(le.map(|le| ("le".to_string(), le.to_string())));
            l
        };
        f.push("_bucket", step(Some("0.005")), 2.0);
        f.push("_bucket", step(Some("+Inf")), 3.0);
        f.push("_sum", step(None), 0.0125);
        f.push("_count", step(None), 3.0);
        let mut c = Family::new("scen_requests", Kind::Counter, "Requests.", None);
        c.push("_total", labels(&[("op", "put")]), 42.0);
        let mut g = Family::new("scen_step_running", Kind::Gauge, "1 while\nit runs.", None);
        g.push("", vec![], 1.0);
        let text = openmetrics(vec![f, c, g], labels(&[("run_id", "r1")]));
        assert_eq!(
            text,
            "# HELP scen_request_duration_seconds Latency.\n\
             # TYPE scen_request_duration_seconds histogram\n\
             # UNIT scen_request_duration_seconds seconds\n\
             scen_request_duration_seconds_sum{run_id=\"r1\",step=\"a\\\"b\"} 0.0125\n\
             scen_request_duration_seconds_count{run_id=\"r1\",step=\"a\\\"b\"} 3\n\
             scen_request_duration_seconds_bucket{le=\"0.005\",run_id=\"r1\",step=\"a\\\"b\"} 2\n\
             scen_request_duration_seconds_bucket{le=\"+Inf\",run_id=\"r1\",step=\"a\\\"b\"} 3\n\
             # HELP scen_requests Requests.\n\
             # TYPE scen_requests counter\n\
             scen_requests_total{run_id=\"r1\",op=\"put\"} 42.0\n\
             # HELP scen_step_running 1 while it runs.\n\
             # TYPE scen_step_running gauge\n\
             scen_step_running{run_id=\"r1\"} 1.0\n\
             # EOF\n",
            "{text}"
        );
    }

    #[test]
    fn the_text_parses_back_to_the_same_values() {
        let mut f = Family::new(
            "etcd_disk_wal_fsync_duration_seconds",
            Kind::Histogram,
            "h",
            Some("seconds"),
        );
        for (le, n) in [
            ("0.001", 5.0),
            ("0.002", 9.0),
            ("0.004", 9.0),
            ("+Inf", 10.0),
        ] {
            f.push("_bucket", labels(&[("member", "m1"), ("le", le)]), n);
        }
        f.push("_sum", labels(&[("member", "m1")]), 0.0173);
        f.push("_count", labels(&[("member", "m1")]), 10.0);
        let text = openmetrics(vec![f], vec![]);
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
        let h = scrape
            .samples
            .iter()
            .find_map(|s| match &s.value {
                prometheus_parse::Value::Histogram(h) => Some(h.clone()),
                _ => None,
            })
            .expect("a histogram");
        let got: Vec<(f64, f64)> = h.iter().map(|b| (b.less_than, b.count)).collect();
        assert_eq!(
            got,
            vec![
                (0.001, 5.0),
                (0.002, 9.0),
                (0.004, 9.0),
                (f64::INFINITY, 10.0)
            ],
            "{text}"
        );
    }
}
