//! Small helpers shared by the test bed: RFC 3339 timestamps, random names and
//! tokens, template hashes, and JSON path access.
//!
//! Owns no state and performs no I/O besides reading the system clock and the
//! system random source; it must not know about HTTP or the store.

use std::time::{SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value;

/// The current time as Kubernetes writes it (`2026-11-23T09:22:05Z`).
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_rfc3339(secs)
}

/// The current time with microseconds, as Kubernetes writes `MicroTime` fields.
pub fn now_rfc3339_micro() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let base = format_rfc3339(now.as_secs());
    format!("{}.{:06}Z", base.trim_end_matches('Z'), now.subsec_micros())
}

/// Formats seconds since the Unix epoch as RFC 3339 in UTC.
pub fn format_rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i64 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The alphabet Kubernetes uses for generated name suffixes and template hashes.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `n` random bytes from the system random source.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the system random source is available");
    buf
}

/// A random suffix of `n` characters, as `generateName` and ReplicaSet pods use.
pub fn random_suffix(n: usize) -> String {
    random_bytes(n)
        .into_iter()
        .map(|b| SAFE_ALPHABET[b as usize % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// A random lowercase hex string of `2 * bytes` characters.
pub fn random_hex(bytes: usize) -> String {
    random_bytes(bytes)
        .into_iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A random UUID (version 4) string for `metadata.uid`.
pub fn random_uuid() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A stable short hash of a JSON value, in the safe alphabet (like
/// `pod-template-hash`). Object keys are hashed in sorted order, so equal values
/// hash equally even when serde_json keeps insertion order (its `preserve_order`
/// feature, which another crate of the workspace turns on, changes `Map`).
pub fn short_hash(value: &Value) -> String {
    let bytes = serde_json::to_vec(&sorted(value)).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let mut n = u64::from_be_bytes(digest.as_ref()[..8].try_into().unwrap_or([0; 8]));
    let mut out = String::new();
    for _ in 0..10 {
        out.push(SAFE_ALPHABET[(n % SAFE_ALPHABET.len() as u64) as usize] as char);
        n /= SAFE_ALPHABET.len() as u64;
    }
    out
}

/// A copy of `value` whose objects list their keys in sorted order.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The value at a dotted path (`spec.template.spec`), if every step exists.
pub fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(value, |v, key| v.get(key))
}

/// The string at a dotted path, or `""`.
pub fn str_at<'a>(value: &'a Value, path: &str) -> &'a str {
    get_path(value, path).and_then(Value::as_str).unwrap_or("")
}

/// The integer at a dotted path, or `default`.
pub fn i64_at(value: &Value, path: &str, default: i64) -> i64 {
    get_path(value, path)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

/// A mutable reference to the object at a dotted path, creating empty objects
/// on the way (and replacing non-objects).
pub fn ensure_obj<'a>(value: &'a mut Value, path: &str) -> &'a mut serde_json::Map<String, Value> {
    let mut cur = value;
    for key in path.split('.').filter(|p| !p.is_empty()) {
        if !cur.is_object() {
            *cur = Value::Object(Default::default());
        }
        cur = cur
            .as_object_mut()
            .expect("just made an object")
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Default::default());
    }
    cur.as_object_mut().expect("just made an object")
}

/// Sets the value at a dotted path, creating parents.
pub fn set_path(value: &mut Value, path: &str, new: Value) {
    let (parent, last) = match path.rsplit_once('.') {
        Some((p, l)) => (p, l),
        None => ("", path),
    };
    ensure_obj(value, parent).insert(last.to_string(), new);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_timestamps() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_795_425_725, "2026-11-23T09:22:05Z"),
        ] {
            assert_eq!(format_rfc3339(secs), want, "{secs}");
        }
    }

    #[test]
    fn uuid_has_version_4_shape() {
        let u = random_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn short_hash_is_stable_and_sensitive() {
        let a = serde_json::json!({"a": 1, "b": [1, 2]});
        let b = serde_json::json!({"b": [1, 2], "a": 1});
        assert_eq!(short_hash(&a), short_hash(&b));
        assert_ne!(short_hash(&a), short_hash(&serde_json::json!({"a": 2})));
    }
}
