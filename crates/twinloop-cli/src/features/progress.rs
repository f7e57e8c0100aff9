//! Terminal progress bars for `get-historical` and `materialize`, drawn from the feature
//! store's progress events: a bar for stages with a known total, a spinner for the others.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use twinloop_features::progress::{Progress, ProgressEvent, Stage};

/// Progress drawn on stderr, one bar per running stage.
pub fn terminal_progress() -> Progress {
    let bars: Mutex<HashMap<Stage, ProgressBar>> = Mutex::default();
    Progress::new(move |event| {
        // A panic elsewhere while drawing only loses the bars, never the command.
        let Ok(mut bars) = bars.lock() else { return };
        match event {
            ProgressEvent::StageStarted { stage, total } => {
                let bar = stage_bar(&stage, total);
                bars.insert(stage, bar);
            }
            ProgressEvent::Advanced { stage, done } => {
                if let Some(bar) = bars.get(&stage) {
                    bar.set_position(done);
                }
            }
            ProgressEvent::StageFinished { stage } => {
                if let Some(bar) = bars.remove(&stage) {
                    bar.finish_and_clear();
                }
            }
        }
    })
}

fn stage_bar(stage: &Stage, total: Option<u64>) -> ProgressBar {
    match stage {
        Stage::EntityRows => counted(total.unwrap_or(0), "entity rows"),
        Stage::Writing => counted(total.unwrap_or(0), "writing"),
        Stage::SourceRows { view } => spinner(
            "{spinner} {msg} {human_pos} ({per_sec})",
            format!("{view}: source rows"),
        ),
        Stage::Materialize { view } => spinner(
            "{spinner} {msg} {human_pos} source rows ({per_sec})",
            view.clone(),
        ),
    }
}

fn counted(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>24} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

fn spinner(template: &str, message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_stages_get_bars_and_the_others_spinners() {
        let bar = stage_bar(&Stage::Writing, Some(10));
        assert_eq!(bar.length(), Some(10));
        assert_eq!(bar.message(), "writing");
        let spin = stage_bar(&Stage::SourceRows { view: "v".into() }, None);
        assert_eq!(spin.length(), None);
        assert_eq!(spin.message(), "v: source rows");
    }
}
