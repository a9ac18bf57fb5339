//! The write-back settings of an Application: method, Git target, repository and branch,
//! and the `git-branch` write-branch template.
//!
//! Owns parsing `write-back-method` (`argocd`, `git`, `git:<credentials>`),
//! `write-back-target` (`kustomization[:path]`, `helmvalues[:path]`, or an override
//! file path), `git-branch` (`base`, `base:target`, `:target`) and rendering the target
//! part, a Go `text/template`, with the subset Image Updater documents
//! (`docs/basics/update-methods.md`, "Specifying a separate base and commit branch", in
//! v1.3.0): `{{.AppName}}`, `{{.AppNamespace}}`, `{{.TargetKey}}`, `{{.SHA256}}` and
//! `{{range .Images}}…{{end}}` over `{{.Name}}`, `{{.Alias}}`, `{{.OldTag}}`,
//! `{{.NewTag}}`, with `{{-`/`-}}` trimming. `.SHA256` and `.TargetKey` are computed as
//! `TemplateBranchName` and `WriteBackTargetKey` do (`pkg/argocd/git.go`,
//! `pkg/argocd/types.go`). Anything else in a template is an error that names it, never
//! an empty branch. Must not touch Git: the Git shell checks out and pushes.

use sha2::{Digest as _, Sha256};

/// The longest branch template accepted.
pub const MAX_TEMPLATE: usize = 1024;
/// Git's branch-name limit, as Image Updater truncates to it.
pub const MAX_BRANCH: usize = 255;

/// Why a write-back setting was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BranchError {
    /// `write-back-method` is unknown.
    #[error(
        "write-back method {0:?} is unknown; write argocd, git, git:repocreds or git:secret:<namespace>/<name>"
    )]
    Method(String),
    /// `write-back-target` is malformed.
    #[error("write-back target {value:?}: {reason}")]
    Target {
        /// The value.
        value: String,
        /// What is wrong and the fix.
        reason: String,
    },
    /// `git-branch` has more than one `:`.
    #[error(
        "git branch {0:?} has more than one ':'; write <base>, <base>:<write-branch> or :<write-branch>"
    )]
    Branch(String),
    /// The template does not parse or names something it cannot render.
    #[error(
        "git branch template {template:?} does not render: {reason}; use only {{{{.AppName}}}}, {{{{.AppNamespace}}}}, {{{{.TargetKey}}}}, {{{{.SHA256}}}} and {{{{range .Images}}}}…{{{{.Name}}}} {{{{.Alias}}}} {{{{.OldTag}}}} {{{{.NewTag}}}}…{{{{end}}}}"
    )]
    Template {
        /// The template.
        template: String,
        /// What is wrong.
        reason: String,
    },
    /// The rendered name is not a valid Git branch.
    #[error(
        "git branch template {template:?} renders {rendered:?}, which is not a valid branch name ({reason}); change the template"
    )]
    Invalid {
        /// The template.
        template: String,
        /// What it rendered.
        rendered: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
}

/// Where Git credentials come from (`git:<credentials>`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum GitCreds {
    /// Argo CD's repository credentials (`git`, `git:repocreds`).
    RepoCreds,
    /// A Secret (`git:secret:<namespace>/<name>`).
    Secret {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

/// How updates reach Argo CD.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Method {
    /// Patch the live Application (the default).
    #[default]
    Argocd,
    /// Commit to the Application's Git repository.
    Git {
        /// The credentials.
        creds: GitCreds,
    },
}

impl Method {
    /// Parses `argocd`, `git`, `git:repocreds`, `git:secret:<ns>/<name>`.
    pub fn parse(value: &str) -> Result<Method, BranchError> {
        let v = value.trim();
        let err = || BranchError::Method(value.to_owned());
        match v.split_once(':') {
            None if v == "argocd" || v.is_empty() => Ok(Method::Argocd),
            None if v == "git" => Ok(Method::Git {
                creds: GitCreds::RepoCreds,
            }),
            Some(("git", "repocreds")) => Ok(Method::Git {
                creds: GitCreds::RepoCreds,
            }),
            Some(("git", rest)) => {
                let (ns, name) = rest
                    .strip_prefix("secret:")
                    .and_then(|r| r.split_once('/'))
                    .filter(|(a, b)| !a.is_empty() && !b.is_empty() && !b.contains('/'))
                    .ok_or_else(err)?;
                Ok(Method::Git {
                    creds: GitCreds::Secret {
                        namespace: ns.to_owned(),
                        name: name.to_owned(),
                    },
                })
            }
            _ => Err(err()),
        }
    }
}

