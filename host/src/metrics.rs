//! Prometheus metrics: one recorder per process, rendered by `GET sys/metrics`.
//!
//! Counters and histograms are recorded where things happen (lease issue, renew
//! and revoke in [`crate::leases`], plugin calls in [`crate::plugin`]); lease
//! gauges are set from the lease counts just before rendering.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Histogram buckets in seconds: from a fast plugin call to a slow target.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder (once per process) and returns its handle; `None` when
/// another recorder was installed first (a test harness, say).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// The metrics in Prometheus text format.
pub fn render() -> String {
    match handle() {
        Some(handle) => {
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    }
}

/// The metrics in the JSON shape Vault's `sys/metrics` answers by default
/// (go-metrics' in-memory sink: `Gauges`, `Counters`, `Samples`), from the
/// Prometheus text: gauges as they are, counters with their total as count
/// and sum, histograms as samples with their count and sum.
pub fn render_json() -> serde_json::Value {
    vault_json(&render())
}

fn vault_json(text: &str) -> serde_json::Value {
    use serde_json::{Value, json};
    let mut kinds = std::collections::HashMap::new();
    let (mut gauges, mut counters) = (Vec::new(), Vec::new());
    // Histograms: (name, labels) to (count, sum).
    let mut samples: Vec<(String, Value, f64, f64)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                kinds.insert(name.to_owned(), kind.to_owned());
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, parse_labels(labels.trim_end_matches('}'))),
            None => (series, serde_json::Map::new()),
        };
        let labels = Value::Object(labels);
        match kinds.get(name).map(String::as_str) {
            Some("gauge") => gauges.push(json!({"Name": name, "Value": value, "Labels": labels})),
            Some("counter") => counters.push(json!({
                "Name": name, "Count": value, "Rate": 0.0, "Sum": value,
                "Min": value, "Max": value, "Mean": value, "Stddev": 0.0, "Labels": labels,
            })),
            _ => {
                let (base, part) = match (name.strip_suffix("_count"), name.strip_suffix("_sum")) {
                    (Some(base), _) => (base, 0),
                    (_, Some(base)) => (base, 1),
                    _ => continue,
                };
                let mut labels = labels;
                if let Value::Object(map) = &mut labels {
                    map.remove("le");
                }
                let at = match samples
                    .iter()
                    .position(|(n, l, _, _)| n == base && *l == labels)
                {
                    Some(at) => at,
                    None => {
                        samples.push((base.to_owned(), labels, 0.0, 0.0));
                        samples.len() - 1
                    }
                };
                if part == 0 {
                    samples[at].2 = value;
                } else {
                    samples[at].3 = value;
                }
            }
        }
    }
    let samples: Vec<Value> = samples
        .into_iter()
        .map(|(name, labels, count, sum)| {
            let mean = if count > 0.0 { sum / count } else { 0.0 };
            json!({
                "Name": name, "Count": count, "Rate": 0.0, "Sum": sum,
                "Min": 0.0, "Max": 0.0, "Mean": mean, "Stddev": 0.0, "Labels": labels,
            })
        })
        .collect();
    json!({
        "Timestamp": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "Gauges": gauges,
        "Points": [],
        "Counters": counters,
        "Samples": samples,
    })
}

/// `a="x",b="y \"quoted\""` as a map.
fn parse_labels(text: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut labels = serde_json::Map::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = at + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(
            key.trim_start_matches(',').trim().to_owned(),
            serde_json::Value::String(value),
        );
        rest = &after[end..];
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::vault_json;

    #[test]
    fn prometheus_text_becomes_vaults_json() {
        let text = "# TYPE leasehold_leases gauge\n\
            leasehold_leases{mount=\"db/\",state=\"active\"} 3\n\
            # TYPE leasehold_issued counter\n\
            leasehold_issued{mount=\"a \\\"b\\\"\"} 7\n\
            # TYPE leasehold_issue_seconds histogram\n\
            leasehold_issue_seconds_bucket{mount=\"db/\",le=\"0.1\"} 1\n\
            leasehold_issue_seconds_sum{mount=\"db/\"} 0.5\n\
            leasehold_issue_seconds_count{mount=\"db/\"} 2\n";
        let json = vault_json(text);
        assert_eq!(json["Gauges"][0]["Name"], "leasehold_leases");
        assert_eq!(json["Gauges"][0]["Value"], 3.0);
        assert_eq!(json["Gauges"][0]["Labels"]["state"], "active");
        assert_eq!(json["Counters"][0]["Count"], 7.0);
        assert_eq!(json["Counters"][0]["Labels"]["mount"], "a \"b\"");
        assert_eq!(json["Samples"][0]["Name"], "leasehold_issue_seconds");
        assert_eq!(json["Samples"][0]["Count"], 2.0);
        assert_eq!(json["Samples"][0]["Mean"], 0.25);
        assert_eq!(json["Samples"].as_array().unwrap().len(), 1);
    }
}
