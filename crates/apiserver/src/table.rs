//! Server-side printing: `meta.k8s.io/v1` `Table` answers for `kubectl get`,
//! with the columns a real cluster prints for the common kinds.
//!
//! Owns column definitions and cell rendering. It must not filter objects or
//! read the store.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::resources::ResourceDef;
use crate::util::{get_path, i64_at, str_at};

/// Rendering a table failed (never in practice; kept for the module's error contract).
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A timestamp could not be parsed.
    #[error("bad timestamp {0:?}")]
    BadTimestamp(String),
}

/// Seconds since the Unix epoch of an RFC 3339 UTC time.
pub(crate) fn parse_rfc3339(s: &str) -> Result<u64, TableError> {
    let bad = || TableError::BadTimestamp(s.to_string());
    let b = s.as_bytes();
    if b.len() < 19 {
        return Err(bad());
    }
    let n = |r: std::ops::Range<usize>| -> Result<i64, TableError> {
        s.get(r).and_then(|x| x.parse().ok()).ok_or_else(bad)
    };
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok((days * 86_400 + hh * 3600 + mm * 60 + ss).max(0) as u64)
}

/// Kubernetes' short human duration (`5s`, `3m`, `2h`, `4d`).
pub fn human_age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn age(obj: &Value, path: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match parse_rfc3339(str_at(obj, path)) {
        Ok(t) => human_age(now.saturating_sub(t)),
        Err(_) => "<unknown>".into(),
    }
}

/// Where an event's "Last Seen" comes from, as kubectl's printer does: the series'
/// last observation, else `lastTimestamp`, else `eventTime` (events.k8s.io events).
fn event_last_seen(o: &Value) -> &'static str {
    ["series.lastObservedTime", "lastTimestamp", "eventTime"]
        .into_iter()
        .find(|p| !str_at(o, p).is_empty())
        .unwrap_or("lastTimestamp")
}

fn col(name: &str, ty: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": "", "priority": 0})
}

/// A column `kubectl get -o wide` adds.
fn wide(name: &str) -> Value {
    let mut c = col(name, "string");
    c["priority"] = json!(1);
    c
}

/// (containers, images, selector) of a workload, as `-o wide` prints them.
fn workload_wide(o: &Value) -> [Value; 3] {
    let containers: Vec<&Value> = get_path(o, "spec.template.spec.containers")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "image")).collect();
    let selector = get_path(o, "spec.selector.matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    [
        json!(names.join(",")),
        json!(images.join(",")),
        json!(selector),
    ]
}

fn pod_status(p: &Value) -> String {
    let waiting = p
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find_map(|c| c.pointer("/state/waiting/reason").and_then(Value::as_str))
        });
    match waiting {
        Some(r) => r.to_string(),
        None => str_at(p, "status.phase").to_string(),
    }
}

