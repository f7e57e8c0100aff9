//! Ending a step's process tree: SIGTERM to its process group, SIGKILL after the grace period.

use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};
use tokio::process::Child;

const POLL: Duration = Duration::from_millis(50);

pub(crate) async fn kill_tree(child: &mut Child, grace: Duration) {
    let Some(pid) = child.id() else {
        return;
    };
    signal_group(pid, Signal::TERM);
    let deadline = Instant::now() + grace;
    let mut leader_gone = false;
    while Instant::now() < deadline {
        if !leader_gone {
            leader_gone = matches!(child.try_wait(), Ok(Some(_)));
        }
        if leader_gone && !group_alive(pid) {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    signal_group(pid, Signal::KILL);
    super::attempt::reap(child).await;
}

/// Sends `signal` to process group `pgid`; true when some process received it.
pub(crate) fn signal_group(pgid: u32, signal: Signal) -> bool {
    group(pgid).is_some_and(|pid| kill_process_group(pid, signal).is_ok())
}

/// Whether process group `pgid` still has a member (a zombie leader counts until reaped).
fn group_alive(pgid: u32) -> bool {
    group(pgid).is_some_and(|pid| test_kill_process_group(pid).is_ok())
}

/// `None` for 0 and for ids beyond `i32`: `kill(0, …)` and negative ids would reach other
/// groups than the step's.
fn group(pgid: u32) -> Option<Pid> {
    i32::try_from(pgid).ok().and_then(Pid::from_raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::launch::tests::live_in_group;

    #[test]
    fn only_a_real_group_id_is_signalled() {
        assert!(group(0).is_none(), "0 would be our own group");
        assert!(group(u32::MAX).is_none(), "would wrap to -1: every process");
        assert_eq!(group(42).map(|p| p.as_raw_nonzero().get()), Some(42));
        assert!(!signal_group(0, Signal::TERM));
    }

    #[tokio::test]
    async fn a_group_that_ignores_sigterm_is_killed_after_the_grace() {
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "trap '' TERM; sleep 300 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id().unwrap();
        // The trap is set before `sleep` starts, so once two processes are in the group both
        // ignore SIGTERM.
        while live_in_group(pgid).len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        kill_tree(&mut child, Duration::from_millis(200)).await;
        // SIGKILL is delivered asynchronously: a killed process can still show as running in
        // /proc for a moment, longest on a loaded machine (CI saw it once).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !live_in_group(pgid).is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(live_in_group(pgid), Vec::<u32>::new());
    }
}
