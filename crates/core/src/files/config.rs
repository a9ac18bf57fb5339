//! `freshet.yaml`: repository-level tracking rules.
//!
//! Owns the schema, strict parsing (unknown keys are errors that name the key path and
//! the fix) and rule matching by path glob and image pattern. The first matching rule
//! wins; an inline marker beats every rule.
//!
//! ```yaml
//! defaultPolicy: semver:minor     # what `plan --all` uses (default: semver:minor)
//! defaultPin: tag                 # optional; otherwise the reference's own form is kept
//! rules:
//!   - paths: ["deploy/**"]        # globs relative to the repository root (default: all;
//!                                 # `files:` is the same key)
//!     images: ["ghcr.io/acme/*"]  # globs over the image name (default: all)
//!     policy: semver:patch
//!     pin: tag+digest             # optional
//!     order: numerical            # optional, regex policies only
//!     prerelease: false           # optional
//!   - files: ["Pulumi.*.yaml"]
//!     keys: ["config.*Image", "config.*ImageTag"]  # key paths: `*` within a segment,
//!                                 # `**` across; offers those values even unmarked
//!     image: ghcr.io/acme/app     # the image a tag-only or digest-only value belongs to
//!     policy: newest-build:^[0-9a-f]{40}$
//!     digestForm: tag@digest      # optional: Helm's `tag: …@sha256:…` / `tag: sha256:…`
//!     platform: linux/arm64       # optional: the platform newest-build compares
//! ```
//!
//! Must not read the file itself; the shell passes its text.

use globset::{Glob, GlobBuilder, GlobMatcher};
use serde::Deserialize;

use super::{DigestForm, PinForm, ScanOptions};
use crate::policy::{Order, Policy};
use crate::{Platform, Reference};

/// The policy `plan --all` applies when `freshet.yaml` names none.
pub const DEFAULT_POLICY: &str = "semver:minor";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    default_policy: Option<String>,
    #[serde(default)]
    default_pin: Option<String>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    #[serde(default, alias = "files")]
    paths: Vec<String>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    digest_form: Option<String>,
    #[serde(default)]
    platform: Option<String>,
    #[serde(default)]
    images: Vec<String>,
    policy: String,
    #[serde(default)]
    pin: Option<String>,
    #[serde(default)]
    order: Option<String>,
    #[serde(default)]
    prerelease: bool,
}

/// Why `freshet.yaml` was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The YAML does not parse or does not fit the schema (unknown key, wrong type).
    #[error(
        "freshet.yaml:{line}:{column}: {message} (keys: defaultPolicy, defaultPin, rules[].paths (or files), rules[].keys, rules[].images, rules[].image, rules[].policy, rules[].pin, rules[].digestForm, rules[].platform, rules[].order, rules[].prerelease)"
    )]
    Syntax {
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A value is well-formed YAML but invalid.
    #[error("freshet.yaml: {key}: {message}; fix: {fix}")]
    Invalid {
        /// The key path, e.g. `rules[2].policy`.
        key: String,
        /// What is wrong.
        message: String,
        /// How to fix it.
        fix: String,
    },
}

/// One validated rule.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// Index in `rules:`.
    pub index: usize,
    paths: Vec<GlobMatcher>,
    images: Vec<GlobMatcher>,
    /// The policy.
    pub policy: Policy,
    /// The pin form, if the rule sets one.
    pub pin: Option<PinForm>,
    /// Key paths whose values the rule covers (empty: any).
    keys: Vec<regex::Regex>,
    /// The image a tag-only or digest-only value belongs to.
    pub image: Option<String>,
    /// How a digest goes into a tag value.
    pub digest_form: Option<DigestForm>,
    /// The platform newest-build compares.
    pub platform: Option<Platform>,
}

/// Compiles a key-path glob (`config.*Image`: `*` within one dotted segment, `**`
/// across segments) to an anchored regex.
pub(crate) fn key_glob(pattern: &str) -> Result<regex::Regex, regex::Error> {
    let mut out = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(".*");
            }
            '*' => out.push_str("[^.]*"),
            '?' => out.push_str("[^.]"),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    regex::RegexBuilder::new(&out)
        .size_limit(crate::policy::REGEX_SIZE_LIMIT)
        .build()
}

/// A validated `freshet.yaml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The policy for `plan --all`.
    pub default_policy: Policy,
    /// The pin form when neither marker nor rule sets one (`None`: keep the reference's form).
    pub default_pin: Option<PinForm>,
    /// The rules, in order.
    pub rules: Vec<CompiledRule>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_policy: DEFAULT_POLICY.parse().expect("the default policy parses"),
            default_pin: None,
            rules: Vec::new(),
        }
    }
}