fn columns_and_cells(def: &ResourceDef, o: &Value) -> (Vec<Value>, Vec<Value>) {
    let name = json!(str_at(o, "metadata.name"));
    let age_cell = json!(age(o, "metadata.creationTimestamp"));
    match (def.group, def.kind) {
        ("apps", "Deployment") => (
            vec![
                col("Name", "string"),
                col("Ready", "string"),
                col("Up-to-date", "string"),
                col("Available", "string"),
                col("Age", "string"),
                wide("Containers"),
                wide("Images"),
                wide("Selector"),
            ],
            [
                vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        i64_at(o, "status.readyReplicas", 0),
                        i64_at(o, "spec.replicas", 1)
                    )),
                    json!(i64_at(o, "status.updatedReplicas", 0)),
                    json!(i64_at(o, "status.availableReplicas", 0)),
                    age_cell,
                ],
                workload_wide(o).to_vec(),
            ]
            .concat(),
        ),
        ("apps", "ReplicaSet") => (
            vec![
                col("Name", "string"),
                col("Desired", "integer"),
                col("Current", "integer"),
                col("Ready", "integer"),
                col("Age", "string"),
                wide("Containers"),
                wide("Images"),
                wide("Selector"),
            ],
            vec![
                name,
                json!(i64_at(o, "spec.replicas", 1)),
                json!(i64_at(o, "status.replicas", 0)),
                json!(i64_at(o, "status.readyReplicas", 0)),
                age_cell,
            ]
            .into_iter()
            .chain(workload_wide(o))
            .collect(),
        ),
        ("", "Pod") => {
            let statuses = get_path(o, "status.containerStatuses").and_then(Value::as_array);
            let total = get_path(o, "spec.containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses.map_or(0, |s| {
                s.iter().filter(|c| c["ready"] == json!(true)).count()
            });
            let restarts: i64 =
                statuses.map_or(0, |s| s.iter().map(|c| i64_at(c, "restartCount", 0)).sum());
            (
                vec![
                    col("Name", "string"),
                    col("Ready", "string"),
                    col("Status", "string"),
                    col("Restarts", "string"),
                    col("Age", "string"),
                    wide("IP"),
                    wide("Node"),
                    wide("Nominated Node"),
                    wide("Readiness Gates"),
                ],
                vec![
                    name,
                    json!(format!("{ready}/{total}")),
                    json!(pod_status(o)),
                    json!(restarts.to_string()),
                    age_cell,
                    json!(match str_at(o, "status.podIP") {
                        "" => "<none>",
                        ip => ip,
                    }),
                    json!(match str_at(o, "spec.nodeName") {
                        "" => "<none>",
                        n => n,
                    }),
                    json!("<none>"),
                    json!("<none>"),
                ],
            )
        }
        ("", "Event") => (
            vec![
                col("Last Seen", "string"),
                col("Type", "string"),
                col("Reason", "string"),
                col("Object", "string"),
                col("Message", "string"),
            ],
            vec![
                json!(age(o, event_last_seen(o))),
                json!(str_at(o, "type")),
                json!(str_at(o, "reason")),
                json!(format!(
                    "{}/{}",
                    str_at(o, "involvedObject.kind").to_lowercase(),
                    str_at(o, "involvedObject.name")
                )),
                json!(str_at(o, "message")),
            ],
        ),
        ("", "Namespace") => (
            vec![
                col("Name", "string"),
                col("Status", "string"),
                col("Age", "string"),
            ],
            vec![name, json!(str_at(o, "status.phase")), age_cell],
        ),
        ("", "ConfigMap") => (
            vec![
                col("Name", "string"),
                col("Data", "string"),
                col("Age", "string"),
            ],
            vec![
                name,
                json!(count(o, "data") + count(o, "binaryData")),
                age_cell,
            ],
        ),
        ("", "Secret") => (
            vec![
                col("Name", "string"),
                col("Type", "string"),
                col("Data", "string"),
                col("Age", "string"),
            ],
            vec![
                name,
                json!(str_at(o, "type")),
                json!(count(o, "data")),
                age_cell,
            ],
        ),
        ("", "ServiceAccount") => (
            vec![
                col("Name", "string"),
                col("Secrets", "string"),
                col("Age", "string"),
            ],
            vec![name, json!(count(o, "secrets")), age_cell],
        ),
        ("apps", "StatefulSet") => (
            vec![
                col("Name", "string"),
                col("Ready", "string"),
                col("Age", "string"),
            ],
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    i64_at(o, "status.readyReplicas", 0),
                    i64_at(o, "spec.replicas", 1)
                )),
                age_cell,
            ],
        ),
        ("apps", "DaemonSet") => {
            let selector = get_path(o, "spec.template.spec.nodeSelector")
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| "<none>".into());
            (
                vec![
                    col("Name", "string"),
                    col("Desired", "integer"),
                    col("Current", "integer"),
                    col("Ready", "integer"),
                    col("Up-to-date", "integer"),
                    col("Available", "integer"),
                    col("Node Selector", "string"),
                    col("Age", "string"),
                ],
                vec![
                    name,
                    json!(i64_at(o, "status.desiredNumberScheduled", 0)),
                    json!(i64_at(o, "status.currentNumberScheduled", 0)),
                    json!(i64_at(o, "status.numberReady", 0)),
                    json!(i64_at(o, "status.updatedNumberScheduled", 0)),
                    json!(i64_at(o, "status.numberAvailable", 0)),
                    json!(selector),
                    age_cell,
                ],
            )
        }
        ("batch", "Job") => {
            let conditions = get_path(o, "status.conditions").and_then(Value::as_array);
            let has = |t: &str| {
                conditions.is_some_and(|cs| {
                    cs.iter()
                        .any(|c| str_at(c, "type") == t && str_at(c, "status") == "True")
                })
            };
            let status = if has("Complete") {
                "Complete"
            } else if has("Failed") {
                "Failed"
            } else {
                "Running"
            };
            (
                vec![
                    col("Name", "string"),
                    col("Status", "string"),
                    col("Completions", "string"),
                    col("Duration", "string"),
                    col("Age", "string"),
                ],
                vec![
                    name,
                    json!(status),
                    json!(format!(
                        "{}/{}",
                        i64_at(o, "status.succeeded", 0),
                        i64_at(o, "spec.completions", 1)
                    )),
                    json!(duration(o)),
                    age_cell,
                ],
            )
        }
        ("batch", "CronJob") => (
            vec![
                col("Name", "string"),
                col("Schedule", "string"),
                col("Timezone", "string"),
                col("Suspend", "boolean"),
                col("Active", "integer"),
                col("Last Schedule", "string"),
                col("Age", "string"),
            ],
            vec![
                name,
                json!(str_at(o, "spec.schedule")),
                json!(match str_at(o, "spec.timeZone") {
                    "" => "<none>",
                    tz => tz,
                }),
                json!(
                    get_path(o, "spec.suspend")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                ),
                json!(count(o, "status.active")),
                json!(match get_path(o, "status.lastScheduleTime") {
                    Some(_) => age(o, "status.lastScheduleTime"),
                    None => "<none>".into(),
                }),
                age_cell,
            ],
        ),
        ("coordination.k8s.io", "Lease") => (
            vec![
                col("Name", "string"),
                col("Holder", "string"),
                col("Age", "string"),
            ],
            vec![name, json!(str_at(o, "spec.holderIdentity")), age_cell],
        ),
        ("", "Node") => (
            vec![
                col("Name", "string"),
                col("Status", "string"),
                col("Roles", "string"),
                col("Age", "string"),
                col("Version", "string"),
            ],
            vec![
                name,
                json!("Ready"),
                json!("<none>"),
                age_cell,
                json!(format!("v1.{}.0", crate::discovery::KUBE_MINOR)),
            ],
        ),
        _ => (
            vec![col("Name", "string"), col("Age", "string")],
            vec![name, age_cell],
        ),
    }
}

