//! Property tests: an update changes only the characters of the reference, whatever
//! the quoting, indentation, comments, surrounding lines and line endings.

use freshet_core::files::{Config, Step, apply_edits, scan, track};
use freshet_core::policy::Facts;
use proptest::prelude::*;

/// The pieces a generated file is made of.
#[derive(Debug, Clone)]
struct Shape {
    eol: &'static str,
    indent: usize,
    quote: &'static str,
    gap: &'static str,
    before: Vec<&'static str>,
    after: Vec<&'static str>,
    final_eol: bool,
}

fn shape() -> impl Strategy<Value = Shape> {
    let noise = prop::sample::select(vec!["", "# a comment", "# freshet is great", "x: 1"]);
    (
        prop::sample::select(vec!["\n", "\r\n"]),
        0usize..6,
        prop::sample::select(vec!["", "\"", "'"]),
        prop::sample::select(vec![" ", "   ", "\t"]),
        prop::collection::vec(noise.clone(), 0..3),
        prop::collection::vec(noise, 0..3),
        any::<bool>(),
    )
        .prop_map(
            |(eol, indent, quote, gap, before, after, final_eol)| Shape {
                eol,
                indent,
                quote,
                gap,
                before,
                after,
                final_eol,
            },
        )
}

fn image() -> impl Strategy<Value = (String, String)> {
    (
        prop::sample::select(vec![
            "nginx",
            "docker.io/library/nginx",
            "ghcr.io/acme/api",
            "127.0.0.1:5000/team/api",
        ]),
        prop::sample::select(vec!["", "v"]),
        prop::sample::select(vec!["", "-alpine"]),
    )
        .prop_map(|(name, v, variant)| (name.to_owned(), format!("{v}1.2.3{variant}")))
}

/// A file of the given format with one marked reference `name:tag`.
fn render(format: &str, s: &Shape, name: &str, tag: &str) -> String {
    let pad = " ".repeat(s.indent);
    let mut lines: Vec<String> = Vec::new();
    let noise = |l: &&str, lines: &mut Vec<String>| {
        // YAML noise stays YAML, at the reference's indentation and with a key of its
        // own; in other formats it becomes a comment.
        let l = if l.starts_with('#') || l.is_empty() {
            (*l).to_owned()
        } else if format == "yaml" {
            format!("{pad}{}{l}", lines.len())
        } else {
            format!("# {l}")
        };
        lines.push(l);
    };
    s.before.iter().for_each(|l| noise(l, &mut lines));
    let marker = "freshet: policy=semver:patch";
    match format {
        "yaml" => lines.push(format!(
            "{pad}image: {q}{name}:{tag}{q}{gap}# {marker}",
            q = s.quote,
            gap = s.gap
        )),
        "tf" => lines.push(format!(
            "{pad}image = \"{name}:{tag}\"{gap}// {marker}",
            gap = s.gap
        )),
        _ => {
            lines.push(format!("# {marker}"));
            lines.push(format!("FROM{gap}{name}:{tag} AS base", gap = s.gap));
        }
    }
    s.after.iter().for_each(|l| noise(l, &mut lines));
    let mut text = lines.join(s.eol);
    if s.final_eol {
        text.push_str(s.eol);
    }
    text
}

fn update(file: &str, text: &str, current: &str, newer: &str) -> String {
    let found = scan(file, text).unwrap_or_else(|e| panic!("{e}\n{text:?}"));
    let (tracked, errors) = track(file, found, &Config::default(), false);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(tracked.len(), 1, "{text:?}");
    let facts = Facts::with_tags([current.to_owned(), newer.to_owned()]);
    match tracked[0].step(text, &facts) {
        Step::Update(u) => apply_edits(file, text, &u.edits).unwrap(),
        other => panic!("expected an update, got {other:?}"),
    }
}

proptest! {
    #[test]
    fn only_the_tag_changes(
        format in prop::sample::select(vec!["yaml", "tf", "Dockerfile"]),
        s in shape(),
        (name, tag) in image(),
    ) {
        let file = match format { "yaml" => "a.yaml", "tf" => "main.tf", _ => "Dockerfile" };
        let mut s = s;
        if format != "yaml" { s.quote = ""; }
        if format == "Dockerfile" { s.indent = 0; }
        let newer = tag.replace("1.2.3", "1.2.4");
        let before = render(format, &s, &name, &tag);
        let after = update(file, &before, &tag, &newer);
        prop_assert_eq!(&after, &render(format, &s, &name, &newer));
        // Exactly one place differs, and only in the changed digit.
        let diff: Vec<usize> = before.bytes().zip(after.bytes()).enumerate()
            .filter(|(_, (a, b))| a != b).map(|(i, _)| i).collect();
        prop_assert_eq!(diff.len(), 1);
        prop_assert_eq!(before.len(), after.len());
    }
}
