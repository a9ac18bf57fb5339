//! The message each sink receives for one pass: events filtered by the sink's level
//! and kinds, at most `maxEvents` of them (the rest counted), every outside string
//! cleaned of control characters and bounded, and for Slack, `<`, `>` and `&`
//! escaped so text from a registry cannot mention `@channel` or forge a link.
//!
//! Payload shapes are documented in `docs/notifications.md`. Must not sign or send:
//! the shell does both with the bytes returned here.

use serde_json::{Value, json};

use super::config::{SinkConfig, SinkKind};
use super::event::{Batch, Event, EventKind, Level};

/// The longest namespace, kind, name or container kept (Kubernetes names are ≤ 253).
pub const MAX_NAME: usize = 253;
/// The longest image reference kept.
pub const MAX_IMAGE: usize = 512;
/// The longest digest, tag or class kept.
pub const MAX_SHORT: usize = 160;
/// The longest message kept.
pub const MAX_MESSAGE: usize = 500;
/// The version of the webhook payload's schema.
pub const WEBHOOK_SCHEMA: u32 = 1;

/// One rendered message: the bytes to POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The JSON body.
    pub body: String,
    /// Events in the message.
    pub events: usize,
    /// Events that matched the sink but did not fit (`maxEvents`).
    pub omitted: usize,
}

/// Removes control characters (a newline or tab becomes a space) and keeps at most
/// `max` characters, ending a cut string with `…`.
pub fn clean(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    for (n, c) in text.chars().enumerate() {
        if n >= max {
            out.pop();
            out.push('…');
            break;
        }
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            // Bidirectional overrides can make text read differently than it is.
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Escapes the three characters Slack's mrkdwn gives meaning to (`&`, `<`, `>`), and
/// turns a backtick into `'` so text cannot close a code span.
pub fn slack_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '`' => out.push('\''),
            c => out.push(c),
        }
    }
    out
}

/// The events of `batch` this sink wants, at most its `max_events`, and how many more
/// matched.
pub fn select<'a>(sink: &SinkConfig, batch: &'a Batch) -> (Vec<&'a Event>, usize) {
    let wanted: Vec<&Event> = batch
        .events
        .iter()
        .filter(|e| sink.wants(e.kind, e.level))
        .collect();
    let omitted = wanted.len().saturating_sub(sink.max_events);
    let kept = wanted.into_iter().take(sink.max_events).collect();
    (kept, omitted)
}

/// The message for `sink`, or `None` when no event of the batch is for it.
/// `now_unix` is the time the pass ended (seconds since the Unix epoch).
pub fn render(
    cluster: Option<&str>,
    sink: &SinkConfig,
    batch: &Batch,
    now_unix: u64,
) -> Option<Message> {
    let (events, omitted) = select(sink, batch);
    if events.is_empty() {
        return None;
    }
    let body = match sink.kind {
        SinkKind::Slack { .. } => slack(cluster, &events, omitted),
        SinkKind::Webhook { .. } => webhook(cluster, &events, omitted, now_unix),
    };
    Some(Message {
        body: body.to_string(),
        events: events.len(),
        omitted,
    })
}

fn webhook_event(e: &Event) -> Value {
    let opt = |v: &Option<String>, max| v.as_deref().map(|s| clean(s, max));
    let mut v = json!({
        "kind": e.kind.as_str(),
        "level": e.level.as_str(),
        "namespace": clean(&e.namespace, MAX_NAME),
        "workloadKind": clean(&e.workload_kind, MAX_NAME),
        "name": clean(&e.name, MAX_NAME),
        "message": clean(&e.message, MAX_MESSAGE),
    });
    let fields = [
        ("container", opt(&e.container, MAX_NAME)),
        ("image", opt(&e.image, MAX_IMAGE)),
        ("from", opt(&e.from, MAX_SHORT)),
        ("to", opt(&e.to, MAX_SHORT)),
        ("class", opt(&e.class, MAX_SHORT)),
    ];
    for (k, val) in fields {
        if let Some(val) = val {
            v[k] = Value::String(val);
        }
    }
    v
}

