//! Searches ordered first by a metric's last value: read from the metric's index while the runs
//! where it is a number fill the page, from the general query after. Every page of every order
//! must equal the order worked out here by hand, whichever way it was read.

use std::cmp::Ordering;

use twinloop_core::tracking::*;
use twinloop_meta::{RunQuery, TrackingStore};

/// A run as the order sees it.
struct Seeded {
    id: String,
    start: i64,
    /// The last value of `m`, or `None` where the run never logged it.
    m: Option<f64>,
}

/// Where a run sorts by `m`: numbers first (in the asked direction), then NaN, then runs without
/// the metric; then newest first, then by id.
fn expected_order(runs: &[&Seeded], ascending: bool) -> Vec<String> {
    let class = |m: Option<f64>| match m {
        Some(v) if v.is_nan() => 1,
        Some(_) => 0,
        None => 2,
    };
    let mut sorted: Vec<&&Seeded> = runs.iter().collect();
    sorted.sort_by(|a, b| {
        class(a.m).cmp(&class(b.m)).then_with(|| {
            let by_value = match (a.m, b.m) {
                (Some(x), Some(y)) if !x.is_nan() && !y.is_nan() => {
                    x.partial_cmp(&y).unwrap_or(Ordering::Equal)
                }
                _ => Ordering::Equal,
            };
            let by_value = if ascending {
                by_value
            } else {
                by_value.reverse()
            };
            by_value
                .then_with(|| b.start.cmp(&a.start))
                .then_with(|| a.id.cmp(&b.id))
        })
    });
    sorted.into_iter().map(|r| r.id.clone()).collect()
}

async fn seed(s: &dyn TrackingStore, exp: &str, runs: usize, salt: usize) -> Vec<Seeded> {
    let mut seeded = Vec::new();
    for i in 0..runs {
        let start = 1_000 + (i % 40) as i64;
        let id = s
            .create_run(NewRun {
                experiment_id: exp.into(),
                user_id: "u".into(),
                run_name: Some(format!("r{i}")),
                start_time: Some(start),
                tags: vec![],
            })
            .await
            .unwrap()
            .info
            .run_id;
        let m = match (i + salt) % 13 {
            0 => None,
            1 => Some(f64::NAN),
            2 => Some(f64::INFINITY),
            3 => Some(f64::NEG_INFINITY),
            // Few distinct values, so ties fall through to start time and id.
            _ => Some(((i * 37 + salt) % 9) as f64 / 4.0 - 1.0),
        };
        let mut metrics = vec![Metric::new("other", i as f64, 1, 0)];
        if let Some(value) = m {
            // An earlier point that the last one replaces.
            metrics.push(Metric::new("m", 100.0, 1, 0));
            metrics.push(Metric::new("m", value, 2, 1));
        }
        s.log_batch(&id, &metrics, &[], &[]).await.unwrap();
        seeded.push(Seeded { id, start, m });
    }
    seeded
}

/// Every page of `order` over `exp`, `page` runs at a time, concatenated.
async fn all_pages(
    s: &dyn TrackingStore,
    exp: &str,
    filter: &str,
    order: &str,
    page: i64,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut token = None;
    loop {
        let reply = s
            .search_runs(&RunQuery {
                experiment_ids: vec![exp.to_string()],
                filter: Some(filter.to_string()),
                order_by: vec![order.to_string()],
                view_type: ViewType::ActiveOnly,
                max_results: page,
                page_token: token,
            })
            .await
            .unwrap();
        ids.extend(reply.items.into_iter().map(|r| r.info.run_id));
        token = reply.next_page_token;
        if token.is_none() {
            return ids;
        }
    }
}

on_every_backend!(
    metric_ordered_pages_equal_the_full_order,
    |s: &dyn TrackingStore| {
        let searched = s.create_experiment("ordered", None, &[]).await.unwrap();
        let other = s.create_experiment("elsewhere", None, &[]).await.unwrap();
        let runs = seed(s, &searched, 160, 0).await;
        // The same metric in another experiment: in the index, never in the answer.
        seed(s, &other, 60, 5).await;
        let all: Vec<&Seeded> = runs.iter().collect();

        for (order, ascending) in [("metrics.m DESC", false), ("metrics.m ASC", true)] {
            let want = expected_order(&all, ascending);
            for page in [7, 50, 1000] {
                assert_eq!(
                    all_pages(s, &searched, "", order, page).await,
                    want,
                    "{order}, {page} a page"
                );
            }
        }

        // A filter on the ordered metric leaves out NaN and missing values, as MLflow's does.
        let kept: Vec<&Seeded> = runs
            .iter()
            .filter(|r| r.m.is_some_and(|v| v > 0.0))
            .collect();
        let want = expected_order(&kept, false);
        for page in [5, 1000] {
            assert_eq!(
                all_pages(s, &searched, "metrics.m > 0", "metrics.m DESC", page).await,
                want,
                "filtered, {page} a page"
            );
        }
    }
);

