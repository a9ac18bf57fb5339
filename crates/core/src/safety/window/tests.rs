//! Windows: grammar, DST nights in Europe/Berlin, windows across midnight, and a
//! property test that `next_open` is open and nothing between `now` and it is.

use proptest::prelude::*;

use super::*;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn w(s: &str) -> Window {
    Window::parse("rules[0].windows[0]", s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn accepted_forms() {
    for ok in [
        "Mon-Fri 02:00-05:00 Europe/Berlin",
        "Sat,Sun 00:00-24:00 UTC",
        "Fri-Mon 22:00-02:00 America/New_York",
        "* 01:00-01:30 Asia/Kathmandu",
        "03:00-04:00 Europe/London",
        "monday,Wednesday,fri 9:00-17:00 Europe/Berlin",
        "  Mon-Fri   02:00-05:00   Europe/Berlin ",
    ] {
        w(ok);
    }
    assert_eq!(
        w("  Mon-Fri   02:00-05:00   Europe/Berlin ").as_str(),
        "Mon-Fri 02:00-05:00 Europe/Berlin"
    );
}

#[test]
fn rejected_forms_name_the_key_the_value_and_the_fix() {
    let cases = [
        ("", "empty"),
        ("Mon-Fri 02:00-05:00", "days, a time range and a zone"),
        (
            "Mon-Fri 02:00-05:00 Berlin",
            "\"Berlin\" is not an IANA time zone",
        ),
        ("Mon-Fri 02:00-05:00 europe/berlin", "IANA"),
        ("Mon-Fry 02:00-05:00 UTC", "\"Fry\" is not a day"),
        ("Mon-Fri 2-5 UTC", "not a time"),
        ("Mon-Fri 02:00 UTC", "not a time range"),
        ("Mon-Fri 25:00-05:00 UTC", "\"25:00\" is not a time"),
        ("Mon-Fri 24:00-05:00 UTC", "\"24:00\" is not a time"),
        ("Mon-Fri 02:60-05:00 UTC", "not a time"),
        ("Mon-Fri 02:00-02:00 UTC", "00:00-24:00"),
        ("Mon Fri 02:00-05:00 UTC extra", "separated by spaces"),
    ];
    for (value, want) in cases {
        let e = Window::parse("rules[0].windows[1]", value)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("rules[0].windows[1]: window"), "{e}");
        assert!(e.contains(&format!("{value:?}")), "{e}");
        assert!(e.contains(want), "{value}: {e}");
        assert!(e.contains("Mon-Fri 02:00-05:00 Europe/Berlin"), "{e}");
    }
    let e = Windows::parse("rules[2].windows", &["UTC 02:00-03:00"])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("rules[2].windows[0]"), "{e}");
}

/// Table: (window, now, open, next open).
#[test]
fn open_and_next_open_table() {
    let berlin = "Mon-Fri 02:00-05:00 Europe/Berlin";
    let cases = [
        // Winter (CET, +01:00): 02:00-05:00 local is 01:00-04:00 UTC.
        (
            berlin,
            "2026-11-23T00:59:59Z",
            false,
            "2026-11-23T01:00:00Z",
        ),
        (berlin, "2026-11-23T01:00:00Z", true, "2026-11-23T01:00:00Z"),
        (berlin, "2026-11-23T03:59:59Z", true, "2026-11-23T03:59:59Z"),
        (
            berlin,
            "2026-11-23T04:00:00Z",
            false,
            "2026-11-24T01:00:00Z",
        ),
        // Friday after the window: next is Monday.
        (
            berlin,
            "2026-11-27T04:00:00Z",
            false,
            "2026-11-30T01:00:00Z",
        ),
        // Summer (CEST, +02:00): 00:00-03:00 UTC.
        (berlin, "2026-07-06T00:30:00Z", true, "2026-07-06T00:30:00Z"),
        (
            berlin,
            "2026-07-05T12:00:00Z",
            false,
            "2026-07-06T00:00:00Z",
        ),
        // Across midnight: Friday 22:00 to Saturday 02:00 UTC.
        (
            "Fri 22:00-02:00 UTC",
            "2026-11-28T01:00:00Z",
            true,
            "2026-11-28T01:00:00Z",
        ),
        (
            "Fri 22:00-02:00 UTC",
            "2026-11-28T02:00:00Z",
            false,
            "2026-12-04T22:00:00Z",
        ),
        (
            "Fri 22:00-02:00 UTC",
            "2026-11-27T21:59:00Z",
            false,
            "2026-11-27T22:00:00Z",
        ),
        // A range that wraps the week.
        (
            "Fri-Mon 12:00-13:00 UTC",
            "2026-11-24T12:30:00Z",
            false,
            "2026-11-27T12:00:00Z",
        ),
        (
            "Sat,Sun 00:00-24:00 UTC",
            "2026-11-27T23:59:59Z",
            false,
            "2026-11-28T00:00:00Z",
        ),
    ];
    for (window, now, open, next) in cases {
        let win = w(window);
        assert_eq!(win.is_open(t(now)), open, "{window} at {now}");
        assert_eq!(win.next_open(t(now)), Some(t(next)), "{window} from {now}");
    }
}

