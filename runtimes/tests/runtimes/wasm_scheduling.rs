//! Scheduling of busy guests, in a binary of its own: these tests measure time and CPU shares,
//! so they run one at a time and apart from the other tests.

use crate::common;

use std::time::{Duration, Instant};

use common::{Fixture, guests, rec, within};
use rkube_runtimes::{Runtime, Signal};

const SECOND: Duration = Duration::from_secs(1);

/// Busy guests never yield on their own: on one executor thread a starved sleeper would not
/// wake until they are killed. The bound is loose because the test machine is shared.
const STARVED: Duration = Duration::from_millis(1500);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// On a single executor thread, two busy guests share it by their CPU limits and a sleeping
/// neighbour still wakes on time.
#[tokio::test(flavor = "current_thread")]
async fn cpu_limits_share_a_thread_and_sleepers_wake_on_time() {
    let _serial = SERIAL.lock().await;
    let fx = Fixture::new();
    let rt = &fx.runtime;
    let mut ids = Vec::new();
    for (name, millicores) in [("small", 150), ("large", 450)] {
        let mut spec = fx.spec(name, &guests::busy_ticker());
        spec.limits.cpu_millicores = Some(millicores);
        let id = rt.create(&spec).await.unwrap();
        rt.start(&id).await.unwrap();
        ids.push(id);
    }
    let sleeper = rt
        .create(&fx.spec("sleeper", &guests::sleeps(100)))
        .await
        .unwrap();
    let slept_at = Instant::now();
    rt.start(&sleeper).await.unwrap();
    within(2 * SECOND, "sleeper", rt.wait(&sleeper))
        .await
        .unwrap();
    let slept = slept_at.elapsed();
    assert!(slept >= Duration::from_millis(100), "woke early: {slept:?}");
    assert!(slept < STARVED, "woke late: {slept:?}");
    assert_eq!(fx.log("sleeper"), vec![rec("stdout", "F", "awake")]);

    tokio::time::sleep(2 * SECOND).await;
    for id in &ids {
        rt.kill(id, Signal::Kill).await.unwrap();
        within(SECOND, "kill", rt.wait(id)).await.unwrap();
    }
    let small = fx.log("small").len() as f64;
    let large = fx.log("large").len() as f64;
    assert!(small > 0.0, "the small guest ran");
    let ratio = large / small;
    assert!(
        (2.0..=4.5).contains(&ratio),
        "450m vs 150m ran {large} vs {small} ticks"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn unlimited_busy_neighbours_do_not_starve_a_sleeper() {
    let _serial = SERIAL.lock().await;
    let fx = Fixture::new();
    let rt = &fx.runtime;
    let mut busy = Vec::new();
    for name in ["busy1", "busy2"] {
        let id = rt.create(&fx.spec(name, &guests::busy())).await.unwrap();
        rt.start(&id).await.unwrap();
        busy.push(id);
    }
    let sleeper = rt
        .create(&fx.spec("sleeper", &guests::sleeps(50)))
        .await
        .unwrap();
    let slept_at = Instant::now();
    rt.start(&sleeper).await.unwrap();
    within(2 * SECOND, "sleeper", rt.wait(&sleeper))
        .await
        .unwrap();
    let slept = slept_at.elapsed();
    assert!(slept < STARVED, "woke late: {slept:?}");
    for id in &busy {
        rt.delete(id).await.unwrap();
    }
    assert!(rt.list().await.unwrap().len() == 1);
}
