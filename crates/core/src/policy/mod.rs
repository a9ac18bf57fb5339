//! Update policies and the pure decision engine (issue 3).
//!
//! Owns the policy grammar (`digest`, `semver:patch|minor|major|all`, `semver:<range>`,
//! `regex:<re>` with an order, `newest-build[:<re>]` ([`build`]), `never`, and Keel's `patch`, `minor`, `major`, `all`,
//! `glob:<pat>`, `regexp:<re>` and `force`), the facts a policy needs from a registry
//! ([`Needs`]), and [`decide`]: for the current tag, a policy and the [`Facts`] a shell
//! gathered, either [`Decision::Keep`] or [`Decision::Update`] with a reason.
//!
//! The engine never downgrades: if the tag list is missing, failed, empty or no longer
//! holds the current tag, the decision is to keep, with a warning saying why.
//!
//! Must not perform I/O: no registry calls, no clocks, no files. Shells fetch exactly
//! what [`Policy::needs`] asks for and pass it in.

pub mod build;
mod version;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

pub use build::{BuildTime, Builds, MAX_BUILD_CANDIDATES, decide_newest_build};
pub use version::{MAX_PARTS, Shape, Version};

use crate::Digest;

/// The most bytes a compiled user regex may take (the `regex` crate's `size_limit`).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Why a policy string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The string is empty.
    #[error("empty policy: use one of digest, semver:minor, semver:<range>, regex:<re>, never")]
    Empty,
    /// The policy name is not one we know.
    #[error(
        "unknown policy {0:?}: use digest, semver:patch|minor|major|all, semver:<range>, regex:<re>, never, or Keel's patch, minor, major, all, force, glob:<pat>, regexp:<re>"
    )]
    Unknown(String),
    /// `semver:` was followed by neither a level nor a valid range.
    #[error(
        "invalid semver range {range:?} in policy {input:?}: {message} (examples: semver:~1.4, semver:^2, semver:>=1.4 <2)"
    )]
    BadRange {
        /// The whole policy string.
        input: String,
        /// The range part.
        range: String,
        /// What the semver crate said.
        message: String,
    },
    /// The regular expression does not compile (or is too large).
    #[error("invalid regex {pattern:?} in policy {input:?}: {message}")]
    BadRegex {
        /// The whole policy string.
        input: String,
        /// The pattern part.
        pattern: String,
        /// What the regex crate said.
        message: String,
    },
    /// A policy that takes an argument was given none.
    #[error(
        "policy {0:?} needs an argument after the colon, for example regex:^v(?P<version>\\d+)$"
    )]
    MissingArgument(String),
    /// The sort order is not one we know.
    #[error("unknown order {0:?}: use alphabetical, numerical or semver")]
    UnknownOrder(String),
}

/// How far a semver policy may move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SemverRule {
    /// Same major and minor (`1.2.3` → `1.2.9`).
    Patch,
    /// Same major (`1.2.3` → `1.9.0`).
    Minor,
    /// Any newer release (`1.2.3` → `4.0.0`).
    Major,
    /// Any newer version, pre-releases included.
    All,
    /// Any newer version inside the range (`~1.4`, `^2`, `>=1.4, <2`).
    Range(semver::VersionReq),
}

/// How a regex policy orders its sort keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Byte-wise string order (the default; right for timestamps such as `20240115`).
    #[default]
    Alphabetical,
    /// The key parsed as an unsigned integer; tags whose key is not one are skipped.
    Numerical,
    /// The key parsed as a version tag; tags whose key is not one are skipped.
    Semver,
}

impl FromStr for Order {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "alphabetical" | "asc" => Ok(Order::Alphabetical),
            "numerical" | "numeric" => Ok(Order::Numerical),
            "semver" => Ok(Order::Semver),
            other => Err(PolicyError::UnknownOrder(other.to_owned())),
        }
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Order::Alphabetical => "alphabetical",
            Order::Numerical => "numerical",
            Order::Semver => "semver",
        })
    }
}

