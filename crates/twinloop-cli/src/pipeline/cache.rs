//! `twinloop pipeline cache ls | rm KEY | gc`: thin verbs over `twinloop_pipelines::cache::gc`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use twinloop_pipelines::cache::gc::{self, Removed};

use super::fail;
use crate::output::outln;

#[derive(Subcommand)]
pub(super) enum CacheCommand {
    /// List the cache entries: key, step, pipeline, run, age, size.
    Ls {
        /// Print the entries as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Remove the entry with this key and the blobs nothing else references.
    Rm { key: String },
    /// Remove entries older than an age (none without --older-than) and every blob no
    /// remaining entry references.
    Gc {
        /// 30d, 12h, 90m…
        #[arg(long, value_name = "AGE", value_parser = twinloop_pipelines::duration::parse_duration)]
        older_than: Option<Duration>,
    },
}

pub(super) fn run(command: CacheCommand, home: &Path) -> ExitCode {
    let now = twinloop_core::time::now_ms();
    match command {
        CacheCommand::Ls { json } => match gc::entries(home, now) {
            Ok(entries) if json => match serde_json::to_string_pretty(&entries) {
                Ok(text) => {
                    outln!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: cannot encode the entries: {e}");
                    ExitCode::FAILURE
                }
            },
            Ok(entries) => {
                outln!("KEY\tSTEP\tPIPELINE\tRUN\tAGE\tSIZE");
                for e in entries {
                    outln!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        e.key,
                        e.step,
                        e.pipeline,
                        e.run_id,
                        age(e.age_ms),
                        size(e.size_bytes)
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        CacheCommand::Rm { key } => done(
            &format!("removed cache entry {key}: "),
            gc::remove(home, &key),
        ),
        CacheCommand::Gc { older_than } => done("removed ", gc::gc(home, older_than, now)),
    }
}

fn done(prefix: &str, removed: Result<Removed, twinloop_pipelines::Error>) -> ExitCode {
    match removed {
        Ok(r) => {
            outln!(
                "{prefix}{} executions, {} blobs ({})",
                r.executions,
                r.blobs,
                size(r.bytes)
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// The largest whole unit: `45s`, `12m`, `5h`, `3d`.
fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m", s / 60),
        3_600..86_400 => format!("{}h", s / 3_600),
        _ => format!("{}d", s / 86_400),
    }
}

fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_sizes_read_in_their_largest_unit() {
        assert_eq!(
            [0, 59_999, 60_000, 7_200_000, 3 * 86_400_000].map(age),
            ["0s", "59s", "1m", "2h", "3d"]
        );
        assert_eq!(
            [12, 2048, 5 * 1024 * 1024].map(size),
            ["12 B", "2.0 KiB", "5.0 MiB"]
        );
    }
}