/// The number of entries in the map or list at `path`.
fn count(o: &Value, path: &str) -> usize {
    match get_path(o, path) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

/// A Job's run time (`5s`), as kubectl prints it.
fn duration(o: &Value) -> String {
    let start = parse_rfc3339(str_at(o, "status.startTime"));
    let end = match get_path(o, "status.completionTime") {
        Some(_) => parse_rfc3339(str_at(o, "status.completionTime")),
        None => Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)),
    };
    match (start, end) {
        (Ok(s), Ok(e)) => human_age(e.saturating_sub(s)),
        _ => String::new(),
    }
}

/// A `Table` for `objects` (views of `def`); `rv` is the list version, if a list.
pub fn table(def: &ResourceDef, objects: &[Value], rv: Option<u64>) -> Value {
    let (columns, _) = columns_and_cells(def, &json!({}));
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let (_, cells) = columns_and_cells(def, o);
            json!({"cells": cells, "object": o})
        })
        .collect();
    let mut meta = json!({});
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv.to_string());
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_util_formats() {
        for secs in [0u64, 951_782_400, 1_795_425_725] {
            assert_eq!(
                parse_rfc3339(&crate::util::format_rfc3339(secs)).unwrap(),
                secs
            );
        }
    }

    #[test]
    fn human_age_table() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (180, "3m"),
            (7200, "2h"),
            (200_000, "2d"),
        ] {
            assert_eq!(human_age(s), want);
        }
    }
}