/// A compiled regex policy.
#[derive(Debug, Clone)]
pub struct RegexRule {
    regex: regex::Regex,
    key_group: Option<String>,
    order: Order,
}

impl RegexRule {
    /// The named capture that sets the sort key, if the pattern has one.
    pub fn key_group(&self) -> Option<&str> {
        self.key_group.as_deref()
    }
    /// Whether the pattern admits a tag.
    pub fn admits(&self, tag: &str) -> bool {
        self.regex.is_match(tag)
    }
    /// The order of the sort keys.
    pub fn order(&self) -> Order {
        self.order
    }
    /// The pattern.
    pub fn pattern(&self) -> &str {
        self.regex.as_str()
    }

    /// The sort key of a tag, or `None` if the tag does not match (or its key does not
    /// parse in the rule's order).
    fn key(&self, tag: &str) -> Option<SortKey> {
        let caps = self.regex.captures(tag)?;
        let text = match &self.key_group {
            Some(name) => caps.name(name)?.as_str(),
            None => caps.get(0)?.as_str(),
        };
        match self.order {
            Order::Alphabetical => Some(SortKey::Text(text.to_owned())),
            Order::Numerical => text.parse::<u128>().ok().map(SortKey::Number),
            Order::Semver => Version::parse(text).map(SortKey::Version),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Text(String),
    Number(u128),
    Version(Version),
}

/// What a policy tracks.
#[derive(Debug, Clone)]
pub enum PolicyKind {
    /// Track a floating tag: a new digest behind the same tag is an update.
    Digest,
    /// Move to the newest version the rule allows.
    Semver(SemverRule),
    /// Move to the tag with the greatest key among those the pattern matches.
    Regex(RegexRule),
    /// Keel's `force`: keep the tag string and follow its digest, whatever the tag
    /// (`:latest`, `:16`, `:1.4.2`). Upstream Keel without `matchTag` moves a version
    /// tag to a newer version; freshet never rewrites the tag (see `docs/keel.md`).
    Force,
    /// Move to the tag whose image was built last (the image config's `created`),
    /// among the tags the pattern admits: for tags that do not sort, such as git SHAs.
    NewestBuild(RegexRule),
    /// Never change this reference.
    Never,
}

/// An update policy: what to track, and whether pre-releases are welcome.
#[derive(Debug, Clone)]
pub struct Policy {
    kind: PolicyKind,
    prerelease: bool,
    source: String,
}

impl PartialEq for Policy {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}
impl Eq for Policy {}

fn compile_regex(input: &str, pattern: &str) -> Result<regex::Regex, PolicyError> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| PolicyError::BadRegex {
            input: input.to_owned(),
            pattern: pattern.to_owned(),
            message: e.to_string(),
        })
}

/// Translates a Keel glob (`*`, `?`) into an anchored regex.
fn glob_to_regex(glob: &str) -> String {
    let mut out = String::from("^");
    for c in glob.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    out
}

/// Accepts npm-style space-separated ranges (`>=1.4 <2`) as well as semver's commas.
fn parse_range(range: &str) -> Result<semver::VersionReq, semver::Error> {
    let trimmed = range.trim();
    match semver::VersionReq::parse(trimmed) {
        Ok(req) => Ok(req),
        Err(first) if !trimmed.contains(',') && trimmed.contains(char::is_whitespace) => {
            // Re-join the comparators: `>= 1.4 < 2` and `>=1.4 <2` both become `>=1.4, <2`.
            let mut comparators: Vec<String> = Vec::new();
            let mut pending_op = String::new();
            for token in trimmed.split_whitespace() {
                if token
                    .chars()
                    .all(|c| matches!(c, '<' | '>' | '=' | '~' | '^'))
                {
                    pending_op.push_str(token);
                } else {
                    comparators.push(format!("{pending_op}{token}"));
                    pending_op.clear();
                }
            }
            semver::VersionReq::parse(&comparators.join(", ")).map_err(|_| first)
        }
        Err(e) => Err(e),
    }
}

