//! Properties: the YAML values freshet writes read back as the same strings, in any
//! quoting they replace; Go globs never panic and match a literal pattern exactly.

use proptest::prelude::*;

use crate::argocd::glob;
use crate::argocd::yamlpath::{self, Node};

fn value_of(text: &str, key: &str) -> Option<String> {
    let docs = yamlpath::parse(text).ok()?;
    match yamlpath::get(docs.first()?, key)? {
        Node::Scalar(s) => Some(s.value.clone()),
        _ => None,
    }
}

proptest! {
    #[test]
    fn rendered_scalars_read_back_unchanged(value in "[ -~]{1,40}") {
        let text = format!("k: {}\n", yamlpath::render(&value));
        prop_assert_eq!(value_of(&text, "k"), Some(value));
    }

    #[test]
    fn set_scalar_keeps_everything_else(
        old in "[a-z0-9.:@-]{1,20}",
        new in "[ -~]{1,40}",
        quote in 0usize..3,
    ) {
        let written = match quote {
            0 => yamlpath::render(&old),
            1 => format!("\"{old}\""),
            _ => format!("'{old}'"),
        };
        let text = format!("# head\nimage:\n  tag: {written}   # pin\n  pullPolicy: Always\n");
        let docs = yamlpath::parse(&text).unwrap();
        let scalar = yamlpath::lookup(&docs[0], "image.tag").unwrap().clone();
        let edits: Vec<_> = yamlpath::set_scalar(&text, &scalar, &new).into_iter().collect();
        let out = yamlpath::splice(&text, &edits).unwrap();
        let docs = yamlpath::parse(&out).unwrap();
        prop_assert_eq!(&yamlpath::lookup(&docs[0], "image.tag").unwrap().value, &new);
        prop_assert_eq!(&yamlpath::lookup(&docs[0], "image.pullPolicy").unwrap().value, "Always");
        prop_assert!(out.starts_with("# head\nimage:\n  tag: ") && out.ends_with("   # pin\n  pullPolicy: Always\n"));
    }

    #[test]
    fn globs_never_panic_and_literals_match_themselves(pattern in "[ -~]{0,30}", name in "[ -~]{0,30}") {
        let _ = glob::matches(&pattern, &name);
        let literal: String = name.chars().flat_map(|c| {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') { vec!['\\', c] } else { vec![c] }
        }).collect();
        prop_assert!(glob::matches(&literal, &name));
    }
}
