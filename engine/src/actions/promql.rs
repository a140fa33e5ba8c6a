//! PromQL against a Prometheus server's HTTP API (`/api/v1/query` and `/api/v1/query_range`), for
//! users whose Prometheus already watches etcd and the API servers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{error_chain, Error, Result};

/// A time as Prometheus takes it: Unix seconds or RFC 3339 text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TimeValue {
    /// Unix seconds.
    Int(i64),
    /// Unix seconds with a fraction.
    Float(f64),
    /// RFC 3339 (`2026-11-21T10:00:00Z`) or Unix seconds as text.
    Text(String),
}

impl TimeValue {
    fn param(&self) -> String {
        match self {
            TimeValue::Int(i) => i.to_string(),
            TimeValue::Float(f) => format!("{f:.3}"),
            TimeValue::Text(t) => t.clone(),
        }
    }
}

/// Options of `metrics::query`. With `range` (or `start`), a range query; otherwise an instant one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryOptions {
    /// Instant query: the evaluation time (default: now).
    pub time: Option<TimeValue>,
    /// Range query over the last `range` (`"5m"`), ending at `end` or now.
    pub range: Option<String>,
    /// Range query: the start (instead of `range`).
    pub start: Option<TimeValue>,
    /// Range query: the end (default: now).
    pub end: Option<TimeValue>,
    /// Range query: the resolution (`"15s"`; default: the range / 250, at least 1 s).
    pub step: Option<String>,
    /// Evaluation timeout passed to Prometheus (`"30s"`, the default).
    pub timeout: Option<String>,
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// Extra HTTP headers (a tenant header, basic auth...).
    pub headers: Option<BTreeMap<String, String>>,
}

crate::no_option_checks!(QueryOptions);

/// A Prometheus URL must be one: `http://host:9090` (a script mistake, not an outage).
pub fn check_url(url: &str) -> Result<()> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(Error::Options(format!(
            "`{url}` is not a Prometheus URL: give one such as http://127.0.0.1:9090"
        ))),
    }
}

/// One point of a range query.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Point {
    /// Unix seconds.
    pub time: f64,
    /// The value; `null` for NaN.
    pub value: Option<f64>,
}

/// One series of a query's result.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Series {
    /// Its labels (`__name__` included when Prometheus returns it).
    pub labels: BTreeMap<String, String>,
    /// The instant value, or the last point of a range; `null` for NaN.
    pub value: Option<f64>,
    /// Range queries: every point.
    pub points: Vec<Point>,
    /// Range queries: the smallest value.
    pub min: Option<f64>,
    /// Range queries: the largest value.
    pub max: Option<f64>,
    /// Range queries: the mean of the points.
    pub avg: Option<f64>,
}

/// The record of `metrics::query`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct QueryRecord {
    /// The PromQL.
    pub query: String,
    /// `vector`, `matrix`, `scalar` or `string` (Prometheus's `resultType`).
    pub kind: String,
    /// The first series' value (the last point for ranges), or the scalar; `null` when empty.
    pub value: Option<f64>,
    /// Number of series.
    pub count: usize,
    /// Every series.
    pub series: Vec<Series>,
    /// Warnings Prometheus attached.
    pub warnings: Vec<String>,
    /// How long the query took, in ms.
    pub duration_ms: f64,
}

/// Prometheus's answer envelope.
#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    value: Option<(f64, String)>,
    #[serde(default)]
    values: Option<Vec<(f64, String)>>,
}

/// Prometheus's sample text (`"0.5"`, `"NaN"`, `"+Inf"`) as a number; NaN is `None`.
fn number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| !v.is_nan())
}

fn seconds(text: &str, what: &str) -> Result<f64> {
    crate::units::parse_duration(text)
        .map(|d| d.as_secs_f64())
        .map_err(|e| Error::Options(format!("{what}: {e}")))
}

