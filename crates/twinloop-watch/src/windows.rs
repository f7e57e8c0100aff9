//! Which logged rows form a monitor's next windows, and when a window may close.

use crate::log::Logged;
use crate::spec::Window;

/// A window ready to be evaluated: rows with `start_us < time <= end_us`.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub start_us: i64,
    pub end_us: i64,
    pub rows: Vec<Logged>,
}

/// When windows may close: segments reach the store up to `flush_lag_us` after their rows, and
/// a window waits `label_delay_us` more for its labels.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub now_us: i64,
    pub flush_lag_us: i64,
    pub label_delay_us: i64,
}

/// The windows after `cursor_us` that are ready, oldest first, given `rows` (time ordered, all
/// after the cursor). A window of N rows closes once its N-th row is older than the label delay
/// (the rows are in the store, so the flush lag is behind them); a window of S seconds closes
/// once its end is older than the flush lag and the label delay, empty or not.
pub fn due(window: Window, cursor_us: i64, rows: &[Logged], t: Timing) -> Vec<Due> {
    let mut out = Vec::new();
    let mut start = cursor_us;
    match window {
        Window::Rows(n) => {
            for chunk in rows.chunks(n) {
                if chunk.len() < n {
                    break;
                }
                let end = chunk[n - 1].time_us;
                if end + t.label_delay_us > t.now_us {
                    break;
                }
                out.push(Due {
                    start_us: start,
                    end_us: end,
                    rows: chunk.to_vec(),
                });
                start = end;
            }
        }
        Window::Seconds(s) => {
            let width = (s * 1e6) as i64;
            while start + width + t.flush_lag_us + t.label_delay_us <= t.now_us {
                let end = start + width;
                let inside = rows
                    .iter()
                    .filter(|r| r.time_us > start && r.time_us <= end)
                    .cloned()
                    .collect();
                out.push(Due {
                    start_us: start,
                    end_us: end,
                    rows: inside,
                });
                start = end;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(times: &[i64]) -> Vec<Logged> {
        times
            .iter()
            .map(|&t| Logged {
                time_us: t,
                request_id: format!("r{t}"),
                model_version: "1".into(),
                latency_us: 1,
                inputs: serde_json::Map::new(),
                outputs: serde_json::Map::new(),
            })
            .collect()
    }

    fn at(now_us: i64) -> Timing {
        Timing {
            now_us,
            flush_lag_us: 0,
            label_delay_us: 0,
        }
    }

    fn bounds(due: &[Due]) -> Vec<(i64, i64, usize)> {
        due.iter()
            .map(|d| (d.start_us, d.end_us, d.rows.len()))
            .collect()
    }

    #[test]
    fn row_windows_close_on_their_last_row_and_leave_a_partial_one_open() {
        let logged = rows(&[11, 12, 13, 14, 15]);
        assert_eq!(
            bounds(&due(Window::Rows(2), 10, &logged, at(100))),
            [(10, 12, 2), (12, 14, 2)]
        );
    }

    #[test]
    fn row_windows_wait_for_their_labels() {
        let logged = rows(&[11, 12, 13, 14]);
        let t = Timing {
            label_delay_us: 90,
            ..at(103)
        };
        assert_eq!(bounds(&due(Window::Rows(2), 10, &logged, t)), [(10, 12, 2)]);
    }

    #[test]
    fn time_windows_close_after_the_flush_lag_and_may_be_empty() {
        let logged = rows(&[1_000_001, 1_500_000, 3_000_000]);
        let t = Timing {
            flush_lag_us: 500_000,
            ..at(3_600_000)
        };
        assert_eq!(
            bounds(&due(Window::Seconds(1.0), 0, &logged, t)),
            [
                (0, 1_000_000, 0),
                (1_000_000, 2_000_000, 2),
                (2_000_000, 3_000_000, 1)
            ]
        );
        assert!(due(Window::Seconds(1.0), 0, &logged, at(999_999)).is_empty());
    }
}
