//! Metric series (downsampled reads with their rollup pyramid) and the streamed metric history,
//! on every backend. Bucket contents are checked against a brute-force oracle over the points
//! the test logged, so any rollup that miscounts, misses a point or keeps a wrong `last` fails.

use sqlx::{AnyPool, Executor, Row};
use twinloop_core::ErrorKind;
use twinloop_core::tracking::*;
use twinloop_meta::history::{HISTORY_CHUNK, HistoryPart};
use twinloop_meta::series::{Buckets, RawPoints, SeriesData, SeriesQuery, XAxis};
use twinloop_meta::{ExperimentStore, SqlStore, StoreUri, TrackingStore};

use crate::support;

const T0: i64 = 1_700_000_000_000;

async fn new_run(store: &dyn TrackingStore, exp: &str) -> String {
    store
        .create_run(NewRun {
            experiment_id: exp.into(),
            user_id: "u".into(),
            run_name: None,
            start_time: Some(1),
            tags: vec![],
        })
        .await
        .unwrap()
        .info
        .run_id
}

async fn log(store: &dyn TrackingStore, run: &str, points: &[Metric]) {
    for batch in points.chunks(1000) {
        store.log_batch(run, batch, &[], &[]).await.unwrap();
    }
}

/// `n` steps of "loss" with a wobble, a spike at step 12,345, a dip at 7,777, NaN every 1,000th
/// step and +Infinity at step 500; steps logged out of order in the middle, and a few steps
/// with a second point (a later timestamp).
fn points(n: i64) -> Vec<Metric> {
    let mut out: Vec<Metric> = (0..n)
        .map(|s| {
            let value = match s {
                12_345 => 1e6,
                7_777 => -1e6,
                500 => f64::INFINITY,
                s if s % 1000 == 999 => f64::NAN,
                s => ((s * 7919) % 1013) as f64 / 10.0,
            };
            Metric::new("loss", value, T0 + 10 * s, s)
        })
        .collect();
    out[4000..6000].reverse();
    for s in [3, 4_096, 9_999, 15_000] {
        out.push(Metric::new("loss", -2.5, T0 + 10 * s + 7, s));
    }
    out
}

fn query(run_ids: &[&str], x: XAxis, from: Option<i64>, to: Option<i64>, n: u32) -> SeriesQuery {
    SeriesQuery {
        run_ids: run_ids.iter().map(|s| s.to_string()).collect(),
        key: "loss".into(),
        x,
        from,
        to,
        buckets: n,
    }
}

/// The point's position on `x`, with the run's first timestamp for the relative axis.
fn x_of(m: &Metric, x: XAxis, first: i64) -> i64 {
    match x {
        XAxis::Step => m.step,
        XAxis::Time => m.timestamp,
        XAxis::Relative => m.timestamp - first,
    }
}

/// Checks every bucket against the logged points whose x lies in it, and that the buckets
/// hold every charted point in `from..=to`.
fn check_buckets(b: &Buckets, logged: &[Metric], x: XAxis, from: i64, to: i64) {
    let first = logged.iter().map(|m| m.timestamp).min().unwrap();
    let charted: Vec<&Metric> = logged
        .iter()
        .filter(|m| m.value.is_finite())
        .filter(|m| (from..=to).contains(&x_of(m, x, first)))
        .collect();
    assert_eq!(b.count.iter().sum::<u64>(), charted.len() as u64);
    for i in 0..b.count.len() {
        assert!(from <= b.x_lo[i] && b.x_lo[i] <= b.x_hi[i] && b.x_hi[i] <= to);
        if i > 0 {
            assert!(b.x_hi[i - 1] < b.x_lo[i], "buckets overlap");
        }
        let inside: Vec<&&Metric> = charted
            .iter()
            .filter(|m| (b.x_lo[i]..=b.x_hi[i]).contains(&x_of(m, x, first)))
            .collect();
        assert_eq!(b.count[i], inside.len() as u64, "bucket {i}");
        let min = inside.iter().map(|m| m.value).fold(f64::MAX, f64::min);
        let max = inside.iter().map(|m| m.value).fold(f64::MIN, f64::max);
        let last = inside
            .iter()
            .max_by(|a, b| {
                (x_of(a, x, first), a.step, a.timestamp)
                    .cmp(&(x_of(b, x, first), b.step, b.timestamp))
                    .then(a.value.total_cmp(&b.value))
            })
            .unwrap();
        assert_eq!(
            (b.min[i], b.max[i], b.last[i]),
            (min, max, last.value),
            "bucket {i}"
        );
    }
}

