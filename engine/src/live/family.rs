//! Metric families as both live outputs carry them: a name, a type, help and unit, and samples with
//! labels — rendered here as OpenMetrics text (what `--metrics-listen` serves), and turned into
//! remote-write time series by [`super::remote_write`].

use std::fmt::Write as _;

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

/// A label value escaped for the text format (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A value as the text format writes it (`+Inf`, `NaN`, integers without a fraction).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// The OpenMetrics text exposition of `families`, each sample with `common` labels first;
/// ends with `# EOF`.
pub fn openmetrics(families: &[Family], common: &[(String, String)]) -> String {
    let mut out = String::new();
    for f in families {
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.name());
        if let Some(u) = f.unit {
            let _ = writeln!(out, "# UNIT {} {u}", f.name);
        }
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help.replace('\n', " "));
        for s in &f.samples {
            let all = common.iter().chain(&s.labels);
            let text: Vec<String> = all.map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let _ = writeln!(
                out,
                "{}{}{{{}}} {}",
                f.name,
                s.suffix,
                text.join(","),
                number(s.value)
            );
        }
    }
    out.push_str("# EOF\n");
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
        f.push("_bucket", labels(&[("step", "a\"b"), ("le", "+Inf")]), 3.0);
        f.push("_count", labels(&[("step", "a\"b")]), 3.0);
        let mut c = Family::new("scen_requests", Kind::Counter, "Requests.", None);
        c.push("_total", vec![], f64::INFINITY);
        let text = openmetrics(&[f, c], &labels(&[("run_id", "r1")]));
        assert_eq!(
            text,
            "# TYPE scen_request_duration_seconds histogram\n\
             # UNIT scen_request_duration_seconds seconds\n\
             # HELP scen_request_duration_seconds Latency.\n\
             scen_request_duration_seconds_bucket{run_id=\"r1\",step=\"a\\\"b\",le=\"+Inf\"} 3\n\
             scen_request_duration_seconds_count{run_id=\"r1\",step=\"a\\\"b\"} 3\n\
             # TYPE scen_requests counter\n\
             # HELP scen_requests Requests.\n\
             scen_requests_total{run_id=\"r1\"} +Inf\n\
             # EOF\n"
        );
    }
}