impl FromStr for Policy {
    type Err = PolicyError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        if s.is_empty() {
            return Err(PolicyError::Empty);
        }
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n.trim().to_ascii_lowercase(), Some(a)),
            None => (s.to_ascii_lowercase(), None),
        };
        let need_arg = |arg: Option<&str>| -> Result<String, PolicyError> {
            match arg {
                Some(a) if !a.trim().is_empty() => Ok(a.to_owned()),
                _ => Err(PolicyError::MissingArgument(input.to_owned())),
            }
        };
        let kind = match (name.as_str(), arg) {
            ("digest", None) => PolicyKind::Digest,
            ("never", None) | ("none", None) => PolicyKind::Never,
            ("force", None) => PolicyKind::Force,
            ("patch", None) => PolicyKind::Semver(SemverRule::Patch),
            ("minor", None) => PolicyKind::Semver(SemverRule::Minor),
            ("major", None) => PolicyKind::Semver(SemverRule::Major),
            ("all", None) => PolicyKind::Semver(SemverRule::All),
            ("semver", Some(arg)) => {
                let arg = need_arg(Some(arg))?;
                match arg.trim().to_ascii_lowercase().as_str() {
                    "patch" => PolicyKind::Semver(SemverRule::Patch),
                    "minor" => PolicyKind::Semver(SemverRule::Minor),
                    "major" => PolicyKind::Semver(SemverRule::Major),
                    "all" => PolicyKind::Semver(SemverRule::All),
                    _ => PolicyKind::Semver(SemverRule::Range(parse_range(&arg).map_err(|e| {
                        PolicyError::BadRange {
                            input: input.to_owned(),
                            range: arg.trim().to_owned(),
                            message: e.to_string(),
                        }
                    })?)),
                }
            }
            ("semver", None) => return Err(PolicyError::MissingArgument(input.to_owned())),
            ("regex", arg) | ("regexp", arg) => {
                // The pattern is everything after the first colon, untrimmed on the inside.
                let pattern = need_arg(arg)?;
                let pattern = pattern.trim();
                let regex = compile_regex(input, pattern)?;
                let key_group = regex.capture_names().flatten().next().map(str::to_owned);
                PolicyKind::Regex(RegexRule {
                    regex,
                    key_group,
                    order: Order::default(),
                })
            }
            ("newest-build", arg) => {
                let pattern = match arg {
                    Some(a) if !a.trim().is_empty() => a.trim().to_owned(),
                    Some(_) => return Err(PolicyError::MissingArgument(input.to_owned())),
                    None => build::DEFAULT_PATTERN.to_owned(),
                };
                PolicyKind::NewestBuild(RegexRule {
                    regex: compile_regex(input, &pattern)?,
                    key_group: None,
                    order: Order::Alphabetical,
                })
            }
            ("glob", arg) => {
                let glob = need_arg(arg)?;
                let pattern = glob_to_regex(glob.trim());
                PolicyKind::Regex(RegexRule {
                    regex: compile_regex(input, &pattern)?,
                    key_group: None,
                    order: Order::Alphabetical,
                })
            }
            _ => return Err(PolicyError::Unknown(input.to_owned())),
        };
        Ok(Policy {
            kind,
            prerelease: false,
            source: s.to_owned(),
        })
    }
}

impl fmt::Display for Policy {
    /// The policy as written, plus its options (`+prerelease`, `order=`), for reports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if let PolicyKind::Regex(rule) = &self.kind
            && rule.order != Order::Alphabetical
        {
            write!(f, " order={}", rule.order)?;
        }
        if self.prerelease {
            f.write_str(" prerelease=true")?;
        }
        Ok(())
    }
}

