//! Points in time, as the cluster refresh writes and compares them.
//!
//! Owns [`Timestamp`]: a UTC instant to the whole second, written one way only
//! (RFC 3339 with a `Z`, `2026-11-23T10:00:00Z`) in the audit annotations, the
//! `restartedAt` pod-template annotation, reports and `status`. Parsing accepts any
//! RFC 3339 offset and converts it to UTC. Must not read the clock: the shells pass
//! the time in (their `Clock`), so every decision can be replayed at a chosen instant.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound as _, Utc};

/// Why a time did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// The text is not an RFC 3339 time.
    #[error("{value:?} is not an RFC 3339 time (2026-11-23T10:00:00Z)")]
    NotRfc3339 {
        /// The time as written.
        value: String,
    },
}

/// A UTC instant to the whole second. Displays as RFC 3339 (`…T10:00:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The instant `t`, truncated to the second (freshet writes whole seconds, so a
    /// time read back from an annotation equals the one that was written).
    pub fn from_utc(t: DateTime<Utc>) -> Self {
        Self(t.trunc_subsecs(0))
    }

    /// `secs` seconds after the Unix epoch (`None` when out of range).
    pub fn from_unix(secs: i64) -> Option<Self> {
        DateTime::from_timestamp(secs, 0).map(Self)
    }

    /// Parses an RFC 3339 time (any offset; fractions of a second are dropped).
    pub fn parse(value: &str) -> Result<Self, TimeError> {
        DateTime::parse_from_rfc3339(value.trim())
            .map(|t| Self::from_utc(t.with_timezone(&Utc)))
            .map_err(|_| TimeError::NotRfc3339 {
                value: value.to_owned(),
            })
    }

    /// The instant as chrono's UTC time (for schedules).
    pub fn utc(self) -> DateTime<Utc> {
        self.0
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(self) -> i64 {
        self.0.timestamp()
    }

    /// `d` earlier (`None` when out of range); sub-second parts of `d` are dropped.
    pub fn checked_sub(self, d: Duration) -> Option<Self> {
        let d = chrono::Duration::from_std(Duration::from_secs(d.as_secs())).ok()?;
        self.0.checked_sub_signed(d).map(Self)
    }

    /// `d` later (`None` when out of range); sub-second parts of `d` are dropped.
    pub fn checked_add(self, d: Duration) -> Option<Self> {
        let d = chrono::Duration::from_std(Duration::from_secs(d.as_secs())).ok()?;
        self.0.checked_add_signed(d).map(Self)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self::from_utc(t)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_utc_seconds_whatever_the_input_offset() {
        let cases = [
            ("2026-11-23T10:00:00Z", "2026-11-23T10:00:00Z"),
            ("2026-11-23T11:00:00+01:00", "2026-11-23T10:00:00Z"),
            ("2026-11-23T10:00:00.999Z", "2026-11-23T10:00:00Z"),
            (" 2026-11-23T10:00:00Z ", "2026-11-23T10:00:00Z"),
        ];
        for (input, written) in cases {
            assert_eq!(
                Timestamp::parse(input).unwrap().to_string(),
                written,
                "{input}"
            );
        }
        for bad in ["", "yesterday", "2026-11-23", "2026-11-23 10:00"] {
            let e = Timestamp::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn arithmetic_stays_in_whole_seconds() {
        let t = Timestamp::parse("2026-11-23T10:00:00Z").unwrap();
        assert_eq!(
            t.checked_sub(Duration::from_millis(15 * 60 * 1000 + 500))
                .unwrap()
                .to_string(),
            "2026-11-23T09:45:00Z"
        );
        assert_eq!(
            t.checked_add(Duration::from_secs(90)).unwrap().to_string(),
            "2026-11-23T10:01:30Z"
        );
        assert_eq!(Timestamp::from_unix(t.unix_seconds()), Some(t));
        assert_eq!(
            serde_json::to_value(t).unwrap(),
            serde_json::json!("2026-11-23T10:00:00Z")
        );
    }
}