fn buckets(data: &SeriesData) -> &Buckets {
    match data {
        SeriesData::Buckets(b) => b,
        SeriesData::Raw(r) => panic!("expected buckets, got {} raw points", r.x.len()),
    }
}

fn raw(data: &SeriesData) -> &RawPoints {
    match data {
        SeriesData::Raw(r) => r,
        SeriesData::Buckets(b) => panic!("expected raw points, got {} buckets", b.count.len()),
    }
}

on_every_backend!(series_buckets_are_exact, |s: &dyn TrackingStore| {
    let exp = s.create_experiment("series", None, &[]).await.unwrap();
    let run = new_run(s, &exp).await;
    let logged = points(20_000);
    log(s, &run, &logged).await;
    // A retried batch: nothing new is stored, so nothing may be counted twice.
    log(s, &run, &logged[..1000]).await;

    // The whole series on the step axis, read from rollups (buckets of 64 steps).
    let series = s
        .metric_series(&query(&[&run], XAxis::Step, None, None, 400))
        .await
        .unwrap();
    let range = series.range.unwrap();
    assert_eq!((range.from, range.to), (0, 19_999));
    let b = buckets(&series.runs[0].data);
    assert!(b.count.len() <= 400 && b.count.len() > 200);
    check_buckets(b, &logged, XAxis::Step, 0, 19_999);
    assert!(
        b.max.contains(&1e6) && b.min.contains(&-1e6),
        "extremes kept"
    );

    // A range whose ends fall inside rollup cells, read from cells and edge rows.
    let series = s
        .metric_series(&query(&[&run], XAxis::Step, Some(1_234), Some(17_777), 100))
        .await
        .unwrap();
    check_buckets(
        buckets(&series.runs[0].data),
        &logged,
        XAxis::Step,
        1_234,
        17_777,
    );

    // Buckets narrower than a rollup cell are folded from the rows.
    let series = s
        .metric_series(&query(&[&run], XAxis::Step, Some(100), Some(2_100), 400))
        .await
        .unwrap();
    assert!(series.range.unwrap().bucket_width < 16);
    check_buckets(
        buckets(&series.runs[0].data),
        &logged,
        XAxis::Step,
        100,
        2_100,
    );

    // Time axes walk the pyramid.
    for x in [XAxis::Time, XAxis::Relative] {
        let series = s
            .metric_series(&query(&[&run], x, None, None, 300))
            .await
            .unwrap();
        let range = series.range.unwrap();
        check_buckets(
            buckets(&series.runs[0].data),
            &logged,
            x,
            range.from,
            range.to,
        );
    }
    let series = s
        .metric_series(&query(&[&run], XAxis::Relative, None, None, 300))
        .await
        .unwrap();
    assert_eq!(series.range.unwrap().from, 0);
});

on_every_backend!(
    series_below_the_bucket_count_are_the_raw_points,
    |s: &dyn TrackingStore| {
        let exp = s.create_experiment("raw", None, &[]).await.unwrap();
        let run = new_run(s, &exp).await;
        let logged = points(20_000);
        log(s, &run, &logged).await;

        // 199 steps hold 200 points (step 4,096 has two), one of them NaN (step 3,999): 199 charted.
        let series = s
            .metric_series(&query(&[&run], XAxis::Step, Some(3_950), Some(4_148), 200))
            .await
            .unwrap();
        let r = raw(&series.runs[0].data);
        let mut expected: Vec<&Metric> = logged
            .iter()
            .filter(|m| (3_950..=4_148).contains(&m.step) && m.value.is_finite())
            .collect();
        expected.sort_by_key(|m| (m.step, m.timestamp));
        assert_eq!(r.x.len(), expected.len());
        for (i, m) in expected.iter().enumerate() {
            assert_eq!(
                (r.x[i], r.step[i], r.timestamp[i], r.value[i]),
                (m.step, m.step, m.timestamp, m.value)
            );
        }
        // One point more than the bucket count: buckets.
        let series = s
            .metric_series(&query(&[&run], XAxis::Step, Some(3_950), Some(4_148), 198))
            .await
            .unwrap();
        buckets(&series.runs[0].data);

        // Sparse points over a wide range come back raw although the buckets would be wide.
        let sparse = new_run(s, &exp).await;
        let few: Vec<Metric> = (0..50)
            .map(|i| Metric::new("loss", i as f64, T0 + i, i * 100_000))
            .collect();
        log(s, &sparse, &few).await;
        let series = s
            .metric_series(&query(&[&sparse], XAxis::Step, None, None, 100))
            .await
            .unwrap();
        assert_eq!(raw(&series.runs[0].data).x.len(), 50);
    }
);

