//! Steps die with the engine that started them (design §5: a `kill -9` of twinloop leaves no
//! orphans). A step's shell is started by `twinloop step-exec`, which leads the step's process
//! group (the engine spawns it with `process_group(0)`, so timeouts and cancels still reach the
//! whole tree) and watches the engine: it asks the kernel for a signal when its parent dies
//! (`PR_SET_PDEATHSIG`, set on itself after exec, so no `pre_exec` and no `unsafe`), and when the
//! engine is gone it ends the group: SIGTERM, then SIGKILL.
//!
//! The kernel sends that signal when the *thread* that forked us ends, not only the process: a
//! runtime thread of the engine going away would look like its death. So the signal is a hint
//! and `getppid()` the proof: only a parent other than the engine (we were reparented) ends the
//! step.
//!
//! Only a binary that has the `step-exec` subcommand can launch steps this way, and it says so
//! with [`set_launcher`]. Without one (this crate's tests, other embedders) a step starts as
//! `sh -c` directly, as before, and can outlive a killed engine.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::OnceLock;
use std::time::Duration;

use rustix::process::{Signal, getpgrp, getpid, getppid, setpgid};
use tokio::process::{Child, Command};
use tokio::signal::unix::{self, SignalKind};

use super::kill::signal_group;

/// The launcher's subcommand.
pub const SUBCOMMAND: &str = "step-exec";

static LAUNCHER: OnceLock<PathBuf> = OnceLock::new();

/// Makes `program` (a binary with the [`SUBCOMMAND`], usually the running one) the launcher of
/// every step this process runs. The first call wins: it is a property of the binary.
pub fn set_launcher(program: PathBuf) {
    if LAUNCHER.set(program).is_err() {
        tracing::debug!("the step launcher was already set");
    }
}

fn launcher() -> Option<&'static Path> {
    LAUNCHER.get().map(PathBuf::as_path)
}

/// The launcher as another process names it, for remote attempts on a shared host: its real
/// path (a link such as `/proc/self/exe` would name the remote side's own program).
pub(crate) fn shared_launcher() -> Option<PathBuf> {
    launcher().map(|path| std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()))
}

/// What `twinloop step-exec` runs, and for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepExec {
    /// The engine's process id: once our parent is another process, the engine is gone. `None`
    /// where there is no engine to watch (a container's PID 1, which a Job's kubelet stops):
    /// signals are still forwarded to the step's group and its exit code kept.
    pub parent: Option<u32>,
    /// Between SIGTERM and SIGKILL when the engine is gone.
    pub grace: Duration,
    /// The program and its arguments.
    pub command: Vec<OsString>,
}