/// What a `git` write-back edits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Target {
    /// The parameter-override file `.argocd-source-<app>.yaml` in the source path (the
    /// default), or the file a bare `write-back-target` names.
    Overrides {
        /// A path given by the user, relative to the repository root; `None`: the default
        /// file in the source path.
        path: Option<String>,
    },
    /// The kustomization in a directory (`kustomization[:dir]`); the path is resolved
    /// against the source path unless it starts with `/`.
    Kustomization {
        /// The directory as written (`None`: the source path).
        dir: Option<String>,
    },
    /// A Helm values file (`helmvalues[:file]`, default `values.yaml` in the source
    /// path).
    HelmValues {
        /// The file as written.
        file: Option<String>,
    },
}

impl Target {
    /// Parses a `write-back-target`, as `newWBCFromSettings` does.
    pub fn parse(value: &str) -> Result<Target, BranchError> {
        let v = value.trim();
        let err = |reason: &str| BranchError::Target {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let arg = |rest: &str| -> Result<Option<String>, BranchError> {
            match rest.strip_prefix(':') {
                None if rest.is_empty() => Ok(None),
                Some(p) if !p.is_empty() && safe_path(p) => Ok(Some(p.to_owned())),
                _ => Err(err("the path after ':' is empty or leaves the repository")),
            }
        };
        if let Some(rest) = v.strip_prefix("kustomization") {
            return Ok(Target::Kustomization { dir: arg(rest)? });
        }
        if let Some(rest) = v.strip_prefix("helmvalues") {
            return Ok(Target::HelmValues { file: arg(rest)? });
        }
        if v.is_empty() {
            return Ok(Target::Overrides { path: None });
        }
        let base = v.rsplit('/').next().unwrap_or(v);
        if matches!(
            base,
            "kustomization.yaml" | "kustomization.yml" | "Kustomization"
        ) {
            return Err(err(
                "this is a kustomization file, and writing parameter overrides to it would discard its content; write kustomization:<directory> to edit it in place",
            ));
        }
        if !safe_path(v) {
            return Err(err("the path leaves the repository"));
        }
        Ok(Target::Overrides {
            path: Some(v.to_owned()),
        })
    }

    /// The repository path of the file or directory, given the source `path`, following
    /// `parseTarget`/`parseKustomizeBase`/`parseDefaultTarget`; `app_file` is the default
    /// override file name (see [`super::gitfile::override_file_name`]). A path outside
    /// the repository is `None`.
    pub fn resolve(&self, source_path: &str, app_file: &str) -> Option<String> {
        let rel = |p: &Option<String>, default: &str| match p.as_deref() {
            Some(abs) if abs.starts_with('/') => clean(&abs[1..]),
            Some(rel) => clean(&format!("{source_path}/{rel}")),
            None => clean(&format!("{source_path}/{default}")),
        };
        match self {
            Target::Overrides { path: Some(p) } => clean(p.trim_start_matches('/')),
            Target::Overrides { path: None } => rel(&None, app_file),
            Target::Kustomization { dir } => rel(dir, "."),
            Target::HelmValues { file } => rel(file, "values.yaml"),
        }
    }
}

fn safe_path(p: &str) -> bool {
    p.len() <= 4096 && !p.contains('\0') && !p.contains('\\')
}

/// Go's `filepath.Join`/`Clean` for a repository path; `None` when `..` climbs out.
pub fn clean(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    })
}

/// `git-branch`: the branch to check out and, after a `:`, the template of the branch to
/// push to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GitBranch {
    /// The branch to check out (`None`: the source's `targetRevision`).
    pub base: Option<String>,
    /// The write branch's template (`None`: push to the base).
    pub write: Option<Template>,
}

impl GitBranch {
    /// Parses `base`, `base:target` or `:target` (more than one `:` is an error, as in
    /// `parseGitConfig`) and checks the template.
    pub fn parse(value: &str) -> Result<GitBranch, BranchError> {
        let v = value.trim();
        let mut parts = v.split(':');
        let base = parts.next().unwrap_or("");
        let write = parts.next();
        if parts.next().is_some() {
            return Err(BranchError::Branch(value.to_owned()));
        }
        Ok(GitBranch {
            base: (!base.is_empty()).then(|| base.to_owned()),
            write: match write {
                Some(t) if !t.is_empty() => Some(Template::parse(t)?),
                _ => None,
            },
        })
    }
}

