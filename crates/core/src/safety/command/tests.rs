use super::*;

fn d(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000 + s, 0).unwrap()
}

fn c(name: &str, image: &str) -> Container {
    Container {
        name: name.into(),
        image: image.into(),
        ..Container::default()
    }
}

fn running(pairs: &[(&str, &[Digest])]) -> BTreeMap<String, BTreeSet<Digest>> {
    pairs
        .iter()
        .map(|(n, ds)| ((*n).to_owned(), ds.iter().cloned().collect()))
        .collect()
}

#[test]
fn targets_parse_with_kubectl_kinds_or_fail_with_the_fix() {
    let t = Target::parse("deploy/shop/api").unwrap();
    assert_eq!(
        (t.kind, t.namespace.as_str(), t.name.as_str()),
        (WorkloadKind::Deployment, "shop", "api")
    );
    assert_eq!(
        Target::parse("StatefulSet/db/pg").unwrap().kind,
        WorkloadKind::StatefulSet
    );
    assert_eq!(
        Target::parse("cj/ops/nightly").unwrap().kind,
        WorkloadKind::CronJob
    );
    for bad in [
        "deployment/api",
        "pod/shop/api",
        "deployment/Shop/api",
        "a/b/c/d",
        "ds//x",
    ] {
        let e = Target::parse(bad).unwrap_err().to_string();
        assert!(e.contains("KIND/NAMESPACE/NAME"), "{bad}: {e}");
    }
}

#[test]
fn select_takes_the_named_container_or_the_one_image() {
    let cs = [c("api", "ghcr.io/acme/api:latest"), c("sidecar", "envoy:1")];
    assert_eq!(select(&cs, Some("sidecar")).unwrap()[0].name, "sidecar");
    let e = select(&cs, Some("web")).unwrap_err().to_string();
    assert!(e.contains("api, sidecar"), "{e}");
    let e = select(&cs, None).unwrap_err().to_string();
    assert!(
        e.contains("--container") && e.contains("ghcr.io/acme/api"),
        "{e}"
    );
    let one = [c("a", "nginx:1"), c("b", "nginx:1")];
    assert_eq!(select(&one, None).unwrap().len(), 2);
}

#[test]
fn rollback_pins_the_target_keeping_the_tag_and_holds_what_runs() {
    let cs = [c("api", "ghcr.io/acme/api:latest")];
    let sel = select(&cs, None).unwrap();
    let r = rollback(
        &sel,
        &d('a'),
        &running(&[("api", &[d('a'), d('b')])]),
        &Holds::default(),
        t(0),
    )
    .unwrap();
    assert_eq!(
        r.restores,
        vec![Restore::Image {
            container: "api".into(),
            init: false,
            from: "ghcr.io/acme/api:latest".into(),
            to: format!("ghcr.io/acme/api:latest@{}", d('a')),
        }]
    );
    assert!(r.holds.is_held("ghcr.io/acme/api", &d('b')));
    assert!(!r.holds.is_held("ghcr.io/acme/api", &d('a')));
    let held = &r.holds.0["ghcr.io/acme/api"];
    assert_eq!(held.floating["api"], "ghcr.io/acme/api:latest");
    assert!(r.annotations[HOLD].is_some());
}

#[test]
fn pin_takes_the_running_digest_and_release_restores_the_tag() {
    let cs = [c("api", "ghcr.io/acme/api:16")];
    let sel = select(&cs, None).unwrap();
    let e = pin(&sel, &running(&[]), None, t(0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("imageID"), "{e}");
    let e = pin(&sel, &running(&[("api", &[d('a'), d('b')])]), None, t(0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("several digests"), "{e}");
    let p = pin(&sel, &running(&[("api", &[d('a')])]), None, t(0)).unwrap();
    let pinned = format!("ghcr.io/acme/api:16@{}", d('a'));
    assert!(matches!(&p.restores[..], [Restore::Image { to, .. }] if *to == pinned));
    let record = Pin::parse(p.annotations[PIN].as_deref()).unwrap().unwrap();
    assert_eq!(record.floating["api"], "ghcr.io/acme/api:16");
    assert_eq!(Pin::parse(Some(&record.render())).unwrap().unwrap(), record);

    let now = [c("api", &pinned)];
    let r = release(&now, None, Some(&record), &Holds::default()).unwrap();
    assert_eq!(r.annotations[PIN], None);
    assert_eq!(
        r.restores,
        vec![Restore::Image {
            container: "api".into(),
            init: false,
            from: pinned.clone(),
            to: "ghcr.io/acme/api:16".into()
        }]
    );
    let e = release(&now, None, None, &Holds::default()).unwrap_err();
    assert!(e.to_string().contains("nothing to release"), "{e}");
}

#[test]
fn hold_and_release_of_a_held_digest() {
    let cs = [c("api", "ghcr.io/acme/api:latest")];
    let sel = select(&cs, None).unwrap();
    let h = hold(&sel, &d('b'), &Holds::default(), t(0)).unwrap();
    assert!(h.restores.is_empty());
    assert!(h.holds.is_held("ghcr.io/acme/api", &d('b')));
    let again = hold(&sel, &d('b'), &h.holds, t(5)).unwrap();
    assert!(
        again.annotations.is_empty(),
        "holding twice changes nothing"
    );
    let r = release(&cs, Some(&sel), None, &h.holds).unwrap();
    assert_eq!(r.annotations[HOLD], None);
    assert!(r.restores.is_empty(), "nothing was pinned");
    let bad = Pin::parse(Some("{\"since\":1}")).unwrap_err().to_string();
    assert!(
        bad.contains(PIN) && bad.contains("freshet release"),
        "{bad}"
    );
}
