//! Ending a step's process tree: SIGTERM to its process group, SIGKILL after the grace period.
//! Signals go through `kill(1)` with a negative pid (the group), because the workspace denies
//! `unsafe` and so `killpg(2)` behind a wrapper.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

const POLL: Duration = Duration::from_millis(50);

pub(crate) async fn kill_tree(child: &mut Child, grace: Duration) {
    let Some(pid) = child.id() else {
        return;
    };
    signal_group(pid, "TERM").await;
    let deadline = Instant::now() + grace;
    let mut leader_gone = false;
    while Instant::now() < deadline {
        if !leader_gone {
            leader_gone = matches!(child.try_wait(), Ok(Some(_)));
        }
        if leader_gone && !signal_group(pid, "0").await {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    signal_group(pid, "KILL").await;
    super::attempt::reap(child).await;
}

/// Sends `signal` to process group `pgid`; true when some process received it.
async fn signal_group(pgid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}