fn webhook(cluster: Option<&str>, events: &[&Event], omitted: usize, now: u64) -> Value {
    json!({
        "schema": WEBHOOK_SCHEMA,
        "source": "freshet",
        "cluster": cluster.map(|c| clean(c, 63)),
        "sentAt": now,
        "events": events.iter().map(|e| webhook_event(e)).collect::<Vec<_>>(),
        "omitted": omitted,
    })
}

fn icon(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Refresh => ":arrows_counterclockwise:",
        EventKind::Rollback => ":rewind:",
        EventKind::Hold => ":double_vertical_bar:",
        EventKind::ApprovalNeeded => ":raised_hand:",
        EventKind::FailureStreak => ":rotating_light:",
        EventKind::Recovered => ":white_check_mark:",
    }
}

/// A digest shortened for reading (`sha256:0123456789ab`); tags kept whole.
fn short(d: &str) -> String {
    let d = clean(d, MAX_SHORT);
    match d.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 && alg.starts_with("sha") => {
            format!("{alg}:{}", &hex[..12])
        }
        _ => d,
    }
}

fn slack_line(e: &Event) -> String {
    let s = |t: &str, max| slack_escape(&clean(t, max));
    let mut line = format!(
        "{} *{}* `{}/{}/{}`",
        icon(e.kind),
        e.kind.as_str(),
        s(&e.namespace, MAX_NAME),
        s(&e.workload_kind, MAX_NAME),
        s(&e.name, MAX_NAME)
    );
    if let Some(c) = &e.container {
        line.push_str(&format!(" container `{}`", s(c, MAX_NAME)));
    }
    if let Some(i) = &e.image {
        line.push_str(&format!(" image `{}`", s(i, MAX_IMAGE)));
    }
    match (&e.from, &e.to) {
        (Some(f), Some(t)) => line.push_str(&format!(
            " `{}` → `{}`",
            slack_escape(&short(f)),
            slack_escape(&short(t))
        )),
        (None, Some(t)) => line.push_str(&format!(" → `{}`", slack_escape(&short(t)))),
        _ => {}
    }
    if let Some(c) = &e.class {
        line.push_str(&format!(" [{}]", s(c, MAX_SHORT)));
    }
    if !e.message.is_empty() {
        line.push_str(&format!(": {}", s(&e.message, MAX_MESSAGE)));
    }
    line
}

