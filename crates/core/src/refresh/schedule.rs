//! Schedules: when a workload is due for a refresh.
//!
//! Owns the schedule vocabulary shared by `freshet.io/schedule`, Keel's
//! `keel.sh/pollSchedule` and the config file's `rules[].schedule` (five or six cron
//! fields, `@hourly`-style nicknames, `@every 1h30m`), and the one question a run asks
//! of a schedule: did it fire inside this window? A run covers the window since the
//! previous run (`(now - interval, now]` for a one-shot run from a CronJob; the time
//! since the last pass for the controller), so no state is stored in the cluster and
//! a run in which nothing is due makes no writes. Must not read the clock: callers
//! pass the times.
//!
//! `@every D` fires at the multiples of `D` since the Unix epoch, so every replica
//! and every run agrees on the instants without remembering when it last looked.

use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

use super::time::Timestamp;

/// What a schedule value may look like, for error messages.
pub const SCHEDULE_FORMS: &str = "write five cron fields (\"0 3 * * *\"), six with seconds, \
     @hourly, @daily, @weekly, @monthly, or @every 1h30m";

/// Why a schedule did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The schedule is not a cron pattern, a nickname or `@every DURATION`.
    #[error("{value:?} is not a schedule ({reason}); {SCHEDULE_FORMS}")]
    Invalid {
        /// The schedule as written.
        value: String,
        /// What the parser said.
        reason: String,
    },
}

#[derive(Debug, Clone)]
enum Kind {
    Cron(Box<Cron>),
    Every(Duration),
}

/// A parsed schedule. Compares by its text.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    kind: Kind,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Schedule {}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Schedule {
    /// Parses a schedule (surrounding spaces ignored).
    pub fn parse(value: &str) -> Result<Schedule, ScheduleError> {
        let text = value.trim();
        let invalid = |reason: String| ScheduleError::Invalid {
            value: value.to_owned(),
            reason,
        };
        if let Some(d) = text.strip_prefix("@every") {
            let d = d.trim();
            if d.is_empty() {
                return Err(invalid("@every needs a duration".into()));
            }
            let period = humantime::parse_duration(d).map_err(|e| invalid(e.to_string()))?;
            if period < Duration::from_secs(1) || period.subsec_nanos() != 0 {
                return Err(invalid(
                    "the period must be whole seconds, at least 1s".into(),
                ));
            }
            return Ok(Schedule {
                text: text.to_owned(),
                kind: Kind::Every(period),
            });
        }
        if text.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        check_fields(text).map_err(invalid)?;
        let parser = CronParser::builder().seconds(Seconds::Optional).build();
        let cron = parser.parse(text).map_err(|e| invalid(e.to_string()))?;
        Ok(Schedule {
            text: text.to_owned(),
            kind: Kind::Cron(Box::new(cron)),
        })
    }

    /// The schedule as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the schedule fires in the window `(after, until]`.
    pub fn fires_between(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> bool {
        if until <= after {
            return false;
        }
        self.next_after(after).is_some_and(|next| next <= until)
    }

    /// The first instant strictly after `t` at which the schedule fires (`None` for a
    /// cron pattern that never fires again, such as the 30th of February).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Cron(cron) => cron.find_next_occurrence(&t, false).ok(),
            Kind::Every(period) => {
                let p = i128::try_from(period.as_nanos()).ok()?;
                let now = i128::from(t.timestamp_nanos_opt()?);
                let next = (now.div_euclid(p) + 1) * p;
                Some(DateTime::from_timestamp_nanos(i64::try_from(next).ok()?))
            }
        }
    }
}