impl StepExec {
    /// The arguments after [`SUBCOMMAND`]: `[--parent PID] --grace-ms MS -- PROGRAM ARGS...`.
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if let Some(parent) = self.parent {
            args.extend(["--parent".into(), parent.to_string().into()]);
        }
        args.extend([
            "--grace-ms".into(),
            self.grace.as_millis().to_string().into(),
            "--".into(),
        ]);
        args.extend(self.command.iter().cloned());
        args
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The engine died before the death signal was armed: nobody would ever be told.
    #[error("the engine (pid {0}) is gone; the step was not started")]
    ParentGone(u32),
    #[error("no command to run")]
    NoCommand,
    #[error("cannot {doing}: {source}")]
    Io {
        doing: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn io(doing: &'static str) -> impl FnOnce(std::io::Error) -> LaunchError {
    move |source| LaunchError::Io { doing, source }
}

/// The engine's command for `sh -c script`: through the launcher when this binary has one.
pub(crate) fn shell(script: &str, grace: Duration) -> Command {
    shell_with(launcher(), std::process::id(), script, grace)
}

fn shell_with(launcher: Option<&Path>, parent: u32, script: &str, grace: Duration) -> Command {
    let sh: [OsString; 3] = ["sh".into(), "-c".into(), script.into()];
    match launcher {
        Some(program) => {
            let exec = StepExec {
                parent: Some(parent),
                grace,
                command: sh.into(),
            };
            let mut command = Command::new(program);
            command.arg(SUBCOMMAND).args(exec.args());
            command
        }
        None => {
            let [program, args @ ..] = sh;
            let mut command = Command::new(program);
            command.args(args);
            command
        }
    }
}

/// `twinloop step-exec`: runs `exec.command` in this process's group until it exits, and ends
/// the whole group if the engine dies first. Returns the code to exit with: the command's own,
/// or 128 + the signal that ended it, as a shell reports it.
pub async fn step_exec(exec: StepExec) -> Result<i32, LaunchError> {
    let (program, args) = exec.command.split_first().ok_or(LaunchError::NoCommand)?;
    if getpgrp() != getpid() {
        // Started by hand rather than by the engine: ending "our" group must not reach the
        // caller's shell.
        setpgid(None, None).map_err(|e| io("lead a process group")(e.into()))?;
    }
    let mut wakes = OsWakes::arm(exec.parent)?;
    let mut child = Command::new(program)
        .args(args)
        .spawn()
        .map_err(io("start the step's command"))?;
    let status = supervise(&mut child, std::process::id(), exec.grace, &mut wakes)
        .await
        .map_err(io("wait for the step's command"))?;
    Ok(exit_code(status))
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1)
}

/// Why the launcher woke up while its command runs.
#[derive(Debug, PartialEq, Eq)]
enum Wake {
    /// Someone signalled the launcher: the step's group gets the signal too.
    Forward(Signal),
    ParentGone,
}

trait Wakes {
    async fn next(&mut self) -> Wake;
}

async fn supervise(
    child: &mut Child,
    group: u32,
    grace: Duration,
    wakes: &mut impl Wakes,
) -> std::io::Result<ExitStatus> {
    loop {
        tokio::select! {
            status = child.wait() => return status,
            wake = wakes.next() => match wake {
                Wake::Forward(signal) => {
                    signal_group(group, signal);
                }
                Wake::ParentGone => return end_group(child, group, grace).await,
            },
        }
    }
}

/// The engine is gone: SIGTERM to the group, SIGKILL once the command has exited or the grace
/// has passed (what its children still do then has nobody to report to). When the group is
/// ours, the SIGKILL ends the launcher too.
async fn end_group(child: &mut Child, group: u32, grace: Duration) -> std::io::Result<ExitStatus> {
    signal_group(group, Signal::TERM);
    let ended = tokio::time::timeout(grace, child.wait()).await;
    signal_group(group, Signal::KILL);
    match ended {
        Ok(status) => status,
        Err(_) => child.wait().await,
    }
}

/// The launcher's signals: the parent-death signal, and SIGTERM / SIGINT sent to it alone.
struct OsWakes {
    parent: Option<u32>,
    death: unix::Signal,
    term: unix::Signal,
    int: unix::Signal,
    term_forwarded: bool,
    int_forwarded: bool,
}

impl OsWakes {
    /// Listens first, so that no signal ends us by its default action; then asks for the death
    /// signal; then checks the parent, as prctl(2) advises: an engine that died before the
    /// request will never have it sent.
    fn arm(parent: Option<u32>) -> Result<OsWakes, LaunchError> {
        let listen = |kind| unix::signal(kind).map_err(io("listen for signals"));
        let wakes = OsWakes {
            parent,
            death: listen(SignalKind::hangup())?,
            term: listen(SignalKind::terminate())?,
            int: listen(SignalKind::interrupt())?,
            term_forwarded: false,
            int_forwarded: false,
        };
        let Some(parent) = parent else {
            return Ok(wakes);
        };
        // PR_SET_PDEATHSIG is Linux's; elsewhere a killed engine still leaves its steps running.
        #[cfg(target_os = "linux")]
        rustix::process::set_parent_process_death_signal(Some(Signal::HUP))
            .map_err(|e| io("ask for the parent-death signal")(e.into()))?;
        if !parent_alive(parent) {
            return Err(LaunchError::ParentGone(parent));
        }
        Ok(wakes)
    }
}

impl Wakes for OsWakes {
    async fn next(&mut self) -> Wake {
        loop {
            // Each signal is forwarded once: sent to the group, it comes back to us, its member.
            tokio::select! {
                Some(()) = self.death.recv() => {
                    if self.parent.is_some_and(|p| !parent_alive(p)) {
                        return Wake::ParentGone;
                    }
                }
                Some(()) = self.term.recv(), if !self.term_forwarded => {
                    self.term_forwarded = true;
                    return Wake::Forward(Signal::TERM);
                }
                Some(()) = self.int.recv(), if !self.int_forwarded => {
                    self.int_forwarded = true;
                    return Wake::Forward(Signal::INT);
                }
                else => std::future::pending::<()>().await,
            }
        }
    }
}

fn parent_alive(parent: u32) -> bool {
    getppid().is_some_and(|pid| u32::try_from(pid.as_raw_nonzero().get()) == Ok(parent))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::time::Instant;

    use tokio::sync::mpsc;

    use super::*;

    /// Processes (not zombies) in process group `pgid`, from /proc.
    pub(crate) fn live_in_group(pgid: u32) -> Vec<u32> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // After the `(comm)` field: state, ppid, pgrp.
            let Some((_, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
                out.push(pid);
            }
        }
        out
    }

    impl Wakes for mpsc::UnboundedReceiver<Wake> {
        async fn next(&mut self) -> Wake {
            match self.recv().await {
                Some(wake) => wake,
                None => std::future::pending().await,
            }
        }
    }

