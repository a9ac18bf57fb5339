//! Maintenance windows: when freshet may start rollouts.
//!
//! Owns the window grammar of a rule's `windows: ["Mon-Fri 02:00-05:00
//! Europe/Berlin"]` and the two questions a run asks: is a window open now
//! ([`Windows::is_open`]), and when does the next one open ([`Windows::next_open`],
//! for `status` and for the due time of queued work)?
//!
//! A window is `DAYS HH:MM-HH:MM ZONE`: days are `Mon`…`Sun` (or full names), ranges
//! (`Mon-Fri`, `Fri-Mon` wraps) and lists (`Sat,Sun`), `*` for every day, or left
//! out for every day; an end at or before the start runs past midnight into the next
//! day (`Fri 22:00-02:00` is Friday night); `24:00` ends at midnight; the zone is an
//! IANA name (`Europe/Berlin`, `UTC`). Times are wall-clock times in that zone, so
//! windows follow daylight saving time: on the night clocks spring forward, a window
//! starting inside the skipped hour opens when the clocks jump; on the night they
//! fall back, the repeated hour is inside the window twice. An empty list means
//! always open. Must not read the clock: callers pass `now`.

use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, Offset, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// The window grammar, for error messages.
pub const WINDOW_FORMS: &str = "write DAYS HH:MM-HH:MM ZONE, e.g. \"Mon-Fri 02:00-05:00 Europe/Berlin\" \
     (days Mon..Sun, ranges such as Fri-Mon, lists such as Sat,Sun, or * for every day; \
     an end at or before the start runs past midnight; the zone is an IANA name or UTC)";

/// How far ahead [`Window::next_open`] looks (a week, plus room for DST shifts).
const HORIZON_DAYS: i64 = 16;

