//! Criterion benchmarks: parsing an export, importing it into SQLite, the overview of
//! every period over the imported history, and reading that history back (what an export
//! and Python's `history()` do).
//!
//! `cargo bench --bench analytics` uses 1,000,000 extended-history entries; set
//! `ECHOSTATS_BENCH_ENTRIES` for another size. Targets (README): overview all_time over
//! 1M plays < 50 ms.

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use echostats::analytics::{overview, OverviewRequest, Period};
use echostats::import::{parse_inputs, ImportLimits, ParseEvent};
use echostats::ingest::{import_paths, ImportOptions};
use echostats::store::TimeWindow;
use echostats_core::sample::{generate_export, SampleOptions};
use std::time::Duration;

fn entries() -> usize {
    std::env::var("ECHOSTATS_BENCH_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

fn benches(c: &mut Criterion) {
    let n = entries();
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("export");
    let opts = SampleOptions { extended_entries: n, years: 10, account_data: false, ..SampleOptions::small() };
    generate_export(&export, &opts).expect("generate export");
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    let mut g = c.benchmark_group("parse");
    g.sample_size(10).measurement_time(Duration::from_secs(20)).throughput(Throughput::Elements(n as u64));
    g.bench_function(format!("parse_{n}_entries"), |b| {
        b.iter(|| {
            let mut records = 0usize;
            parse_inputs(std::slice::from_ref(&export), &ImportLimits::default(), 5_000, &mut |ev| {
                if let ParseEvent::Chunk { records: r, .. } = ev {
                    records += r.len();
                }
                true
            })
            .expect("parse");
            records
        })
    });
    g.finish();

    let db = dir.path().join("bench.db");
    let store = rt.block_on(echostats::open_store(&format!("sqlite://{}", db.display()))).expect("open sqlite");
    let summary = rt
        .block_on(import_paths(&*store, "local", std::slice::from_ref(&export), &ImportOptions::default(), None))
        .expect("import");
    eprintln!("imported {} entries in {:.2} s", summary.entries(), summary.elapsed.as_secs_f64());

    let mut g = c.benchmark_group("overview_sqlite");
    g.sample_size(20);
    for period in Period::ALL {
        let req = OverviewRequest::new(period);
        g.bench_function(format!("{period}_{n}_entries"), |b| {
            b.to_async(&rt).iter(|| async { overview(&*store, "local", &req).await.expect("overview") })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("history_sqlite");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let last_year = TimeWindow { start: Utc::now() - chrono::Duration::days(365), end: Utc::now() };
    for (name, window) in [("all", None), ("last_365_days", Some(last_year))] {
        let plays = rt.block_on(store.plays_in("local", window)).expect("history").len();
        g.throughput(Throughput::Elements(plays as u64));
        g.bench_function(format!("plays_chunked_{name}_{n}_entries"), |b| {
            b.to_async(&rt).iter(|| async {
                let mut read = 0usize;
                store
                    .plays_chunked("local", window, 10_000, &mut |chunk| {
                        read += chunk.len();
                        Ok(())
                    })
                    .await
                    .expect("plays_chunked");
                read
            })
        });
    }
    g.finish();
}

criterion_group!(analytics, benches);
criterion_main!(analytics);
