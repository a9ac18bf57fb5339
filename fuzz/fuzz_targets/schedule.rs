//! `freshet_core::refresh::schedule`: parsing never panics, and a schedule's next
//! firing is after the given time.
#![no_main]

use chrono::{DateTime, Utc};
use freshet_core::refresh::Schedule;
use freshet_core::refresh::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    if let Ok(t) = Timestamp::parse(input) {
        let _ = t.to_string();
    }
    let Ok(schedule) = Schedule::parse(input) else {
        return;
    };
    let _ = schedule.as_str();
    let now: DateTime<Utc> = DateTime::from_timestamp(1_790_000_000, 0).expect("valid");
    let later = DateTime::from_timestamp(1_790_086_400, 0).expect("valid");
    if let Some(next) = schedule.next_after(now) {
        assert!(next > now, "next firing {next} is not after {now}");
    }
    let _ = schedule.fires_between(now, later);
    let _ = schedule.fires_between(later, now);
    let _ = schedule.next_after(DateTime::<Utc>::MAX_UTC);
});