/// The facts a policy needs from the registry for one reference.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Needs {
    /// The repository's tag list.
    pub tag_list: bool,
    /// The digest the given tag points to now.
    pub digest_of: Option<String>,
}

/// What a shell learned from the registry. Only what [`Policy::needs`] asked for needs to
/// be filled in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// The tag list, or why listing failed; `None` when it was not fetched.
    pub tags: Option<Result<Vec<String>, String>>,
    /// Digests of tags, or why resolving failed, keyed by tag.
    pub digests: BTreeMap<String, Result<Digest, String>>,
}

impl Facts {
    /// Facts holding a tag list.
    pub fn with_tags<I: IntoIterator<Item = S>, S: Into<String>>(tags: I) -> Self {
        Facts {
            tags: Some(Ok(tags.into_iter().map(Into::into).collect())),
            digests: BTreeMap::new(),
        }
    }
    /// Adds the digest a tag points to.
    pub fn digest(mut self, tag: &str, digest: Digest) -> Self {
        self.digests.insert(tag.to_owned(), Ok(digest));
        self
    }
}

/// The engine's answer for one reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Leave the reference as it is; the warning says why when that is not simply
    /// "already newest".
    Keep {
        /// Why nothing changes, when something is wrong.
        warning: Option<String>,
    },
    /// Move to another tag (or the same tag at a new digest).
    Update {
        /// The tag to move to.
        to: String,
        /// The digest behind `to`, when the policy learned it (digest tracking).
        digest: Option<Digest>,
        /// A human-readable reason.
        reason: String,
    },
}

impl Decision {
    fn warn(message: impl Into<String>) -> Self {
        Decision::Keep {
            warning: Some(message.into()),
        }
    }
    /// Whether this is an update.
    pub fn is_update(&self) -> bool {
        matches!(self, Decision::Update { .. })
    }
}

/// The reference's current state as far as the engine cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Current<'a> {
    /// The tag, if the reference has one.
    pub tag: Option<&'a str>,
    /// The pinned digest, if the reference has one.
    pub digest: Option<&'a Digest>,
}

impl<'a> From<&'a crate::Reference> for Current<'a> {
    /// The reference's tag (`latest` when it has neither tag nor digest) and digest.
    fn from(reference: &'a crate::Reference) -> Self {
        Current {
            tag: reference.tag_or_latest(),
            digest: reference.digest(),
        }
    }
}

impl<'a> Current<'a> {
    /// A reference with a tag and no digest.
    pub fn tag(tag: &'a str) -> Self {
        Current {
            tag: Some(tag),
            digest: None,
        }
    }
}

impl Policy {
    /// Parses a policy string; the same as `s.parse()`.
    pub fn parse(s: &str) -> Result<Self, PolicyError> {
        s.parse()
    }

    /// What the policy tracks.
    pub fn kind(&self) -> &PolicyKind {
        &self.kind
    }

    /// Whether pre-releases are candidates even when the current tag is a release.
    pub fn allows_prerelease(&self) -> bool {
        self.prerelease || matches!(self.kind, PolicyKind::Semver(SemverRule::All))
    }

    /// Returns the policy with pre-releases allowed (or not).
    pub fn with_prerelease(mut self, allow: bool) -> Self {
        self.prerelease = allow;
        self
    }

    /// Sets the order of a regex policy; an error for other policies.
    pub fn with_order(mut self, order: Order) -> Result<Self, PolicyError> {
        match &mut self.kind {
            PolicyKind::Regex(rule) => {
                rule.order = order;
                Ok(self)
            }
            _ => Err(PolicyError::UnknownOrder(format!(
                "{order} (order= only applies to regex policies, not {})",
                self.source
            ))),
        }
    }

    /// Whether the policy never changes anything.
    pub fn is_never(&self) -> bool {
        matches!(self.kind, PolicyKind::Never)
    }