/// The query parameters and API path for `promql` with `opts`.
fn request(promql: &str, opts: &QueryOptions) -> Result<(&'static str, Vec<(String, String)>)> {
    let mut params = vec![("query".to_string(), promql.to_string())];
    let timeout = opts.timeout.as_deref().unwrap_or("30s");
    params.push((
        "timeout".into(),
        format!("{}s", seconds(timeout, "timeout")?),
    ));
    if opts.range.is_none() && opts.start.is_none() {
        if opts.end.is_some() || opts.step.is_some() {
            return Err(Error::Options(
                "`end` and `step` belong to range queries: add `range` or `start`".into(),
            ));
        }
        if let Some(t) = &opts.time {
            params.push(("time".into(), t.param()));
        }
        return Ok(("query", params));
    }
    if opts.time.is_some() {
        return Err(Error::Options(
            "`time` is for instant queries; a range query takes `range` or `start`/`end`".into(),
        ));
    }
    if opts.range.is_some() && opts.start.is_some() {
        return Err(Error::Options("give `range` or `start`, not both".into()));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let end = opts
        .end
        .as_ref()
        .map_or_else(|| format!("{now:.3}"), TimeValue::param);
    let (start, span) = match (&opts.range, &opts.start) {
        (Some(r), _) => {
            let span = seconds(r, "range")?;
            let end_s: f64 = end
                .parse()
                .map_err(|_| Error::Options("with `range`, `end` must be Unix seconds".into()))?;
            (format!("{:.3}", end_s - span), span)
        }
        (None, Some(s)) => (s.param(), 0.0),
        (None, None) => unreachable!("checked above"),
    };
    let step = match &opts.step {
        Some(s) => seconds(s, "step")?,
        None if span > 0.0 => (span / 250.0).max(1.0),
        None => 15.0,
    };
    params.push(("start".into(), start));
    params.push(("end".into(), end));
    params.push(("step".into(), format!("{step}")));
    Ok(("query_range", params))
}

/// Runs `promql` against the Prometheus at `url` (`http://host:9090`, with any path prefix).
pub async fn query(url: &str, promql: &str, opts: &QueryOptions) -> Result<QueryRecord> {
    check_url(url)?;
    let (api, params) = request(promql, opts)?;
    let endpoint = format!("{}/api/v1/{api}", url.trim_end_matches('/'));
    let unavailable = |message: String| Error::PrometheusUnavailable {
        url: url.to_string(),
        message,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| unavailable(e.to_string()))?;
    let mut req = client.post(&endpoint).form(&params);
    if let Some(token) = &opts.bearer_token {
        req = req.bearer_auth(token);
    }
    for (k, v) in opts.headers.iter().flatten() {
        req = req.header(k, v);
    }
    let started = Instant::now();
    let resp = req.send().await.map_err(|e| unavailable(error_chain(&e)))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| unavailable(e.to_string()))?;
    let duration_ms = super::ms(started.elapsed());
    let answer: Answer = serde_json::from_str(&body).map_err(|_| {
        unavailable(format!(
            "{endpoint} answered HTTP {status} without Prometheus API JSON: {}",
            crate::quote::quote(&body)
        ))
    })?;
    if answer.status != "success" {
        return Err(Error::PrometheusQuery {
            query: promql.to_string(),
            message: format!(
                "{}: {}",
                answer.error_type.as_deref().unwrap_or("error"),
                answer.error.as_deref().unwrap_or("no message")
            ),
        });
    }
    let data = answer
        .data
        .ok_or_else(|| unavailable("a successful answer without data".into()))?;
    let series = parse_result(&data)?;
    let value = match data.result_type.as_str() {
        "scalar" => serde_json::from_value::<(f64, String)>(data.result.clone())
            .ok()
            .and_then(|(_, v)| number(&v)),
        _ => series.first().and_then(|s| s.value),
    };
    Ok(QueryRecord {
        query: promql.to_string(),
        kind: data.result_type,
        value,
        count: series.len(),
        series,
        warnings: answer.warnings,
        duration_ms,
    })
}

/// The series of a vector or matrix result (none for scalars and strings).
fn parse_result(data: &Data) -> Result<Vec<Series>> {
    if !matches!(data.result_type.as_str(), "vector" | "matrix") {
        return Ok(vec![]);
    }
    let raw: Vec<RawSeries> = serde_json::from_value(data.result.clone())
        .map_err(|e| Error::Options(format!("unexpected Prometheus result: {e}")))?;
    Ok(raw
        .into_iter()
        .map(|r| {
            let points: Vec<Point> = r
                .values
                .unwrap_or_default()
                .into_iter()
                .map(|(time, v)| Point {
                    time,
                    value: number(&v),
                })
                .collect();
            let vals: Vec<f64> = points.iter().filter_map(|p| p.value).collect();
            let value = match &r.value {
                Some((_, v)) => number(v),
                None => points.last().and_then(|p| p.value),
            };
            let ranged = !points.is_empty();
            Series {
                labels: r.metric,
                value,
                min: ranged.then(|| vals.iter().copied().fold(f64::INFINITY, f64::min)),
                max: ranged.then(|| vals.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
                avg: (ranged && !vals.is_empty())
                    .then(|| vals.iter().sum::<f64>() / vals.len() as f64),
                points,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_and_range_requests() {
        let (api, p) = request("up", &QueryOptions::default()).unwrap();
        assert_eq!(api, "query");
        assert!(p.contains(&("timeout".into(), "30s".into())));
        let opts = QueryOptions {
            range: Some("10m".into()),
            end: Some(TimeValue::Int(1_000_000)),
            ..Default::default()
        };
        let (api, p) = request("up", &opts).unwrap();
        assert_eq!(api, "query_range");
        assert!(p.contains(&("start".into(), "999400.000".into())));
        assert!(p.contains(&("step".into(), "2.4".into())));
        let bad = QueryOptions {
            step: Some("5s".into()),
            ..Default::default()
        };
        assert!(request("up", &bad).is_err());
    }

    #[test]
    fn nan_is_null_and_inf_is_kept() {
        assert_eq!(number("NaN"), None);
        assert_eq!(number("+Inf"), Some(f64::INFINITY));
        assert_eq!(number("0.25"), Some(0.25));
    }
}
