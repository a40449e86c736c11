//! The metrics a pool records, read through a recorder installed for this test binary.

mod carrier_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

use carrier_support::*;
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use smppd::metrics as m;
use smsc_sim::config::Faults;

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        if let Ok(mut v) = self.0.lock() {
            v.push(value);
        }
    }
}

/// Every metric by its name and sorted labels, e.g.
/// `smppd_submits_total{bind=trx0,carrier=acme,status=ESME_ROK}`.
#[derive(Default)]
struct TestRecorder {
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
    gauges: Mutex<HashMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<String, Arc<Samples>>>,
}

fn key_name(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut map = self.counters.lock().unwrap();
        Counter::from_arc(map.entry(key_name(key)).or_default().clone())
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut map = self.gauges.lock().unwrap();
        Gauge::from_arc(map.entry(key_name(key)).or_default().clone())
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut map = self.histograms.lock().unwrap();
        Histogram::from_arc(map.entry(key_name(key)).or_default().clone())
    }
}

fn recorder() -> &'static TestRecorder {
    static RECORDER: OnceLock<&'static TestRecorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let r: &'static TestRecorder = Box::leak(Box::default());
        metrics::set_global_recorder(r).expect("the only recorder of this test binary");
        r
    })
}

fn counter(name: &str) -> u64 {
    recorder()
        .counters
        .lock()
        .unwrap()
        .get(name)
        .map_or(0, |c| c.load(Relaxed))
}

fn gauge(name: &str) -> Option<f64> {
    recorder()
        .gauges
        .lock()
        .unwrap()
        .get(name)
        .map(|g| f64::from_bits(g.load(Relaxed)))
}

fn histogram_count(name: &str) -> usize {
    recorder()
        .histograms
        .lock()
        .unwrap()
        .get(name)
        .map_or(0, |h| h.0.lock().unwrap().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_binds_submits_round_trips_failures_and_breaker_changes() {
    recorder();
    let sim = TestSim::start(vec![account("esme")]).await;
    let mut config = carrier("metered", sim.addr, "esme");
    config.carrier_breaker.consecutive_failures = 3;
    let s = start(config);
    until("bound", || s.pool.binds_up() == 1).await;
    let labels = "bind=trx0,carrier=metered";
    assert_eq!(
        gauge(&format!("{}{{carrier=metered}}", m::BINDS_UP)),
        Some(1.0)
    );
    assert_eq!(gauge(&format!("{}{{{labels}}}", m::BIND_STATE)), Some(3.0));

    for i in 0..5 {
        let mut parts = vec![sm("447700900123", "counted")];
        assert!(
            s.pool
                .submit(&mut parts, i)
                .await
                .unwrap()
                .await
                .all_accepted()
        );
    }
    assert_eq!(
        counter(&format!("{}{{{labels},status=ESME_ROK}}", m::SUBMITS)),
        5
    );
    assert_eq!(
        histogram_count(&format!("{}{{{labels}}}", m::SUBMIT_RTT)),
        5
    );
    assert_eq!(
        gauge(&format!("{}{{{labels}}}", m::WINDOW_IN_USE)),
        Some(0.0)
    );

    sim.handle
        .set_faults(
            "esme",
            Faults {
                error_rate: 1.0,
                error_statuses: vec!["ESME_RSYSERR".into()],
                ..Faults::default()
            },
        )
        .unwrap();
    for i in 0..3 {
        let mut parts = vec![sm("447700900123", "refused")];
        let _ = s.pool.submit(&mut parts, 10 + i).await.unwrap().await;
    }
    assert_eq!(
        counter(&format!("{}{{{labels},status=ESME_RSYSERR}}", m::SUBMITS)),
        3
    );
    assert_eq!(
        counter(&format!(
            "{}{{bind=carrier,carrier=metered,to=open}}",
            m::BREAKER_TRANSITIONS
        )),
        1
    );
    assert_eq!(
        gauge(&format!(
            "{}{{bind=carrier,carrier=metered}}",
            m::BREAKER_STATE
        )),
        Some(2.0)
    );

    s.pool.shutdown(WAIT).await;
    assert_eq!(
        gauge(&format!("{}{{carrier=metered}}", m::BINDS_UP)),
        Some(0.0)
    );
    assert_eq!(gauge(&format!("{}{{{labels}}}", m::BIND_STATE)), Some(5.0));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_refused_binds_by_status_and_raises_the_auth_alarm() {
    recorder();
    let sim = TestSim::start(vec![account("esme")]).await;
    let mut config = carrier("locked", sim.addr, "esme");
    config.password = "nope".into();
    let s = start(config);
    until("the alarm", || {
        gauge(&format!("{}{{carrier=locked}}", m::AUTH_FAILED)) == Some(1.0)
    })
    .await;
    assert_eq!(
        counter(&format!(
            "{}{{bind=trx0,carrier=locked,status=ESME_RINVPASWD}}",
            m::BIND_FAILURES
        )),
        1
    );
    // Resuming clears the alarm. (With the simulator gone first, the retry that follows
    // cannot be refused again and raise it before the gauge is read.)
    sim.stop().await;
    s.pool.resume();
    assert_eq!(
        gauge(&format!("{}{{carrier=locked}}", m::AUTH_FAILED)),
        Some(0.0)
    );
    s.pool.shutdown(WAIT).await;
}