on_every_backend!(
    series_of_many_runs_share_one_range,
    |s: &dyn TrackingStore| {
        let exp = s.create_experiment("many", None, &[]).await.unwrap();
        let short = new_run(s, &exp).await;
        let long = new_run(s, &exp).await;
        let empty = new_run(s, &exp).await;
        let short_points: Vec<Metric> = (0..100)
            .map(|i| Metric::new("loss", i as f64, T0 + i, i))
            .collect();
        let long_points: Vec<Metric> = (0..3000)
            .map(|i| Metric::new("loss", -(i as f64), T0 + i, i))
            .collect();
        log(s, &short, &short_points).await;
        log(s, &long, &long_points).await;
        let unknown = "0123456789abcdef0123456789abcdef";
        let series = s
            .metric_series(&query(
                &[&long, &short, &empty, unknown, &short, "not-a-run"],
                XAxis::Step,
                None,
                None,
                500,
            ))
            .await
            .unwrap();
        let range = series.range.unwrap();
        assert_eq!((range.from, range.to), (0, 2_999));
        let ids: Vec<&str> = series.runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                long.as_str(),
                short.as_str(),
                empty.as_str(),
                unknown,
                "not-a-run"
            ]
        );
        check_buckets(
            buckets(&series.runs[0].data),
            &long_points,
            XAxis::Step,
            0,
            2_999,
        );
        assert_eq!(raw(&series.runs[1].data).x.len(), 100);
        for run in &series.runs[2..] {
            assert_eq!(run.data, SeriesData::Raw(RawPoints::default()));
        }

        // A range that holds nothing, and a key nobody logged.
        let series = s
            .metric_series(&query(&[&long], XAxis::Step, Some(5_000), None, 10))
            .await
            .unwrap();
        assert_eq!(series.range, None);
        assert_eq!(series.runs[0].data, SeriesData::Raw(RawPoints::default()));
        let mut q = query(&[&long], XAxis::Step, None, None, 10);
        q.key = "accuracy".into();
        assert_eq!(s.metric_series(&q).await.unwrap().range, None);

        let too_many: Vec<String> = (0..1001).map(|i| format!("{i:032x}")).collect();
        let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
        let err = s
            .metric_series(&query(&refs, XAxis::Step, None, None, 10))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
    }
);

/// A seeded xorshift generator, so a failing series can be made again from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
}

/// How a random series' timestamps relate to its steps.
#[derive(Debug, Clone, Copy)]
enum Clock {
    /// Growing with the step, by 0 to 3 ms (so runs of equal timestamps).
    Monotonic,
    /// Anywhere in a window, whatever the step.
    Scrambled,
    /// Growing, but each stretch of steps logged again later with a later clock.
    Restarted,
    /// A handful of distinct timestamps.
    Few,
}

/// `n` points of "loss" over steps from -300 on, with NaN, ±Infinity, repeated steps and values
/// that tie, their timestamps as `clock` says.
fn random_series(rng: &mut Rng, n: i64, clock: Clock) -> Vec<Metric> {
    let mut t = T0;
    let mut out = Vec::new();
    let mut step = -300;
    while (out.len() as i64) < n {
        let timestamp = match clock {
            Clock::Monotonic => {
                t += rng.below(4);
                t
            }
            Clock::Scrambled => T0 + rng.below(50_000),
            Clock::Restarted if step % 2_000 == 0 => {
                t -= 3_000;
                t
            }
            Clock::Restarted => {
                t += 1 + rng.below(3);
                t
            }
            Clock::Few => T0 + 1_000 * rng.below(5),
        };
        let value = match rng.below(200) {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => 1e9,
            _ => rng.below(50) as f64 / 4.0,
        };
        out.push(Metric::new("loss", value, timestamp, step));
        // Now and then the same step again, at another time.
        if rng.below(50) != 0 {
            step += 1 + rng.below(3);
        }
    }
    out
}

/// The charted points of `logged` in `from..=to` on `x`, in the order raw points come back.
fn raw_oracle(logged: &[Metric], x: XAxis, from: i64, to: i64) -> Vec<(i64, i64, i64, f64)> {
    let first = logged.iter().map(|m| m.timestamp).min().unwrap();
    let mut expected: Vec<(i64, i64, i64, f64)> = logged
        .iter()
        .filter(|m| m.value.is_finite())
        .map(|m| (x_of(m, x, first), m.step, m.timestamp, m.value))
        .filter(|p| (from..=to).contains(&p.0))
        .collect();
    expected.sort_by(|a, b| {
        (a.0, a.1, a.2)
            .cmp(&(b.0, b.1, b.2))
            .then(a.3.total_cmp(&b.3))
    });
    expected.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1 && a.2 == b.2 && a.3 == b.3);
    expected
}