/// Refuses what the cron parser accepts but cannot search in bounded time: an empty
/// list item (`,` alone, `1,,2`) and a step of 0 or beyond the field's range
/// (`*/95` in minutes). Found by fuzzing: such a pattern made the next-firing search
/// run for minutes, which would stall a pass.
fn check_fields(text: &str) -> Result<(), String> {
    const FIVE: [(&str, u32); 5] = [
        ("minute", 59),
        ("hour", 23),
        ("day-of-month", 31),
        ("month", 12),
        ("day-of-week", 7),
    ];
    if text.starts_with('@') {
        return Ok(());
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    let ranges: Vec<(&str, u32)> = match fields.len() {
        5 => FIVE.to_vec(),
        6 => std::iter::once(("second", 59)).chain(FIVE).collect(),
        _ => return Ok(()), // the parser names the field count
    };
    for (field, (name, max)) in fields.iter().zip(ranges) {
        for item in field.split(',') {
            if item.is_empty() {
                return Err(format!(
                    "the {name} field {field:?} has an empty list item; write values separated by single commas"
                ));
            }
            if let Some((_, step)) = item.split_once('/')
                && let Ok(n) = step.parse::<u32>()
                && (n == 0 || n > max)
            {
                return Err(format!(
                    "the {name} field's step /{n} is outside 1-{max}; use a step within the field's range"
                ));
            }
        }
    }
    Ok(())
}

/// The span of time one pass covers: `(since, now]`. A workload with a schedule is
/// due when its schedule fired in it; without `since` every workload is due (a
/// manual run, `--ignore-schedules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The start, excluded (`None`: every workload is due).
    pub since: Option<Timestamp>,
    /// The end, included: the pass's time.
    pub now: Timestamp,
}

/// Whether a workload is due in a [`Window`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Due: plan it.
    Yes,
    /// Its schedule did not fire in the window; `next` is when it fires next
    /// (`None`: never again).
    No {
        /// The next firing after the window.
        next: Option<Timestamp>,
    },
}

impl Window {
    /// A window in which every workload is due.
    pub fn everything(now: Timestamp) -> Self {
        Self { since: None, now }
    }

    /// The last `interval` before `now` (`None`: every workload is due). A one-shot
    /// run from a CronJob every `interval` sees each scheduled instant once.
    pub fn last(interval: Option<Duration>, now: Timestamp) -> Self {
        Self {
            since: interval.and_then(|i| now.checked_sub(i)),
            now,
        }
    }