fn glob(key: &str, pattern: &str) -> Result<GlobMatcher, ConfigError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g: Glob| g.compile_matcher())
        .map_err(|e| ConfigError::Invalid {
            key: key.to_owned(),
            message: format!("{pattern:?} is not a valid glob: {e}"),
            fix: "use * for one path segment and ** for any number, e.g. deploy/**/*.yaml".into(),
        })
}

fn pin(key: &str, value: &str) -> Result<PinForm, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid {
        key: key.to_owned(),
        message: format!("unknown pin form {value:?}"),
        fix: "use tag, tag+digest or digest".into(),
    })
}

/// Validates one rule; errors name `rules[index].key`.
fn compile_rule(index: usize, rule: RawRule) -> Result<CompiledRule, ConfigError> {
    let key = |k: &str| format!("rules[{index}].{k}");
    let mut policy: Policy = rule.policy.parse().map_err(|e| ConfigError::Invalid {
        key: key("policy"),
        message: format!("{e}"),
        fix: "write e.g. policy: semver:minor".into(),
    })?;
    policy = policy.with_prerelease(rule.prerelease);
    if let Some(order) = &rule.order {
        let order: Order = order.parse().map_err(|e| ConfigError::Invalid {
            key: key("order"),
            message: format!("{e}"),
            fix: "use alphabetical, numerical or semver".into(),
        })?;
        policy = policy.with_order(order).map_err(|_| ConfigError::Invalid {
            key: key("order"),
            message: "order only applies to regex policies".into(),
            fix: "remove order, or use a regex: policy".into(),
        })?;
    }
    let paths = rule
        .paths
        .iter()
        .enumerate()
        .map(|(i, p)| glob(&key(&format!("paths[{i}]")), p))
        .collect::<Result<_, _>>()?;
    let images = rule
        .images
        .iter()
        .enumerate()
        .map(|(i, p)| glob(&key(&format!("images[{i}]")), p))
        .collect::<Result<_, _>>()?;
    let pin = rule
        .pin
        .as_deref()
        .map(|p| pin(&key("pin"), p))
        .transpose()?;
    let keys = rule
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            key_glob(k).map_err(|e| ConfigError::Invalid {
                key: key(&format!("keys[{i}]")),
                message: format!("{k:?} is not a valid key path glob: {e}"),
                fix: "write dotted key paths, e.g. config.*Image or values.**.tag".into(),
            })
        })
        .collect::<Result<_, _>>()?;
    let image = match rule.image {
        Some(i) => {
            let (_, tag, digest) = super::split_written(&i);
            if tag.is_some() || digest.is_some() || Reference::parse(&i).is_err() {
                return Err(ConfigError::Invalid {
                    key: key("image"),
                    message: format!("{i:?} is not an image name"),
                    fix: "write the name without tag or digest, e.g. image: ghcr.io/acme/app"
                        .into(),
                });
            }
            Some(i)
        }
        None => None,
    };
    let digest_form = rule
        .digest_form
        .as_deref()
        .map(|f| {
            f.parse::<DigestForm>().map_err(|v| ConfigError::Invalid {
                key: key("digestForm"),
                message: format!("unknown digest form {v:?}"),
                fix: "use tag@digest or digest".into(),
            })
        })
        .transpose()?;
    let platform = rule
        .platform
        .as_deref()
        .map(|p| {
            p.parse::<Platform>().map_err(|e| ConfigError::Invalid {
                key: key("platform"),
                message: e.to_string(),
                fix: "write os/arch[/variant], e.g. linux/amd64".into(),
            })
        })
        .transpose()?;
    Ok(CompiledRule {
        index,
        paths,
        images,
        policy,
        pin,
        keys,
        image,
        digest_form,
        platform,
    })
}

