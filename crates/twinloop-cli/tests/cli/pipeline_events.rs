//! `GET /api/twinloop/v1/pipelines/events` after a disconnect, through the real binary: each
//! event has an id, and a client that reconnects with `Last-Event-ID` (as a browser's
//! `EventSource` does) gets exactly the events it missed; an id the server no longer knows
//! gets an `event: lost` notice first, and a malformed one a 400.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::pipelines::wait_for;
use crate::support::{TestServer, post_ok};

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
struct Sse {
    id: Option<String>,
    event: String,
    data: Value,
}

/// Reads a stream's events until `done` holds for one of them (the deadline fails the test).
async fn read_until(stream: &mut reqwest::Response, done: impl Fn(&Sse) -> bool) -> Vec<Sse> {
    let mut text = String::new();
    let mut events = Vec::new();
    loop {
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let mut sse = Sse {
                id: None,
                event: "message".into(),
                data: Value::Null,
            };
            let mut data = None;
            for line in block.lines() {
                match line.split_once(':') {
                    Some(("id", v)) => sse.id = Some(v.trim().to_owned()),
                    Some(("event", v)) => sse.event = v.trim().to_owned(),
                    Some(("data", v)) => data = Some(v.trim().to_owned()),
                    _ => {}
                }
            }
            // Keep-alive comments carry no data.
            let Some(data) = data else { continue };
            sse.data = serde_json::from_str(&data).unwrap();
            let finished = done(&sse);
            events.push(sse);
            if finished {
                return events;
            }
        }
        let chunk = tokio::time::timeout(Duration::from_secs(60), stream.chunk())
            .await
            .expect("an event within 60 s")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

fn run_finished(run: &str) -> impl Fn(&Sse) -> bool + '_ {
    move |e| e.data["kind"] == "run_finished" && e.data["run_id"] == run
}

fn kinds(events: &[Sse]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            let field = |k: &str| e.data[k].as_str().unwrap_or_default().to_owned();
            (field("kind"), field("step"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_reconnects_with_last_event_id_gets_exactly_what_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_sqlite(dir.path());
    let base = format!("{}/api/twinloop/v1", server.url);
    let events_url = format!("{base}/pipelines/events");
    let http = reqwest::Client::new();
    let connect = |last: Option<String>| {
        let mut request = http.get(&events_url);
        if let Some(id) = last {
            request = request.header("Last-Event-ID", id);
        }
        request.send()
    };
    // A second client stays connected throughout: what the first should have had.
    let mut watcher = connect(None).await.unwrap();
    let mut client = connect(None).await.unwrap();
    post_ok(
        &http,
        &format!("{base}/pipelines"),
        &json!({
            "repo": dir.path().to_str().unwrap(),
            "spec": "pipeline: sse\nsteps:\n  a:\n    run: 'true'\n  b:\n    run: 'true'\n    needs: [a]\n",
        }),
    )
    .await;
    let runs_url = format!("{base}/pipelines/sse/runs");
    let start = || async { post_ok(&http, &runs_url, &json!({})).await };

    let first = start().await;
    let first_id = first["id"].as_str().unwrap();
    let seen = read_until(&mut client, run_finished(first_id)).await;
    assert!(seen.iter().all(|e| e.event == "pipeline" && e.id.is_some()));
    let last_seen = seen.last().unwrap().id.clone().unwrap();
    drop(client);

    // While the client is away, another run happens from start to end.
    let second = start().await;
    let second_id = second["id"].as_str().unwrap().to_owned();
    let run_url = format!("{base}/runs/{second_id}");
    wait_for("the second run to end", Duration::from_secs(60), || {
        let run: Value = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current()
                .block_on(async { http.get(&run_url).send().await?.json().await })
        })
        .ok()?;
        (run["state"] == "SUCCEEDED").then_some(())
    });

    let mut back = connect(Some(last_seen.clone())).await.unwrap();
    assert_eq!(back.status(), 200);
    let missed = read_until(&mut back, run_finished(&second_id)).await;
    let everything = read_until(&mut watcher, run_finished(&second_id)).await;
    let expected: Vec<Sse> = everything
        .into_iter()
        .skip_while(|e| e.id.as_deref() != Some(last_seen.as_str()))
        .skip(1)
        .collect();
    assert_eq!(missed, expected, "exactly the events after {last_seen}");
    assert!(
        missed
            .iter()
            .all(|e| e.data["run_id"] == second_id.as_str())
    );
    assert_eq!(
        kinds(&missed),
        [
            ("run_started", ""),
            ("step_started", "a"),
            ("step_finished", "a"),
            ("step_started", "b"),
            ("step_finished", "b"),
            ("run_finished", ""),
        ]
        .map(|(k, s)| (k.to_owned(), s.to_owned()))
    );

    // `?after=` resumes the same way, from the first run's start.
    let from_start = seen[0].id.clone().unwrap();
    let mut after = http
        .get(format!("{events_url}?after={from_start}"))
        .send()
        .await
        .unwrap();
    let replayed = read_until(&mut after, run_finished(&second_id)).await;
    assert_eq!(replayed[..seen.len() - 1], seen[1..]);
    assert_eq!(replayed[seen.len() - 1..], missed[..]);

    // An id of another server process: told the events are lost, then everything kept.
    let mut foreign = connect(Some("1-3".into())).await.unwrap();
    let told = read_until(&mut foreign, run_finished(&second_id)).await;
    assert_eq!(told[0].event, "lost");
    assert_eq!(told[0].data["after"], "1-3");
    assert_eq!(told[0].data["oldest"], seen[0].id.clone().unwrap().as_str());
    assert_eq!(told[1..seen.len() + 1], seen[..]);

    let bad = connect(Some("yesterday".into())).await.unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("yesterday"),
        "{body}"
    );
}