    /// A shell in a process group of its own that starts a grandchild and writes its pid.
    async fn tree(dir: &Path, script: &str) -> (Child, u32) {
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("{script}; sleep 300 & echo $! > pid; wait"))
            .current_dir(dir)
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(dir.join("pid")).map_or(true, |p| !p.ends_with('\n')) {
            assert!(Instant::now() < deadline, "the grandchild never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (child, pgid)
    }

    async fn until_empty(pgid: u32) -> Vec<u32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let live = live_in_group(pgid);
            if live.is_empty() || Instant::now() > deadline {
                return live;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn program_and_args(command: &Command) -> Vec<String> {
        let command = command.as_std();
        std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_step_starts_through_the_launcher_when_there_is_one() {
        let direct = shell_with(None, 7, "echo hi", Duration::from_secs(2));
        assert_eq!(program_and_args(&direct), ["sh", "-c", "echo hi"]);
        let launched = shell_with(
            Some(Path::new("/bin/twinloop")),
            7,
            "echo hi",
            Duration::from_millis(1500),
        );
        assert_eq!(
            program_and_args(&launched),
            [
                "/bin/twinloop",
                "step-exec",
                "--parent",
                "7",
                "--grace-ms",
                "1500",
                "--",
                "sh",
                "-c",
                "echo hi"
            ]
        );
    }

    #[test]
    fn codes_are_kept_and_a_signal_becomes_128_plus_its_number() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
    }

    #[tokio::test]
    async fn a_command_that_exits_ends_the_supervision_with_its_status() {
        let (_wake, mut wakes) = mpsc::unbounded_channel();
        let mut child = Command::new("sh")
            .args(["-c", "exit 3"])
            .process_group(0)
            .spawn()
            .unwrap();
        let group = child.id().unwrap();
        let status = supervise(&mut child, group, Duration::from_secs(1), &mut wakes)
            .await
            .unwrap();
        assert_eq!(exit_code(status), 3);
    }

    #[tokio::test]
    async fn when_the_engine_is_gone_the_whole_group_ends_even_one_ignoring_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, pgid) = tree(dir.path(), "trap '' TERM").await;
        assert_eq!(live_in_group(pgid).len(), 2, "the shell and its grandchild");
        let (wake, mut wakes) = mpsc::unbounded_channel();
        wake.send(Wake::ParentGone).unwrap();
        let status = supervise(&mut child, pgid, Duration::from_millis(200), &mut wakes)
            .await
            .unwrap();
        assert_eq!(exit_code(status), 137, "SIGKILL after the grace");
        assert_eq!(until_empty(pgid).await, Vec::<u32>::new());
    }

    #[tokio::test]
    async fn a_signal_sent_to_the_launcher_reaches_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, pgid) = tree(dir.path(), "true").await;
        let (wake, mut wakes) = mpsc::unbounded_channel();
        wake.send(Wake::Forward(Signal::TERM)).unwrap();
        let status = supervise(&mut child, pgid, Duration::from_secs(30), &mut wakes)
            .await
            .unwrap();
        assert_eq!(exit_code(status), 143);
        assert_eq!(until_empty(pgid).await, Vec::<u32>::new());
    }

    #[tokio::test]
    async fn the_death_signal_counts_only_once_the_parent_changed() {
        let not_our_parent = std::process::id();
        assert!(matches!(
            OsWakes::arm(Some(not_our_parent)),
            Err(LaunchError::ParentGone(pid)) if pid == not_our_parent
        ));
        let parent = getppid().map(|p| p.as_raw_nonzero().get()).unwrap();
        let mut wakes = OsWakes::arm(Some(u32::try_from(parent).unwrap())).unwrap();
        let to_self = |signal| rustix::process::kill_process(getpid(), signal).unwrap();
        let quiet = Duration::from_millis(200);
        // What a thread of the engine ending looks like: the signal, the same parent.
        to_self(Signal::HUP);
        assert!(tokio::time::timeout(quiet, wakes.next()).await.is_err());
        to_self(Signal::TERM);
        assert_eq!(wakes.next().await, Wake::Forward(Signal::TERM));
        // Our own SIGTERM coming back from the group is not forwarded again.
        to_self(Signal::TERM);
        assert!(tokio::time::timeout(quiet, wakes.next()).await.is_err());
    }

    #[tokio::test]
    async fn with_no_engine_to_watch_nothing_is_armed_and_no_parent_is_passed() {
        assert!(
            OsWakes::arm(None).is_ok(),
            "a container's PID 1 has no parent to check"
        );
        let exec = StepExec {
            parent: None,
            grace: Duration::from_millis(10),
            command: vec!["true".into()],
        };
        let args: Vec<String> = exec
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["--grace-ms", "10", "--", "true"]);
    }
}