/// The whole write-back configuration of an Application.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteBack {
    /// The method.
    pub method: Method,
    /// The Git target (meaningful for `git` only).
    pub target: Target,
    /// `git-repository` / `gitConfig.repository` (`None`: the source's `repoURL`).
    pub repository: Option<String>,
    /// `git-branch` / `gitConfig.branch`.
    pub branch: GitBranch,
}

impl Default for Target {
    fn default() -> Self {
        Target::Overrides { path: None }
    }
}

/// One change, as the branch template sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageChange {
    /// The image name without its registry (`.Name`; upstream's `ImageName`).
    pub name: String,
    /// The alias (`.Alias`).
    pub alias: String,
    /// The previous digest, else tag (`.OldTag`; upstream's `ImageTag.String()`).
    pub old_tag: String,
    /// The new digest, else tag (`.NewTag`).
    pub new_tag: String,
}

impl ImageChange {
    /// A change as upstream's `TemplateBranchName` sees it: the repository path of
    /// `image` (`ghcr.io/acme/api` → `acme/api`, `nginx` → `nginx`), and for each side
    /// the digest when there is one, else the tag.
    pub fn new(
        image: &str,
        alias: &str,
        old: (Option<&str>, Option<&crate::Digest>),
        new: (Option<&str>, Option<&crate::Digest>),
    ) -> ImageChange {
        let name = match crate::Reference::parse(image) {
            Ok(r) if !image.starts_with("library/") => r
                .repository()
                .strip_prefix("library/")
                .unwrap_or(r.repository())
                .to_owned(),
            Ok(r) => r.repository().to_owned(),
            Err(_) => image.to_owned(),
        };
        let side = |(tag, digest): (Option<&str>, Option<&crate::Digest>)| match digest {
            Some(d) => d.to_string(),
            None => tag.unwrap_or_default().to_owned(),
        };
        ImageChange {
            name,
            alias: alias.to_owned(),
            old_tag: side(old),
            new_tag: side(new),
        }
    }
}

/// What a branch template is rendered with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    /// `.AppName`.
    pub app_name: String,
    /// `.AppNamespace`.
    pub app_namespace: String,
    /// `.TargetKey`: see [`target_key`].
    pub target_key: String,
    /// `.Images`; `.SHA256` is computed from them.
    pub changes: Vec<ImageChange>,
}

/// Image Updater's `.TargetKey`: the first 8 hex digits of
/// `sha256(repo + "|" + branch + "|" + target)`.
pub fn target_key(repo: &str, branch: &str, target: &str) -> String {
    let h = Sha256::digest(format!("{repo}|{branch}|{target}").as_bytes());
    hex8(&h)
}

