//! Cron schedules as CronJobs write them: five fields (minute, hour, day of
//! month, month, day of week) with `*`, ranges, steps, lists and names, and
//! the `@hourly`-style macros, evaluated in UTC.
//!
//! Owns parsing and matching. It must not read the clock: callers pass the
//! times they ask about.

/// A schedule could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The schedule does not have five fields (or a known macro).
    #[error("invalid schedule {0:?}: expected five fields or a macro such as @hourly")]
    Shape(String),
    /// One field is malformed or out of range.
    #[error("invalid schedule field {0:?}")]
    Field(String),
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    days_any: bool,
    weekdays_any: bool,
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(text: &str, names: &[&str], base: u32) -> Option<u32> {
    text.parse().ok().or_else(|| {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(text))
            .map(|i| i as u32 + base)
    })
}

fn field(
    text: &str,
    min: u32,
    max: u32,
    names: &[&str],
    base: u32,
) -> Result<Vec<bool>, CronError> {
    let bad = || CronError::Field(text.to_string());
    let mut set = vec![false; max as usize + 1];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(bad)?),
            None => (part, 1),
        };
        let (lo, hi) = match range {
            "*" | "?" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (
                    value(a, names, base).ok_or_else(bad)?,
                    value(b, names, base).ok_or_else(bad)?,
                ),
                None => {
                    let v = value(r, names, base).ok_or_else(bad)?;
                    (v, if part.contains('/') { max } else { v })
                }
            },
        };
        if lo < min || hi > max || lo > hi {
            return Err(bad());
        }
        for v in (lo..=hi).step_by(step as usize) {
            set[v as usize] = true;
        }
    }
    Ok(set)
}

impl Schedule {
    /// Parses a CronJob schedule.
    pub fn parse(text: &str) -> Result<Self, CronError> {
        let expanded = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let f: Vec<&str> = expanded.split_whitespace().collect();
        let [m, h, dom, mon, dow] = f.as_slice() else {
            return Err(CronError::Shape(text.to_string()));
        };
        let mut weekdays = field(dow, 0, 7, DAYS, 0)?;
        if weekdays[7] {
            weekdays[0] = true;
        }
        Ok(Self {
            minutes: field(m, 0, 59, &[], 0)?,
            hours: field(h, 0, 23, &[], 0)?,
            days: field(dom, 1, 31, &[], 0)?,
            months: field(mon, 1, 12, MONTHS, 1)?,
            weekdays,
            days_any: dom.starts_with('*') || *dom == "?",
            weekdays_any: dow.starts_with('*') || *dow == "?",
        })
    }

    /// Whether the schedule fires at the minute starting at `secs` (UTC).
    pub fn matches(&self, secs: u64) -> bool {
        let (_, month, day, hour, minute, weekday) = civil(secs);
        let day_ok = match (self.days_any, self.weekdays_any) {
            (true, true) => true,
            (false, true) => self.days[day as usize],
            (true, false) => self.weekdays[weekday as usize],
            // Standard cron: either restricted field may match.
            (false, false) => self.days[day as usize] || self.weekdays[weekday as usize],
        };
        self.minutes[minute as usize]
            && self.hours[hour as usize]
            && self.months[month as usize]
            && day_ok
    }

    /// The latest time the schedule fires in `(after, until]`, to the minute.
    pub fn latest_in(&self, after: u64, until: u64) -> Option<u64> {
        let mut t = until - until % 60;
        while t > after {
            if self.matches(t) {
                return Some(t);
            }
            t -= 60;
        }
        None
    }
}

/// (year, month, day, hour, minute, weekday with Sunday = 0) of a Unix time.
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = (z - era * 146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe as i64 + era * 400 + i64::from(month <= 2);
    let weekday = ((days + 4).rem_euclid(7)) as u32;
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        weekday,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23T09:22:05Z, a Monday.
    const MONDAY: u64 = 1_795_425_725;

    #[test]
    fn civil_time_of_a_known_instant() {
        assert_eq!(civil(MONDAY), (2026, 11, 23, 9, 22, 1));
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 4));
    }

    #[test]
    fn schedules_match_like_cron() {
        for (schedule, want) in [
            ("* * * * *", true),
            ("22 9 * * *", true),
            ("*/11 * * * *", true),
            ("*/5 * * * *", false),
            ("0-30/2 9 * * *", true),
            ("22 9 * nov mon", true),
            ("22 9 * * tue", false),
            ("22 9 1 * mon", true),
            ("22 9 1 * tue", false),
            ("22 9 23 * *", true),
            ("@hourly", false),
            ("22 9 * * 1-5", true),
            ("22 9 * * 7", false),
        ] {
            assert_eq!(
                Schedule::parse(schedule).unwrap().matches(MONDAY),
                want,
                "{schedule}"
            );
        }
    }

    #[test]
    fn bad_schedules_are_errors() {
        for s in [
            "",
            "* * * *",
            "60 * * * *",
            "* * * * * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "x * * * *",
        ] {
            assert!(Schedule::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn latest_in_finds_the_most_recent_missed_time() {
        let every_5 = Schedule::parse("*/5 * * * *").unwrap();
        // 09:22:05 → the latest at or before is 09:20:00.
        assert_eq!(every_5.latest_in(MONDAY - 600, MONDAY), Some(MONDAY - 125));
        assert_eq!(every_5.latest_in(MONDAY - 125, MONDAY), None);
    }
}