    /// Resolves Keel's `force`: a digest watch of the current tag, version or not, so
    /// the tag string stays as written (`:16` follows the digest of `16`).
    fn effective(&self, _current_tag: Option<&str>) -> PolicyKind {
        match &self.kind {
            PolicyKind::Force => PolicyKind::Digest,
            other => other.clone(),
        }
    }

    /// The facts the shell must fetch to decide for a reference with this tag.
    pub fn needs(&self, current_tag: Option<&str>) -> Needs {
        match self.effective(current_tag) {
            PolicyKind::Never => Needs::default(),
            PolicyKind::Digest | PolicyKind::Force => Needs {
                tag_list: false,
                digest_of: current_tag.map(str::to_owned),
            },
            PolicyKind::Semver(_) | PolicyKind::Regex(_) | PolicyKind::NewestBuild(_) => Needs {
                tag_list: current_tag.is_some(),
                digest_of: None,
            },
        }
    }

    /// Whether `candidate` is allowed to replace `current` under this policy, regardless
    /// of which is newer. Exposed for property tests and diagnostics.
    pub fn admits(&self, current: &str, candidate: &str) -> bool {
        match self.effective(Some(current)) {
            PolicyKind::Semver(rule) => {
                let (Some(cur), Some(cand)) = (Version::parse(current), Version::parse(candidate))
                else {
                    return false;
                };
                self.semver_admits(&rule, &cur, &cand)
            }
            PolicyKind::Regex(rule) | PolicyKind::NewestBuild(rule) => {
                rule.key(candidate).is_some()
            }
            PolicyKind::Digest | PolicyKind::Force => current == candidate,
            PolicyKind::Never => false,
        }
    }

    fn semver_admits(&self, rule: &SemverRule, cur: &Version, cand: &Version) -> bool {
        if cand.shape() != cur.shape() {
            return false;
        }
        if cand.is_prerelease() && !(cur.is_prerelease() || self.allows_prerelease()) {
            return false;
        }
        match rule {
            SemverRule::Patch => cand.part(0) == cur.part(0) && cand.part(1) == cur.part(1),
            SemverRule::Minor => cand.part(0) == cur.part(0),
            SemverRule::Major | SemverRule::All => true,
            SemverRule::Range(req) => {
                let mut v = cand.to_semver();
                if req.matches(&v) {
                    return true;
                }
                // semver only lets pre-releases match comparators that name one; when
                // pre-releases are welcome, match on the release part instead.
                if cand.is_prerelease() {
                    v.pre = semver::Prerelease::EMPTY;
                    return req.matches(&v);
                }
                false
            }
        }
    }
}

/// Decides what to do with a reference whose current state is `current`.
///
/// Pure: the same inputs always give the same decision. Never returns an update to a
/// tag that is lower than the current one in the policy's order.
pub fn decide(current: Current<'_>, policy: &Policy, facts: &Facts) -> Decision {
    let kind = policy.effective(current.tag);
    match kind {
        PolicyKind::Never => Decision::Keep { warning: None },
        PolicyKind::Digest | PolicyKind::Force => decide_digest(current, policy, facts),
        PolicyKind::NewestBuild(_) => Decision::warn(format!(
            "{policy} needs the build times of the candidate tags; only file mode (plan/apply) reads them"
        )),
        PolicyKind::Semver(_) | PolicyKind::Regex(_) => {
            let Some(tag) = current.tag else {
                return Decision::warn(format!(
                    "policy {policy} needs a tag, but the reference has only a digest"
                ));
            };
            let tags = match &facts.tags {
                None => {
                    return Decision::warn("the tag list was not fetched; keeping the current tag");
                }
                Some(Err(e)) => {
                    return Decision::warn(format!("listing tags failed ({e}); keeping {tag}"));
                }
                Some(Ok(tags)) => tags,
            };
            if tags.is_empty() {
                return Decision::warn(format!("the registry listed no tags; keeping {tag}"));
            }
            if !tags.iter().any(|t| t == tag) {
                return Decision::warn(format!(
                    "the current tag {tag} is no longer in the registry's tag list; not updating"
                ));
            }
            match &kind {
                PolicyKind::Semver(rule) => decide_semver(tag, rule, policy, tags),
                PolicyKind::Regex(rule) => decide_regex(tag, rule, policy, tags),
                _ => unreachable!("matched above"),
            }
        }
    }
}