/// Why a window was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The window does not parse.
    #[error("{key}: window {value:?}: {reason}; {WINDOW_FORMS}")]
    Invalid {
        /// The config key, e.g. `rules[0].windows[1]`.
        key: String,
        /// The window as written.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

/// One maintenance window. Compares by its text.
#[derive(Debug, Clone)]
pub struct Window {
    text: String,
    /// Monday first.
    days: [bool; 7],
    /// Seconds from local midnight.
    start: u32,
    /// Seconds from local midnight (up to 86 400); at or before `start`: next day.
    end: u32,
    zone: Tz,
}

impl PartialEq for Window {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Window {}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

const DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

fn day(name: &str) -> Result<usize, String> {
    let n = name.trim().to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|d| n.len() >= 3 && d.starts_with(&n))
        .ok_or_else(|| format!("{name:?} is not a day (Mon, Tue, … Sun)"))
}

fn days(spec: &str) -> Result<[bool; 7], String> {
    let mut out = [false; 7];
    if spec == "*" {
        return Ok([true; 7]);
    }
    for item in spec.split(',') {
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    out[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => out[day(item)?] = true,
        }
    }
    Ok(out)
}

fn clock(text: &str, allow_24: bool) -> Result<u32, String> {
    let bad = || format!("{text:?} is not a time (HH:MM, 00:00 to 24:00)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    match (h, m) {
        (24, 0) if allow_24 => Ok(86_400),
        (0..=23, 0..=59) => Ok(h * 3600 + m * 60),
        _ => Err(bad()),
    }
}

impl Window {
    /// Parses a window; `key` names it in errors.
    pub fn parse(key: &str, value: &str) -> Result<Window, WindowError> {
        let invalid = |reason: String| WindowError::Invalid {
            key: key.to_owned(),
            value: value.to_owned(),
            reason,
        };
        let tokens: Vec<&str> = value.split_whitespace().collect();
        let (day_spec, range, zone) = match tokens.as_slice() {
            [d, r, z] => (*d, *r, *z),
            [r, z] if r.contains(':') => ("*", *r, *z),
            [] => return Err(invalid("it is empty".into())),
            _ => {
                return Err(invalid(
                    "expected days, a time range and a zone, separated by spaces".into(),
                ));
            }
        };
        let days = days(day_spec).map_err(invalid)?;
        let (start, end) = range
            .split_once('-')
            .ok_or_else(|| invalid(format!("{range:?} is not a time range (HH:MM-HH:MM)")))?;
        let start = clock(start, false).map_err(invalid)?;
        let end = clock(end, true).map_err(invalid)?;
        if start == end {
            return Err(invalid(
                "the window starts and ends at the same time; for a whole day write 00:00-24:00"
                    .into(),
            ));
        }
        let zone = Tz::from_str(zone)
            .map_err(|_| invalid(format!("{zone:?} is not an IANA time zone (Europe/Berlin)")))?;
        Ok(Window {
            text: tokens.join(" "),
            days,
            start,
            end,
            zone,
        })
    }

    /// The window as written (spaces normalised).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the window is open at `now`.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.zone).naive_local();
        let wd = local.weekday().num_days_from_monday() as usize;
        let yesterday = (wd + 6) % 7;
        let s = local.num_seconds_from_midnight();
        if self.end > self.start {
            self.days[wd] && (self.start..self.end).contains(&s)
        } else {
            (self.days[wd] && s >= self.start) || (self.days[yesterday] && s < self.end)
        }
    }

    /// `now` when the window is open, else the first instant after `now` at which it
    /// opens (`None` when it does not open within about two weeks, which only a
    /// window swallowed by a DST jump every time could do).
    pub fn next_open(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_open(now) {
            return Some(now);
        }
        let today = now.with_timezone(&self.zone).date_naive();
        let mut candidates: Vec<DateTime<Utc>> = Vec::new();
        // The window opens either when local time reaches a start (continuously) or
        // when the zone's offset jumps into the window.
        for offset in -1..=HORIZON_DAYS {
            let Some(date) = today.checked_add_signed(Duration::days(offset)) else {
                continue;
            };
            if !self.days[date.weekday().num_days_from_monday() as usize] {
                continue;
            }
            candidates.extend(self.starts_on(date));
        }
        candidates.extend(transitions(
            self.zone,
            now,
            now + Duration::days(HORIZON_DAYS),
        ));
        candidates
            .into_iter()
            .filter(|c| *c > now && self.is_open(*c))
            .min()
    }

    fn starts_on(&self, date: NaiveDate) -> Vec<DateTime<Utc>> {
        let Some(local) = date.and_hms_opt(self.start / 3600, self.start % 3600 / 60, 0) else {
            return Vec::new();
        };
        match self.zone.from_local_datetime(&local) {
            LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
            LocalResult::Ambiguous(a, b) => vec![a.with_timezone(&Utc), b.with_timezone(&Utc)],
            LocalResult::None => Vec::new(),
        }
    }
}

/// The instants in `(from, until]` at which `zone`'s UTC offset changes (found by
/// hourly samples and bisection to the second).
fn transitions(zone: Tz, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let offset = |t: DateTime<Utc>| zone.offset_from_utc_datetime(&t.naive_utc()).fix();
    let mut out = Vec::new();
    let mut at = from;
    while at < until {
        let next = at + Duration::hours(1);
        let before = offset(at);
        if offset(next) != before {
            let (mut lo, mut hi) = (at, next);
            while hi - lo > Duration::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if offset(mid) == before {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            out.push(hi.with_nanosecond(0).unwrap_or(hi));
        }
        at = next;
    }
    out
}

/// A rule's windows: open when any is open; no windows means always open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Windows(pub Vec<Window>);

impl Windows {
    /// Parses a list; `key` is the list's config path (`rules[0].windows`).
    pub fn parse<S: AsRef<str>>(key: &str, values: &[S]) -> Result<Windows, WindowError> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Window::parse(&format!("{key}[{i}]"), v.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(Windows)
    }

    /// Whether freshet may act at `now`.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.0.is_empty() || self.0.iter().any(|w| w.is_open(now))
    }

    /// `now` when open, else when the first window opens.
    pub fn next_open(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.0.is_empty() {
            return Some(now);
        }
        self.0.iter().filter_map(|w| w.next_open(now)).min()
    }
}

#[cfg(test)]
mod tests;