fn slack(cluster: Option<&str>, events: &[&Event], omitted: usize) -> Value {
    let worst = events.iter().map(|e| e.level).max().unwrap_or(Level::Info);
    let total = events.len() + omitted;
    let mut text = format!(
        "*freshet*{}: {total} event{} ({})",
        cluster
            .map(|c| format!(" on `{}`", slack_escape(&clean(c, 63))))
            .unwrap_or_default(),
        if total == 1 { "" } else { "s" },
        worst.as_str()
    );
    for e in events {
        text.push('\n');
        text.push_str(&slack_line(e));
    }
    if omitted > 0 {
        text.push_str(&format!("\n…and {omitted} more"));
    }
    json!({ "text": text })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::*;
    use crate::notify::config::SecretSource;

    fn sink(kind: SinkKind, max_events: usize, min_level: Level) -> SinkConfig {
        SinkConfig {
            name: "s".into(),
            kind,
            min_level,
            events: EventKind::ALL.into_iter().collect::<BTreeSet<_>>(),
            max_events,
            timeout: Duration::from_secs(1),
            retries: 0,
        }
    }

    fn slack_sink(max: usize, level: Level) -> SinkConfig {
        sink(
            SinkKind::Slack {
                url: SecretSource::Env("X".into()),
            },
            max,
            level,
        )
    }

    fn refresh(name: &str) -> Event {
        Event::new(EventKind::Refresh, "dev", "Deployment", name)
            .container("app")
            .image("ghcr.io/acme/api:1")
            .digests(
                "sha256:0123456789abcdef0123456789abcdef",
                "sha256:fedcba9876543210fedcba9876543210",
            )
    }

    #[test]
    fn clean_removes_controls_and_bounds_length() {
        assert_eq!(clean("a\u{1b}[31mb\nc\u{202E}d", 100), "a[31mb cd");
        assert_eq!(clean("abcdef", 4), "abc…");
        assert_eq!(clean("abcd", 4), "abcd");
    }

    #[test]
    fn slack_text_escapes_mentions_links_and_code_spans() {
        let e = Event::new(EventKind::FailureStreak, "dev", "Deployment", "api")
            .class("auth")
            .message("<!channel> see <https://evil|here> & `x`");
        let mut b = Batch::new();
        b.push(e);
        let m = render(None, &slack_sink(20, Level::Info), &b, 0).unwrap();
        let v: Value = serde_json::from_str(&m.body).unwrap();
        let text = v["text"].as_str().unwrap();
        assert!(
            text.contains("&lt;!channel&gt; see &lt;https://evil|here&gt; &amp; 'x'"),
            "{text}"
        );
        assert!(!text.contains('<'), "{text}");
    }

    #[test]
    fn slack_text_reads_well_and_counts_what_did_not_fit() {
        let mut b = Batch::new();
        for n in ["a", "b", "c"] {
            b.push(refresh(n));
        }
        b.push(Event::new(EventKind::Hold, "dev", "Deployment", "d").message("held"));
        let m = render(Some("prod"), &slack_sink(2, Level::Info), &b, 0).unwrap();
        assert_eq!((m.events, m.omitted), (2, 2));
        let v: Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(
            v["text"],
            "*freshet* on `prod`: 4 events (info)\n\
             :arrows_counterclockwise: *refresh* `dev/Deployment/a` container `app` image `ghcr.io/acme/api:1` `sha256:0123456789ab` → `sha256:fedcba987654`\n\
             :arrows_counterclockwise: *refresh* `dev/Deployment/b` container `app` image `ghcr.io/acme/api:1` `sha256:0123456789ab` → `sha256:fedcba987654`\n\
             …and 2 more"
        );
    }

    #[test]
    fn levels_filter_per_sink_and_an_empty_selection_sends_nothing() {
        let mut b = Batch::new();
        b.push(refresh("a"));
        assert_eq!(render(None, &slack_sink(20, Level::Warning), &b, 0), None);
        b.push(Event::new(EventKind::Rollback, "dev", "Deployment", "a"));
        let m = render(None, &slack_sink(20, Level::Warning), &b, 0).unwrap();
        assert_eq!((m.events, m.omitted), (1, 0));
    }

    #[test]
    fn webhook_payload_shape() {
        let w = sink(
            SinkKind::Webhook {
                url: super::super::config::UrlSetting::Inline("https://h/x".into()),
                secret: SecretSource::Env("K".into()),
            },
            1,
            Level::Info,
        );
        let mut b = Batch::new();
        b.push(refresh("a").message("line1\nline2"));
        b.push(refresh("b"));
        let m = render(Some("prod"), &w, &b, 1_700_000_000).unwrap();
        let v: Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(
            v,
            json!({
                "schema": 1, "source": "freshet", "cluster": "prod", "sentAt": 1_700_000_000u64,
                "omitted": 1,
                "events": [{
                    "kind": "refresh", "level": "info", "namespace": "dev",
                    "workloadKind": "Deployment", "name": "a", "container": "app",
                    "image": "ghcr.io/acme/api:1",
                    "from": "sha256:0123456789abcdef0123456789abcdef",
                    "to": "sha256:fedcba9876543210fedcba9876543210",
                    "message": "line1 line2"
                }]
            })
        );
    }
}
