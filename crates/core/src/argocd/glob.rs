//! Go's `path/filepath.Match` glob dialect, which Image Updater uses for `ignore-tags`
//! (`registry-scanner/pkg/image/version.go`, `IsTagIgnored`) and for an `ImageUpdater`'s
//! `namePattern` (`pkg/argocd/argocd.go`, `nameMatchesPattern`).
//!
//! Owns validating and matching such patterns: `*` (any run of characters but `/`), `?`
//! (one character but `/`), `[a-z]`, `[^a-z]` and `\` escapes. Must not compile patterns
//! into regexes or touch anything but strings; matching is linear-time backtracking on
//! the last `*` only, so a hostile pattern cannot blow up.

/// The longest pattern accepted.
pub(crate) const MAX_PATTERN: usize = 512;

/// Checks that `pattern` is well formed, or says why not.
pub(crate) fn validate(pattern: &str) -> Result<(), String> {
    if pattern.len() > MAX_PATTERN {
        return Err(format!(
            "the pattern is {} bytes long; the limit is {MAX_PATTERN}",
            pattern.len()
        ));
    }
    let p: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err("the pattern ends with a lone \\".into());
                }
                i += 2;
            }
            '[' => i = class_end(&p, i)?,
            _ => i += 1,
        }
    }
    Ok(())
}

/// Whether `name` matches `pattern` (which must have passed [`validate`]; a malformed
/// pattern matches nothing, as in Go).
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    if validate(pattern).is_err() {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    let (mut pi, mut si) = (0usize, 0usize);
    // The position after the last `*` and the text position it resumes from.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() && p[pi] == '*' {
            pi += 1;
            star = Some((pi, si));
            continue;
        }
        if si == s.len() && pi == p.len() {
            return true;
        }
        if si < s.len()
            && pi < p.len()
            && let Some(next) = step(&p, pi, s[si])
        {
            pi = next;
            si += 1;
            continue;
        }
        // Backtrack: let the last star swallow one more character (never a `/`).
        match star {
            Some((after, from)) if from < s.len() && s[from] != '/' => {
                star = Some((after, from + 1));
                pi = after;
                si = from + 1;
            }
            _ => return false,
        }
    }
}

/// Matches one pattern element at `pi` against `c`; the next pattern index on success.
fn step(p: &[char], pi: usize, c: char) -> Option<usize> {
    match p[pi] {
        '?' => (c != '/').then_some(pi + 1),
        '\\' => (p.get(pi + 1) == Some(&c)).then_some(pi + 2),
        '[' => {
            let end = class_end(p, pi).ok()?;
            class_matches(&p[pi + 1..end - 1], c).then_some(end)
        }
        lit => (lit == c).then_some(pi + 1),
    }
}

/// The index after the `]` closing the class that opens at `start`.
fn class_end(p: &[char], start: usize) -> Result<usize, String> {
    let mut i = start + 1;
    if p.get(i) == Some(&'^') {
        i += 1;
    }
    let mut items = 0;
    loop {
        match p.get(i) {
            None => return Err("a character class [ is not closed".into()),
            Some(']') if items > 0 => return Ok(i + 1),
            Some(']') => return Err("a character class [] is empty".into()),
            Some('\\') => {
                if i + 1 >= p.len() {
                    return Err("the pattern ends with a lone \\".into());
                }
                i += 2;
            }
            Some(_) => i += 1,
        }
        items += 1;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|c| *c != ']') {
            i += 1;
            match p.get(i) {
                Some('\\') => i += 2,
                Some(_) => i += 1,
                None => return Err("a range in a character class is not closed".into()),
            }
        }
    }
}

/// Whether `c` is in the class body (between `[` and `]`, negation included).
fn class_matches(body: &[char], c: char) -> bool {
    let (negated, body) = match body.first() {
        Some('^') => (true, &body[1..]),
        _ => (false, body),
    };
    let mut i = 0;
    let mut hit = false;
    let take = |i: &mut usize| -> char {
        if body[*i] == '\\' {
            *i += 1;
        }
        let ch = body[*i];
        *i += 1;
        ch
    };
    while i < body.len() {
        let lo = take(&mut i);
        let hi = if i + 1 < body.len() && body[i] == '-' {
            i += 1;
            take(&mut i)
        } else {
            lo
        };
        if lo <= c && c <= hi {
            hit = true;
        }
    }
    hit != negated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_filepath_match_semantics() {
        let cases = [
            ("*", "latest", true),
            ("*", "", true),
            ("*", "a/b", false),
            ("app-*", "app-1", true),
            ("app-*", "ap-1", false),
            ("app-?", "app-1", true),
            ("app-?", "app-12", false),
            ("app-[1234567]", "app-3", true),
            ("app-[1234567]", "app-9", false),
            ("app-[^0-9]", "app-x", true),
            ("app-[^0-9]", "app-1", false),
            ("v[0-9].*", "v1.2", true),
            ("*-rc*", "1.2.0-rc1", true),
            ("*-rc*", "1.2.0", false),
            ("sha-*", "sha-1a2b3c", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("*a*b*", "xaybz", true),
            ("latest", "latest", true),
            ("latest", "latest2", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(matches(pattern, name), want, "{pattern} vs {name}");
        }
    }

    #[test]
    fn malformed_patterns_are_rejected_and_match_nothing() {
        for bad in ["[", "a[b", "[]", "a\\", "[a-"] {
            assert!(validate(bad).is_err(), "{bad}");
            assert!(!matches(bad, "a"), "{bad}");
        }
        assert!(validate(&"*".repeat(MAX_PATTERN + 1)).is_err());
    }

    #[test]
    fn many_stars_stay_fast() {
        let pattern = "*a".repeat(200);
        let name = "a".repeat(199) + "b";
        assert!(!matches(&pattern, &name));
    }
}
