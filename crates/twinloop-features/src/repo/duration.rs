//! Feature-view TTLs: `90s`, `30m`, `6h`, `1d`, `2w`, or `0` for no limit.

use twinloop_core::{Error, Result};

const MICROS_PER_SECOND: i64 = 1_000_000;

/// Parses a TTL into microseconds; `None` means no limit (`0`).
pub fn parse_ttl(text: &str) -> Result<Option<i64>> {
    let text = text.trim();
    if text == "0" {
        return Ok(None);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| Error::invalid(format!("TTL {text:?} needs a unit: s, m, h, d or w")))?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| Error::invalid(format!("TTL {text:?} must start with a whole number")))?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        other => {
            return Err(Error::invalid(format!(
                "TTL {text:?} has unknown unit {other:?}: use s, m, h, d or w"
            )));
        }
    };
    let micros = number
        .checked_mul(seconds_per_unit)
        .and_then(|s| s.checked_mul(MICROS_PER_SECOND))
        .ok_or_else(|| Error::invalid(format!("TTL {text:?} is too large")))?;
    Ok((micros > 0).then_some(micros))
}

/// The inverse of [`parse_ttl`], in the largest unit that divides the value.
pub fn format_ttl(micros: Option<i64>) -> String {
    let Some(micros) = micros else {
        return "0".into();
    };
    let seconds = micros / MICROS_PER_SECOND;
    for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds % size == 0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_ttl("90s").unwrap(), Some(90_000_000));
        assert_eq!(parse_ttl("30m").unwrap(), Some(1_800_000_000));
        assert_eq!(parse_ttl("6h").unwrap(), Some(21_600_000_000));
        assert_eq!(parse_ttl("1d").unwrap(), Some(86_400_000_000));
        assert_eq!(parse_ttl("2w").unwrap(), Some(1_209_600_000_000));
        assert_eq!(parse_ttl("0").unwrap(), None);
        assert_eq!(parse_ttl("0s").unwrap(), None);
    }

    #[test]
    fn refuses_bad_ttls() {
        for bad in ["", "1", "1y", "h", "-1d", "1.5h", "99999999999999w"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_back() {
        for text in ["90s", "30m", "6h", "1d", "2w", "0"] {
            assert_eq!(format_ttl(parse_ttl(text).unwrap()), text);
        }
    }
}