#[test]
fn dst_nights_in_berlin() {
    // 2026-03-29: clocks jump from 02:00 CET to 03:00 CEST (01:00 UTC). A window
    // starting at 02:00 opens when the clocks jump.
    let sunday = w("Sun 02:00-05:00 Europe/Berlin");
    assert_eq!(
        sunday.next_open(t("2026-03-28T12:00:00Z")),
        Some(t("2026-03-29T01:00:00Z"))
    );
    assert!(!sunday.is_open(t("2026-03-29T00:59:59Z")));
    assert!(sunday.is_open(t("2026-03-29T01:00:00Z")));
    assert!(!sunday.is_open(t("2026-03-29T03:00:00Z")));
    // A window inside the skipped hour does not open that night: the next Sunday.
    let skipped = w("Sun 02:15-02:45 Europe/Berlin");
    assert_eq!(
        skipped.next_open(t("2026-03-28T12:00:00Z")),
        Some(t("2026-04-05T00:15:00Z"))
    );
    // 2026-10-25: clocks fall back from 03:00 CEST to 02:00 CET (01:00 UTC). The
    // window opens at 02:00 CEST (00:00 UTC) and closes at 05:00 CET (04:00 UTC).
    assert_eq!(
        sunday.next_open(t("2026-10-24T12:00:00Z")),
        Some(t("2026-10-25T00:00:00Z"))
    );
    assert!(sunday.is_open(t("2026-10-25T03:59:59Z")));
    assert!(!sunday.is_open(t("2026-10-25T04:00:00Z")));
    // The repeated hour is inside a window twice: 02:00-02:30 opens at 02:00 CEST
    // and again at 02:00 CET.
    let repeated = w("Sun 02:00-02:30 Europe/Berlin");
    assert_eq!(
        repeated.next_open(t("2026-10-25T00:30:00Z")),
        Some(t("2026-10-25T01:00:00Z"))
    );
    // A window the fall-back jumps into opens at the jump: 01:00-02:30 closes at
    // 02:30 CEST and opens again when 03:00 CEST becomes 02:00 CET.
    let jump = w("Sun 01:00-02:30 Europe/Berlin");
    assert_eq!(
        jump.next_open(t("2026-10-25T00:30:00Z")),
        Some(t("2026-10-25T01:00:00Z"))
    );
}

#[test]
fn windows_lists_are_open_when_any_is_and_empty_means_always() {
    let none = Windows::default();
    assert!(none.is_open(t("2026-11-23T12:00:00Z")));
    assert_eq!(
        none.next_open(t("2026-11-23T12:00:00Z")),
        Some(t("2026-11-23T12:00:00Z"))
    );
    let two = Windows::parse("windows", &["Mon 02:00-03:00 UTC", "Sun 10:00-11:00 UTC"]).unwrap();
    assert_eq!(
        two.next_open(t("2026-11-24T00:00:00Z")),
        Some(t("2026-11-29T10:00:00Z"))
    );
    assert!(two.is_open(t("2026-11-23T02:30:00Z")));
}

const ZONES: [&str; 9] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "America/Santiago",
    "Africa/Casablanca",
    "Europe/London",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    /// `next_open` is open, and no minute between `now` and it is (nor the second
    /// before it), across zones with DST, half-hour DST and odd offsets.
    #[test]
    fn next_open_is_open_and_nothing_earlier_is(
        days in 1u8..128,
        start in 0u32..96,
        length in 1u32..96,
        zone in 0usize..ZONES.len(),
        now in 1_700_000_000i64..2_100_000_000,
    ) {
        let day_list: Vec<&str> = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
            .iter()
            .enumerate()
            .filter(|(i, _)| days & (1 << i) != 0)
            .map(|(_, d)| *d)
            .collect();
        let (s, e) = (start * 15, (start * 15 + length * 15) % 1440);
        prop_assume!(s != e);
        let text = format!(
            "{} {:02}:{:02}-{:02}:{:02} {}",
            day_list.join(","), s / 60, s % 60, e / 60, e % 60, ZONES[zone]
        );
        let win = Window::parse("w", &text).unwrap();
        let now = DateTime::from_timestamp(now, 0).unwrap();
        let next = win.next_open(now).expect("opens within two weeks");
        prop_assert!(win.is_open(next), "{text}: next {next} is closed");
        if next > now {
            prop_assert!(!win.is_open(next - Duration::seconds(1)), "{text}: open before {next}");
            let mut at = now;
            while at < next {
                prop_assert!(!win.is_open(at), "{text}: open at {at}, before {next}");
                at += Duration::minutes(1);
            }
        }
    }
}