fn hex8(bytes: &[u8]) -> String {
    bytes.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Image Updater's `.SHA256`: sha256 over `"<name>-<old>-<new>,"` for each change.
pub fn changes_sha256(changes: &[ImageChange]) -> String {
    let mut h = Sha256::new();
    for c in changes {
        h.update(format!("{}-{}-{},", c.name, c.old_tag, c.new_tag).as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Text(String),
    Field(Field),
    Range(Vec<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    AppName,
    AppNamespace,
    TargetKey,
    Sha256,
    Name,
    Alias,
    OldTag,
    NewTag,
}

/// A parsed branch template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

impl Template {
    /// Parses the subset of Go templates described in the module docs.
    pub fn parse(source: &str) -> Result<Template, BranchError> {
        let err = |reason: String| BranchError::Template {
            template: source.to_owned(),
            reason,
        };
        if source.len() > MAX_TEMPLATE {
            return Err(err(format!("it is longer than {MAX_TEMPLATE} bytes")));
        }
        let mut stack: Vec<Vec<Node>> = vec![Vec::new()];
        let mut rest = source;
        let mut trim_next = false;
        while !rest.is_empty() {
            let (text, action) = match rest.find("{{") {
                Some(i) => (&rest[..i], Some(i)),
                None => (rest, None),
            };
            let mut text = text.to_owned();
            if trim_next {
                text = text.trim_start().to_owned();
            }
            let Some(open) = action else {
                push_text(&mut stack, text);
                break;
            };
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| err("a {{ is not closed".into()))?;
            let mut inner = &after[..close];
            if let Some(s) = inner.strip_prefix('-') {
                text = text.trim_end().to_owned();
                inner = s;
            }
            trim_next = false;
            if let Some(s) = inner.strip_suffix('-') {
                trim_next = true;
                inner = s;
            }
            push_text(&mut stack, text);
            rest = &after[close + 2..];
            let words: Vec<&str> = inner.split_whitespace().collect();
            let in_range = stack.len() > 1;
            match words.as_slice() {
                ["range", ".Images"] if !in_range => stack.push(Vec::new()),
                ["range", ..] => {
                    return Err(err(format!(
                        "{{{{{inner}}}}} ranges over something but .Images, or nests"
                    )));
                }
                ["end"] if in_range => {
                    let body = stack.pop().unwrap_or_default();
                    stack
                        .last_mut()
                        .expect("root frame")
                        .push(Node::Range(body));
                }
                [field] => {
                    let f = match (*field, in_range) {
                        (".AppName", false) => Field::AppName,
                        (".AppNamespace", false) => Field::AppNamespace,
                        (".TargetKey", false) => Field::TargetKey,
                        (".SHA256", false) => Field::Sha256,
                        (".Name", true) => Field::Name,
                        (".Alias", true) => Field::Alias,
                        (".OldTag", true) => Field::OldTag,
                        (".NewTag", true) => Field::NewTag,
                        (other, _) => {
                            return Err(err(format!("{{{{{other}}}}} is not available here")));
                        }
                    };
                    stack.last_mut().expect("a frame").push(Node::Field(f));
                }
                _ => return Err(err(format!("{{{{{}}}}} is not supported", inner.trim()))),
            }
        }
        if stack.len() != 1 {
            return Err(err("a {{range}} has no {{end}}".into()));
        }
        Ok(Template {
            source: source.to_owned(),
            nodes: stack.pop().unwrap_or_default(),
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Renders the branch name, truncated to 255 bytes as Image Updater does, and checks
    /// it is a valid Git branch.
    pub fn render(&self, ctx: &Context) -> Result<String, BranchError> {
        let sha = changes_sha256(&ctx.changes);
        let mut out = String::new();
        render_nodes(&self.nodes, ctx, &sha, None, &mut out);
        if out.len() > MAX_BRANCH {
            let mut cut = MAX_BRANCH;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
        }
        if let Some(reason) = invalid_branch(&out) {
            return Err(BranchError::Invalid {
                template: self.source.clone(),
                rendered: out,
                reason,
            });
        }
        Ok(out)
    }
}

fn push_text(stack: &mut [Vec<Node>], text: String) {
    if !text.is_empty()
        && let Some(frame) = stack.last_mut()
    {
        frame.push(Node::Text(text));
    }
}

fn render_nodes(
    nodes: &[Node],
    ctx: &Context,
    sha: &str,
    item: Option<&ImageChange>,
    out: &mut String,
) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Range(body) => {
                for c in &ctx.changes {
                    render_nodes(body, ctx, sha, Some(c), out);
                }
            }
            Node::Field(f) => out.push_str(match (f, item) {
                (Field::AppName, _) => &ctx.app_name,
                (Field::AppNamespace, _) => &ctx.app_namespace,
                (Field::TargetKey, _) => &ctx.target_key,
                (Field::Sha256, _) => sha,
                (Field::Name, Some(c)) => &c.name,
                (Field::Alias, Some(c)) => &c.alias,
                (Field::OldTag, Some(c)) => &c.old_tag,
                (Field::NewTag, Some(c)) => &c.new_tag,
                (_, None) => "",
            }),
        }
    }
}

/// Which rule of `git check-ref-format --branch` a name breaks, if any.
fn invalid_branch(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.starts_with('-') || name.starts_with('/') || name.ends_with('/') {
        return Some("it starts with '-' or '/', or ends with '/'");
    }
    if name.ends_with('.') || name.ends_with(".lock") || name.contains("..") || name.contains("//")
    {
        return Some("it has '..', '//', or ends with '.' or '.lock'");
    }
    if name.contains("@{") || name == "@" {
        return Some("it contains '@{' or is '@'");
    }
    if name.chars().any(|c| {
        c.is_control() || c.is_whitespace() || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\')
    }) {
        return Some("it contains a space, a control character or one of ~ ^ : ? * [ \\");
    }
    if name.split('/').any(|c| c.starts_with('.')) {
        return Some("a component starts with '.'");
    }
    None
}
