//! The loop under tokio's paused time, with a recording pass: ticks, windows,
//! failed passes, leadership changes and `--no-leader-election`, without a cluster
//! and without sleeping.

use std::sync::Mutex;

use freshet_core::refresh::{Timestamp, Window};
use tokio::sync::{oneshot, watch};

use super::*;
use crate::clock::TokioClock;
use crate::gather::GatherError;

const T0: &str = "2026-11-23T10:00:00Z";
const MINUTE: Duration = Duration::from_secs(60);

fn t(offset_secs: i64) -> Timestamp {
    Timestamp::from_unix(Timestamp::parse(T0).unwrap().unix_seconds() + offset_secs).unwrap()
}

fn window(since: i64, now: i64) -> Window {
    Window {
        since: Some(t(since)),
        now: t(now),
    }
}

/// Records every window; the passes numbered in `fail` (from 1) cannot run.
struct Recording {
    windows: Mutex<Vec<Window>>,
    focused: Mutex<Vec<(Window, BTreeSet<String>)>>,
    count: watch::Sender<usize>,
    fail: Vec<usize>,
}

impl Recording {
    fn new(fail: &[usize]) -> Self {
        Self {
            windows: Mutex::default(),
            focused: Mutex::default(),
            count: watch::channel(0).0,
            fail: fail.to_vec(),
        }
    }

    fn windows(&self) -> Vec<Window> {
        self.windows.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) {
        let mut rx = self.count.subscribe();
        rx.wait_for(|c| *c >= n).await.unwrap();
    }
}

impl Passes for Recording {
    fn run_window(&self, window: Window) -> impl Future<Output = Result<PassReport, PassError>> {
        let n = {
            let mut w = self.windows.lock().unwrap();
            w.push(window);
            w.len()
        };
        self.count.send_replace(n);
        let fail = self.fail.contains(&n);
        async move {
            if fail {
                return Err(PassError::Gather(GatherError::Registry(
                    "the API is down".into(),
                )));
            }
            Ok(PassReport {
                dry_run: false,
                at: window.now,
                images: 0,
                workloads: Vec::new(),
                requests: Default::default(),
            })
        }
    }

    fn run_focused(
        &self,
        window: Window,
        repositories: &BTreeSet<String>,
    ) -> impl Future<Output = Result<PassReport, PassError>> {
        self.focused
            .lock()
            .unwrap()
            .push((window, repositories.clone()));
        async move {
            Ok(PassReport {
                dry_run: false,
                at: window.now,
                images: 0,
                workloads: Vec::new(),
                requests: Default::default(),
            })
        }
    }
}

fn ticks(schedules: bool) -> Ticks {
    Ticks {
        interval: MINUTE,
        schedules,
        clock: Arc::new(TokioClock::starting_at(t(0))),
    }
}

/// Also the regression test of `--no-leader-election`: a replica that always leads
/// runs passes until shutdown (it used to stop before its first pass).
#[tokio::test(start_paused = true)]
async fn each_tick_covers_the_time_since_the_last_pass_that_ran() {
    let passes = Recording::new(&[3]);
    let metrics = Metrics::new();
    let (stop, stopped) = oneshot::channel::<()>();
    let driver = async {
        passes.wait_for(4).await;
        let _ = stop.send(());
    };
    let shutdown = async {
        let _ = stopped.await;
    };
    tokio::join!(
        run_loop(
            &passes,
            Leadership::always(),
            ticks(true),
            &metrics,
            shutdown
        ),
        driver
    );
    assert_eq!(
        passes.windows(),
        [
            window(-60, 0),
            window(0, 60),
            // The third pass cannot run: the fourth covers its time too.
            window(60, 120),
            window(60, 180),
        ]
    );
    let text = metrics.encode();
    assert!(
        text.contains("freshet_passes_total{outcome=\"ok\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("freshet_passes_total{outcome=\"error\"} 1"),
        "{text}"
    );
    assert!(text.contains("freshet_leader 0"), "stopped: {text}");
}

#[tokio::test(start_paused = true)]
async fn ignoring_schedules_makes_every_pass_cover_everything() {
    let passes = Recording::new(&[]);
    let metrics = Metrics::new();
    let (stop, stopped) = oneshot::channel::<()>();
    let driver = async {
        passes.wait_for(2).await;
        let _ = stop.send(());
    };
    tokio::join!(
        run_loop(
            &passes,
            Leadership::always(),
            ticks(false),
            &metrics,
            async {
                let _ = stopped.await;
            }
        ),
        driver
    );
    assert_eq!(
        passes.windows(),
        [Window::everything(t(0)), Window::everything(t(60))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_follower_runs_nothing_and_a_new_term_starts_from_a_fresh_window() {
    let passes = Recording::new(&[]);
    let metrics = Metrics::new();
    let (lead, leading) = watch::channel(false);
    let (stop, stopped) = oneshot::channel::<()>();
    let driver = async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(passes.windows().is_empty(), "a follower runs no pass");
        assert!(metrics.encode().contains("freshet_leader 0"));
        lead.send_replace(true);
        passes.wait_for(2).await;
        lead.send_replace(false);
        tokio::time::sleep(2 * MINUTE).await;
        assert_eq!(passes.windows().len(), 2, "no pass after the lease is lost");
        lead.send_replace(true);
        passes.wait_for(3).await;
        let _ = stop.send(());
    };
    tokio::join!(
        run_loop(
            &passes,
            Leadership::following(leading),
            ticks(true),
            &metrics,
            async {
                let _ = stopped.await;
            }
        ),
        driver
    );
    assert_eq!(
        passes.windows(),
        [window(-30, 30), window(30, 90), window(150, 210)]
    );
}

/// A webhook's images make the leader run a focused pass at once, between ticks,
/// over the regular window, without moving it: the next tick covers the same time.
#[tokio::test(start_paused = true)]
async fn a_recheck_runs_a_focused_pass_at_once_without_moving_the_window() {
    let passes = Recording::new(&[]);
    let metrics = Metrics::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let (stop, stopped) = oneshot::channel::<()>();
    let driver = async {
        passes.wait_for(1).await;
        tokio::time::sleep(Duration::from_secs(20)).await;
        for image in ["ghcr.io/acme/api:1", "ghcr.io/acme/api:2", "nginx"] {
            tx.send(Reference::parse(image).unwrap()).await.unwrap();
        }
        passes.wait_for(2).await;
        let _ = stop.send(());
    };
    tokio::join!(
        run_loop_with(
            &passes,
            Leadership::always(),
            ticks(true),
            &metrics,
            &mut rx,
            async {
                let _ = stopped.await;
            }
        ),
        driver
    );
    let focused = passes.focused.lock().unwrap().clone();
    assert_eq!(focused.len(), 1, "{focused:?}");
    assert_eq!(focused[0].0, window(0, 20));
    assert_eq!(
        focused[0].1,
        BTreeSet::from([
            "docker.io/library/nginx".to_owned(),
            "ghcr.io/acme/api".to_owned()
        ])
    );
    assert_eq!(passes.windows(), [window(-60, 0), window(0, 60)]);
    assert!(
        metrics
            .encode()
            .contains("freshet_pass_duration_seconds_count 3"),
        "{}",
        metrics.encode()
    );
}