fn decide_digest(current: Current<'_>, policy: &Policy, facts: &Facts) -> Decision {
    let Some(tag) = current.tag else {
        return Decision::warn(format!(
            "policy {policy} tracks a tag, but the reference has only a digest"
        ));
    };
    match facts.digests.get(tag) {
        None => Decision::warn(format!("the digest of {tag} was not fetched; keeping it")),
        Some(Err(e)) => Decision::warn(format!("resolving {tag} failed ({e}); keeping it")),
        Some(Ok(new)) => match current.digest {
            Some(old) if old == new => Decision::Keep { warning: None },
            Some(old) => Decision::Update {
                to: tag.to_owned(),
                digest: Some(new.clone()),
                reason: format!("{policy}: tag {tag} moved from {old} to {new}"),
            },
            None => Decision::Update {
                to: tag.to_owned(),
                digest: Some(new.clone()),
                reason: format!("{policy}: tag {tag} points to {new}"),
            },
        },
    }
}

fn decide_semver(tag: &str, rule: &SemverRule, policy: &Policy, tags: &[String]) -> Decision {
    let Some(cur) = Version::parse(tag) else {
        return Decision::warn(format!(
            "the current tag {tag} is not a version, so {policy} cannot order it; use digest or regex:"
        ));
    };
    let mut admitted = 0usize;
    let best = tags
        .iter()
        .filter_map(|t| Version::parse(t))
        .filter(|cand| policy.semver_admits(rule, &cur, cand))
        .inspect(|_| admitted += 1)
        .max();
    match best {
        Some(best) if best > cur => Decision::Update {
            to: best.as_str().to_owned(),
            digest: None,
            reason: format!(
                "{policy}: {best} is the newest of {admitted} admissible tags (was {tag})"
            ),
        },
        _ => Decision::Keep { warning: None },
    }
}

fn decide_regex(tag: &str, rule: &RegexRule, policy: &Policy, tags: &[String]) -> Decision {
    let Some(cur_key) = rule.key(tag) else {
        return Decision::warn(format!(
            "the current tag {tag} does not match {policy} (or its key is not {}), so it cannot be ordered",
            rule.order
        ));
    };
    let best = tags
        .iter()
        .filter_map(|t| {
            // Pre-releases are skipped under semver order unless welcome.
            let key = rule.key(t)?;
            if let SortKey::Version(v) = &key {
                let cur_pre = matches!(&cur_key, SortKey::Version(c) if c.is_prerelease());
                if v.is_prerelease() && !(cur_pre || policy.allows_prerelease()) {
                    return None;
                }
            }
            Some((key, t))
        })
        .max();
    match best {
        Some((key, best)) if key.cmp(&cur_key) == Ordering::Greater => Decision::Update {
            to: best.clone(),
            digest: None,
            reason: format!(
                "{policy}: {best} has the greatest {} key (was {tag})",
                rule.order
            ),
        },
        _ => Decision::Keep { warning: None },
    }
}

/// The order a policy puts two tags in, `None` when it cannot compare them. Used by
/// tests and by callers that want to explain a decision.
pub fn compare(policy: &Policy, a: &str, b: &str) -> Option<Ordering> {
    match policy.effective(Some(a)) {
        PolicyKind::Semver(_) => Some(Version::parse(a)?.cmp(&Version::parse(b)?)),
        PolicyKind::Regex(rule) => Some(rule.key(a)?.cmp(&rule.key(b)?).then_with(|| a.cmp(b))),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