on_every_backend!(
    a_run_order_is_every_page_of_the_search,
    |s: &dyn TrackingStore| {
        let searched = s.create_experiment("snapshot", None, &[]).await.unwrap();
        let other = s.create_experiment("beside", None, &[]).await.unwrap();
        seed(s, &searched, 90, 3).await;
        seed(s, &other, 20, 1).await;
        for (filter, order) in [
            ("", "metrics.m ASC"),
            ("", "metrics.m DESC"),
            ("", "metrics.`m`.min ASC"),
            ("", "attributes.run_name DESC"),
            ("metrics.m > 0", "metrics.m DESC"),
            ("metrics.other < 50", ""),
        ] {
            let q = RunQuery {
                experiment_ids: vec![searched.clone()],
                filter: Some(filter.to_string()),
                order_by: (!order.is_empty())
                    .then(|| order.to_string())
                    .into_iter()
                    .collect(),
                view_type: ViewType::ActiveOnly,
                max_results: 3,
                page_token: None,
            };
            let ids = s.run_order(&q, 1000).await.unwrap().unwrap();
            let pages = if order.is_empty() {
                let mut ids = Vec::new();
                let mut token = None;
                loop {
                    let reply = s
                        .search_runs(&RunQuery {
                            page_token: token,
                            max_results: 7,
                            ..q.clone()
                        })
                        .await
                        .unwrap();
                    ids.extend(reply.items.into_iter().map(|r| r.info.run_id));
                    token = reply.next_page_token;
                    if token.is_none() {
                        break ids;
                    }
                }
            } else {
                all_pages(s, &searched, filter, order, 7).await
            };
            assert_eq!(ids, pages, "{filter:?} {order:?}");
            // A view larger than the bound gets no order at all, not a cut one.
            assert_eq!(
                s.run_order(&q, ids.len() - 1).await.unwrap(),
                None,
                "{filter:?} {order:?}"
            );
            assert_eq!(s.run_order(&q, ids.len()).await.unwrap(), Some(ids));
        }
    }
);

on_every_backend!(
    a_views_nested_runs_are_its_runs_with_a_parent_tag,
    |s: &dyn TrackingStore| {
        let searched = s.create_experiment("nested", None, &[]).await.unwrap();
        let other = s
            .create_experiment("nested-beside", None, &[])
            .await
            .unwrap();
        let run = |exp: &str, name: &str, parent: Option<&str>| {
            let tags: Vec<Tag> = parent
                .map(|p| Tag::new("mlflow.parentRunId", p))
                .into_iter()
                .collect();
            let new = NewRun {
                experiment_id: exp.into(),
                user_id: "u".into(),
                run_name: Some(name.into()),
                start_time: Some(1_000),
                tags,
            };
            async move { s.create_run(new).await.unwrap().info.run_id }
        };
        let query = |filter: &str| RunQuery {
            experiment_ids: vec![searched.clone()],
            filter: (!filter.is_empty()).then(|| filter.to_string()),
            order_by: vec![],
            view_type: ViewType::ActiveOnly,
            max_results: 10,
            page_token: None,
        };
        run(&searched, "lone", None).await;
        assert_eq!(s.run_parents(&query(""), 10).await.unwrap(), Some(vec![]));
        let parent = run(&searched, "parent", None).await;
        let a = run(&searched, "a", Some(&parent)).await;
        let b = run(&searched, "b", Some(&parent)).await;
        // An empty parent tag names no parent.
        run(&searched, "empty", Some("")).await;
        run(&other, "elsewhere", Some(&parent)).await;
        let mut found = s.run_parents(&query(""), 10).await.unwrap().unwrap();
        found.sort();
        let mut want = vec![(a.clone(), parent.clone()), (b.clone(), parent.clone())];
        want.sort();
        assert_eq!(found, want);
        // The view's filter applies; more than the bound is none at all.
        assert_eq!(
            s.run_parents(&query("attributes.run_name = 'a'"), 10)
                .await
                .unwrap(),
            Some(vec![(a.clone(), parent.clone())])
        );
        assert_eq!(s.run_parents(&query(""), 1).await.unwrap(), None);
    }
);