impl Config {
    /// Parses and validates `freshet.yaml`.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column, message) = crate::yaml_error(&e);
            ConfigError::Syntax {
                line,
                column,
                message,
            }
        })?;
        if let Some(v) = raw.version
            && v != 1
        {
            return Err(ConfigError::Invalid {
                key: "version".into(),
                message: format!("unsupported version {v}"),
                fix: "write version: 1 or leave it out".into(),
            });
        }
        let default_policy = match raw.default_policy {
            Some(p) => p.parse().map_err(|e| ConfigError::Invalid {
                key: "defaultPolicy".into(),
                message: format!("{e}"),
                fix: "write e.g. defaultPolicy: semver:minor".into(),
            })?,
            None => Config::default().default_policy,
        };
        let default_pin = raw
            .default_pin
            .as_deref()
            .map(|p| pin("defaultPin", p))
            .transpose()?;
        let rules = raw
            .rules
            .into_iter()
            .enumerate()
            .map(|(index, rule)| compile_rule(index, rule))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            default_policy,
            default_pin,
            rules,
        })
    }

    /// The first rule covering a file (path relative to the repository root, `/`
    /// separated) and an image as written.
    pub fn rule_for(&self, path: &str, image: &str) -> Option<&CompiledRule> {
        self.rule_for_key(path, None, Some(image))
    }

    /// The first rule covering a file, a value's key path and the image it names (for a
    /// tag-only value, the image is the rule's own `image:`). A rule with `keys:` covers
    /// only values under those keys.
    pub fn rule_for_key(
        &self,
        path: &str,
        key: Option<&str>,
        image: Option<&str>,
    ) -> Option<&CompiledRule> {
        let names = |image: &str| {
            let (written, _, _) = super::split_written(image);
            let mut names = vec![written.to_owned()];
            if let Ok(r) = Reference::parse(image) {
                names.push(r.name());
                let familiar = r.without_digest().familiar();
                names.push(super::split_written(&familiar).0.to_owned());
            }
            names
        };
        self.rules.iter().find(|rule| {
            let image = image.or(rule.image.as_deref());
            (rule.paths.is_empty() || rule.paths.iter().any(|g| g.is_match(path)))
                && (rule.keys.is_empty()
                    || key.is_some_and(|k| rule.keys.iter().any(|r| r.is_match(k))))
                && (rule.images.is_empty()
                    || image.is_some_and(|i| {
                        let names = names(i);
                        rule.images
                            .iter()
                            .any(|g| names.iter().any(|n| g.is_match(n)))
                    }))
        })
    }

    /// What a scan of `path` must look for: the key paths of the rules covering it.
    pub fn scan_options(&self, path: &str) -> ScanOptions {
        let patterns: Vec<&str> = self
            .rules
            .iter()
            .filter(|r| r.paths.is_empty() || r.paths.iter().any(|g| g.is_match(path)))
            .flat_map(|r| r.keys.iter().map(regex::Regex::as_str))
            .collect();
        ScanOptions {
            keys: (!patterns.is_empty())
                .then(|| {
                    regex::RegexSetBuilder::new(patterns)
                        .size_limit(crate::policy::REGEX_SIZE_LIMIT)
                        .build()
                        .ok()
                })
                .flatten(),
            sha_hex: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_by_path_and_image() {
        let config = Config::parse(
            "defaultPolicy: semver:patch\nrules:\n  - paths: [\"deploy/**\"]\n    images: [\"ghcr.io/acme/*\"]\n    policy: semver:major\n    pin: tag+digest\n  - images: [\"nginx\"]\n    policy: digest\n",
        )
        .unwrap();
        assert_eq!(config.default_policy.to_string(), "semver:patch");
        let r = config
            .rule_for("deploy/a/app.yaml", "ghcr.io/acme/api:1.0")
            .unwrap();
        assert_eq!((r.index, r.pin), (0, Some(PinForm::TagDigest)));
        assert!(
            config
                .rule_for("other/app.yaml", "ghcr.io/acme/api:1.0")
                .is_none()
        );
        assert!(
            config
                .rule_for("deploy/app.yaml", "ghcr.io/acme/x/y:1")
                .is_none()
        );
        // the image pattern matches the familiar and the canonical name
        assert_eq!(
            config
                .rule_for("x.yaml", "docker.io/library/nginx:1")
                .unwrap()
                .index,
            1
        );
        assert_eq!(config.rule_for("x.yaml", "nginx:1").unwrap().index, 1);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_and_the_fix() {
        let err = Config::parse("rules:\n  - policy: minor\n    imagez: [x]\n").unwrap_err();
        match err {
            ConfigError::Syntax { line, message, .. } => {
                assert_eq!(line, 3, "{message}");
                assert!(message.contains("imagez"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let err =
            Config::parse("rules:\n  - policy: minor\n  - policy: semver:nope\n").unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key, .. } if key == "rules[1].policy"),
            "{err}"
        );
        let err = Config::parse("rules:\n  - policy: minor\n    pin: sha\n").unwrap_err();
        assert!(
            err.to_string().contains("rules[0].pin") && err.to_string().contains("tag+digest"),
            "{err}"
        );
        let err = Config::parse("rules:\n  - policy: minor\n    order: numerical\n").unwrap_err();
        assert!(err.to_string().contains("rules[0].order"), "{err}");
        assert!(Config::parse("").unwrap().rules.is_empty());
    }
}