on_every_backend!(
    time_axes_from_the_pyramid_equal_the_rows,
    |s: &dyn TrackingStore| {
        let exp = s.create_experiment("time", None, &[]).await.unwrap();
        let mut rng = Rng(0x5eed_0f5e_71e5);
        for clock in [
            Clock::Monotonic,
            Clock::Scrambled,
            Clock::Restarted,
            Clock::Few,
        ] {
            let run = new_run(s, &exp).await;
            let logged = random_series(&mut rng, 6_000, clock);
            // Logged in shuffled batches: cells are merged across batches in any order.
            let mut batches: Vec<&[Metric]> = logged.chunks(700).collect();
            batches.reverse();
            for batch in batches {
                log(s, &run, batch).await;
            }
            let first = logged.iter().map(|m| m.timestamp).min().unwrap();
            let last = logged.iter().map(|m| m.timestamp).max().unwrap();
            for x in [XAxis::Time, XAxis::Relative] {
                let shift = if x == XAxis::Relative { first } else { 0 };
                let (lo, hi) = (first - shift, last - shift);
                let mut ranges = vec![(None, None), (Some(lo), Some(hi))];
                for _ in 0..4 {
                    let a = lo + rng.below((hi - lo + 1) as u64);
                    let b = a + rng.below((hi - a + 1) as u64);
                    ranges.push((Some(a), Some(b)));
                }
                ranges.push((Some(lo - 1_000), Some(lo + 40)));
                for (i, (from, to)) in ranges.into_iter().enumerate() {
                    // The oracle reads every point per bucket: the widest count once.
                    let widest = if i == 0 { 4000 } else { 500 };
                    for n in [1, 7, 64, widest] {
                        let q = query(&[&run], x, from, to, n);
                        let series = s.metric_series(&q).await.unwrap();
                        let range = series.range.unwrap();
                        let context = format!("{clock:?} {x:?} {from:?}..{to:?} in {n}");
                        let expected = raw_oracle(&logged, x, range.from, range.to);
                        match &series.runs[0].data {
                            SeriesData::Raw(r) => {
                                assert!(expected.len() <= n as usize, "{context}");
                                let got: Vec<(i64, i64, i64, f64)> = (0..r.x.len())
                                    .map(|i| (r.x[i], r.step[i], r.timestamp[i], r.value[i]))
                                    .collect();
                                assert_eq!(got, expected, "{context}");
                            }
                            SeriesData::Buckets(b) => {
                                assert!(expected.len() > n as usize, "{context}");
                                assert!(b.count.len() <= n as usize, "{context}");
                                check_buckets(b, &logged, x, range.from, range.to);
                            }
                        }
                    }
                }
            }
        }
    }
);

on_every_backend!(history_streams_in_chunks, |s: &dyn TrackingStore| {
    let exp = s.create_experiment("stream", None, &[]).await.unwrap();
    let run = new_run(s, &exp).await;
    let logged: Vec<Metric> = (0..3000)
        .map(|i| Metric::new("m", i as f64, T0 + i, i))
        .collect();
    log(s, &run, &logged).await;

    let mut history = s
        .stream_metric_history(&run, "m", Some(2500), None)
        .await
        .unwrap();
    let mut steps = Vec::new();
    let mut token = None;
    while let Some(part) = history.next().await {
        match part.unwrap() {
            HistoryPart::Points(points) => {
                assert!(token.is_none(), "the token comes last");
                assert!(!points.is_empty() && points.len() <= HISTORY_CHUNK);
                steps.extend(points.iter().map(|m| m.step));
            }
            HistoryPart::NextPageToken(t) => token = Some(t),
        }
    }
    assert_eq!(steps, (0..2500).collect::<Vec<_>>());
    let rest = s
        .get_metric_history(&run, "m", Some(2500), token.as_deref())
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 500);
    assert_eq!(rest.next_page_token, None);

    // A reader that stops early ends the read; the store stays usable.
    let mut history = s
        .stream_metric_history(&run, "m", None, None)
        .await
        .unwrap();
    assert!(matches!(
        history.next().await,
        Some(Ok(HistoryPart::Points(_)))
    ));
    drop(history);
    assert_eq!(
        s.get_metric_history(&run, "m", None, None)
            .await
            .unwrap()
            .items
            .len(),
        3000
    );
    assert_eq!(
        s.stream_metric_history(&run, "m", Some(0), None)
            .await
            .err()
            .unwrap()
            .kind,
        ErrorKind::InvalidArgument
    );
});