    /// Whether a workload with `schedule` (`None`: every pass) is due.
    pub fn due(&self, schedule: Option<&Schedule>) -> Due {
        match (schedule, self.since) {
            (Some(s), Some(since)) if !s.fires_between(since.utc(), self.now.utc()) => Due::No {
                next: s.next_after(self.now.utc()).map(Timestamp::from_utc),
            },
            _ => Due::Yes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        crate::refresh::time::Timestamp::parse(s).unwrap().utc()
    }

    #[test]
    fn accepted_forms() {
        for ok in [
            "*/15 * * * *",
            "0 3 * * *",
            "0 0 3 * * *",
            "0 9 * * MON-FRI",
            "@hourly",
            "@daily",
            "@weekly",
            "@monthly",
            "@every 5m",
            "@every 1h30m",
            " @every 10m ",
        ] {
            Schedule::parse(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
    }

    #[test]
    fn rejected_forms_name_the_value_and_the_fix() {
        for bad in [
            "",
            "every hour",
            "* * *",
            "61 * * * *",
            "@every",
            "@every soon",
            "@every 10ms",
            "@every 1s500ms",
            "@sometimes",
        ] {
            let e = Schedule::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
            assert!(e.contains("@every 1h30m"), "{e}");
        }
    }

    /// Table: (schedule, window after, window until, fires).
    #[test]
    fn fires_within_the_window_only() {
        let cases = [
            (
                "0 3 * * *",
                "2026-11-23T02:50:00Z",
                "2026-11-23T03:05:00Z",
                true,
            ),
            (
                "0 3 * * *",
                "2026-11-23T03:00:00Z",
                "2026-11-23T03:15:00Z",
                false,
            ),
            (
                "0 3 * * *",
                "2026-11-23T02:45:00Z",
                "2026-11-23T03:00:00Z",
                true,
            ),
            (
                "0 3 * * *",
                "2026-11-23T03:05:00Z",
                "2026-11-24T02:59:59Z",
                false,
            ),
            (
                "*/15 * * * *",
                "2026-11-23T10:01:00Z",
                "2026-11-23T10:16:00Z",
                true,
            ),
            (
                "*/15 * * * *",
                "2026-11-23T10:01:00Z",
                "2026-11-23T10:14:59Z",
                false,
            ),
            (
                "@hourly",
                "2026-11-23T10:30:00Z",
                "2026-11-23T11:00:00Z",
                true,
            ),
            (
                "@every 1h",
                "2026-11-23T10:30:00Z",
                "2026-11-23T10:59:00Z",
                false,
            ),
            (
                "@every 1h",
                "2026-11-23T10:30:00Z",
                "2026-11-23T11:00:00Z",
                true,
            ),
            (
                "@every 5m",
                "2026-11-23T10:00:01Z",
                "2026-11-23T10:15:01Z",
                true,
            ),
            (
                "@every 24h",
                "2026-11-23T00:00:00Z",
                "2026-11-23T23:59:59Z",
                false,
            ),
            (
                "@every 24h",
                "2026-11-23T23:50:00Z",
                "2026-11-24T00:05:00Z",
                true,
            ),
            (
                "0 0 3 * * *",
                "2026-11-23T02:59:59Z",
                "2026-11-23T03:00:00Z",
                true,
            ),
            (
                "0 3 * * *",
                "2026-11-23T03:05:00Z",
                "2026-11-23T03:05:00Z",
                false,
            ),
        ];
        for (s, after, until, fires) in cases {
            let schedule = Schedule::parse(s).unwrap();
            assert_eq!(
                schedule.fires_between(t(after), t(until)),
                fires,
                "{s} in ({after}, {until}]"
            );
        }
    }

    #[test]
    fn regression_fuzzed_schedules_that_searched_for_minutes_are_refused() {
        for bad in [
            "*/95 , * * 0-5",
            "*/95 * * * *",
            "0 , * * *",
            "1,,2 * * * *",
            "*/0 * * * *",
        ] {
            let err = Schedule::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(bad.trim()), "{err}");
        }
        for good in [
            "*/15 * * * *",
            "0 3 * * 1-5",
            "0,30 * * * *",
            "*/30 * * * * *",
        ] {
            let s = Schedule::parse(good).expect(good);
            assert!(
                s.next_after(chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap())
                    .is_some(),
                "{good}"
            );
        }
    }

    #[test]
    fn next_after_is_strictly_later() {
        let s = Schedule::parse("@every 15m").unwrap();
        assert_eq!(
            s.next_after(t("2026-11-23T10:15:00Z")),
            Some(t("2026-11-23T10:30:00Z"))
        );
        let s = Schedule::parse("0 3 * * *").unwrap();
        assert_eq!(
            s.next_after(t("2026-11-23T03:00:00Z")),
            Some(t("2026-11-24T03:00:00Z"))
        );
    }

    #[test]
    fn a_window_makes_scheduled_workloads_due_only_when_they_fire_in_it() {
        let now = Timestamp::parse("2026-11-23T10:15:00Z").unwrap();
        let quarter = Some(Duration::from_secs(15 * 60));
        let nightly = Schedule::parse("0 3 * * *").unwrap();
        let every5 = Schedule::parse("@every 5m").unwrap();
        let window = Window::last(quarter, now);
        assert_eq!(window.since.unwrap().to_string(), "2026-11-23T10:00:00Z");
        assert_eq!(window.due(None), Due::Yes, "no schedule: every pass");
        assert_eq!(window.due(Some(&every5)), Due::Yes);
        assert_eq!(
            window.due(Some(&nightly)),
            Due::No {
                next: Some(Timestamp::parse("2026-11-24T03:00:00Z").unwrap())
            }
        );
        assert_eq!(Window::last(None, now).due(Some(&nightly)), Due::Yes);
        assert_eq!(Window::everything(now).due(Some(&nightly)), Due::Yes);
    }

    proptest::proptest! {
        /// Consecutive windows that tile a span see each firing exactly once: a run
        /// every `interval` neither misses nor repeats a scheduled instant.
        #[test]
        fn tiled_windows_see_each_instant_once(
            start in 1_700_000_000i64..1_800_000_000,
            interval in 60i64..7200,
            period_minutes in 1u64..240,
        ) {
            let s = Schedule::parse(&format!("@every {period_minutes}m")).unwrap();
            let span = 12 * 3600;
            let mut fired = 0u64;
            let mut at = start;
            while at < start + span {
                let after = DateTime::from_timestamp(at, 0).unwrap();
                let until = DateTime::from_timestamp(at + interval, 0).unwrap();
                if s.fires_between(after, until) {
                    fired += 1;
                }
                at += interval;
            }
            let end = at;
            let p = (period_minutes * 60) as i64;
            let instants = (end.div_euclid(p) - start.div_euclid(p)) as u64;
            // A window fires once however many instants it holds.
            proptest::prop_assert!(fired <= instants);
            if interval <= p {
                proptest::prop_assert_eq!(fired, instants);
            }
        }
    }
}