/// Every stored cell of the pyramid (levels 2 to 12), in key order, as text. The row of NaN
/// and infinite points is kept from writes on, not backfilled: for points logged before it,
/// time extents are read from the rows.
async fn rollup_rows(pool: &AnyPool) -> Vec<String> {
    let rows = pool
        .fetch_all(
            "SELECT run_uuid, key, level, cell, points, min_value, max_value, last_step, \
             last_timestamp, last_value, min_timestamp, max_timestamp FROM metric_rollups \
             WHERE level BETWEEN 2 AND 12 ORDER BY run_uuid, key, level, cell",
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {} {} {} {} {} {} {}",
                r.get::<String, _>(0),
                r.get::<String, _>(1),
                r.get::<i64, _>(2),
                r.get::<i64, _>(3),
                r.get::<i64, _>(4),
                r.get::<f64, _>(5),
                r.get::<f64, _>(6),
                r.get::<i64, _>(7),
                r.get::<i64, _>(8),
                r.get::<f64, _>(9),
                r.get::<i64, _>(10),
                r.get::<i64, _>(11),
            )
        })
        .collect()
}

/// Logs points (negative steps, NaN, infinities, two keys, two runs), then recomputes the
/// rollups with the migrations' backfills (0010's cells, 0017's timestamps) and expects the very
/// cells the writes kept. The backfill keeps no row of non-finite points, so the time axes then
/// read the runs' extents from their rows: the same series as before.
async fn backfill_matches_live_rollups(store: &SqlStore, url: &str, migrations: [&str; 2]) {
    let exp = store
        .create_experiment("backfill", None, &[])
        .await
        .unwrap();
    // The last point in time is infinite: only the non-finite row or the rows know it.
    let latest = T0 + 1_000_000_000;
    let mut queries = Vec::new();
    for key in ["loss", "acc"] {
        let run = new_run(store, &exp).await;
        let mut logged: Vec<Metric> = points(8_000)
            .into_iter()
            .map(|m| Metric::new(key, m.value, m.timestamp, m.step - 2_000))
            .collect();
        logged.push(Metric::new(key, f64::NEG_INFINITY, latest, -3));
        logged.reverse();
        log(store, &run, &logged).await;
        for x in [XAxis::Time, XAxis::Relative] {
            let mut q = query(&[&run], x, None, None, 100);
            q.key = key.into();
            queries.push(q);
        }
    }
    let tracking: &dyn TrackingStore = store;
    let mut before = Vec::new();
    for q in &queries {
        let series = tracking.metric_series(q).await.unwrap();
        if q.x == XAxis::Time {
            assert_eq!(series.range.unwrap().to, latest);
        }
        before.push(series);
    }
    sqlx::any::install_default_drivers();
    let pool = AnyPool::connect(url).await.unwrap();
    let live = rollup_rows(&pool).await;
    assert!(live.len() > 1000, "{} cells", live.len());
    pool.execute("DELETE FROM metric_rollups").await.unwrap();
    for statement in migrations[0]
        .split(";\n")
        .filter(|s| s.contains("INSERT INTO"))
        .chain(migrations[1].split(";\n").filter(|s| s.contains("UPDATE ")))
    {
        pool.execute(statement).await.unwrap();
    }
    assert_eq!(rollup_rows(&pool).await, live);
    for (q, before) in queries.iter().zip(before) {
        assert_eq!(tracking.metric_series(q).await.unwrap(), before, "{q:?}");
    }
    pool.close().await;
}

#[tokio::test]
async fn the_migration_backfill_keeps_the_same_cells_as_writes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let uri = StoreUri::Sqlite(dir.path().join("backfill.db"));
    let store = SqlStore::open(&uri, "mlflow-artifacts:").await.unwrap();
    let migrations = [
        include_str!("../../migrations/sqlite/0010_metric_rollups.sql"),
        include_str!("../../migrations/sqlite/0017_rollup_timestamps.sql"),
    ];
    backfill_matches_live_rollups(&store, &uri.sqlx_url(), migrations).await;
}

#[tokio::test]
async fn the_migration_backfill_keeps_the_same_cells_as_writes_on_postgres() {
    let Some(admin) = support::postgres_admin_url("the_migration_backfill::postgres") else {
        return;
    };
    let url = support::fresh_postgres_database(&admin).await;
    let store = SqlStore::open(&url.parse().unwrap(), "mlflow-artifacts:")
        .await
        .unwrap();
    let migrations = [
        include_str!("../../migrations/postgres/0010_metric_rollups.sql"),
        include_str!("../../migrations/postgres/0017_rollup_timestamps.sql"),
    ];
    backfill_matches_live_rollups(&store, &url, migrations).await;
}
