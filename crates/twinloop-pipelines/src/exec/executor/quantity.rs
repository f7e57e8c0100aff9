//! Kubernetes resource quantities for `resources:`: checked when the spec is built, so a typo
//! is a clear error here rather than a 422 from the API server, and converted for Ray, which
//! takes CPUs as a number and memory in bytes.

use std::fmt;
use std::str::FromStr;

/// A CPU request: `1`, `0.5` or `500m`; Kubernetes' precision is one millicore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    text: String,
    millis: u64,
}

/// A memory request: `2Gi`, `512Mi`, `1G`, or plain bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    text: String,
    bytes: u64,
}

impl Cpu {
    /// As written, which is what the manifest says.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn millis(&self) -> u64 {
        self.millis
    }

    /// As Ray's `entrypoint_num_cpus` takes it.
    #[expect(clippy::cast_precision_loss, reason = "millicores stay far below 2^52")]
    pub fn cores(&self) -> f64 {
        self.millis as f64 / 1000.0
    }
}

impl Memory {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A decimal number as an integer mantissa and a count of fraction digits: `1.25` → (125, 2).
fn decimal(number: &str) -> Option<(u128, u32)> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 9 {
        return None;
    }
    let mantissa = format!("{whole}{fraction}").parse().ok()?;
    Some((mantissa, u32::try_from(fraction.len()).ok()?))
}

fn split_suffix(text: &str) -> (&str, &str) {
    let at = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    text.split_at(at)
}

impl FromStr for Cpu {
    type Err = String;

    fn from_str(text: &str) -> Result<Cpu, String> {
        let bad = || format!("cpu {text:?} is not a quantity: write 1, 0.5 or 500m");
        let (number, suffix) = split_suffix(text.trim());
        let (mantissa, scale) = decimal(number).ok_or_else(bad)?;
        let per_unit: u128 = match suffix {
            "" => 1000,
            "m" => 1,
            _ => return Err(bad()),
        };
        let scaled = mantissa * per_unit;
        let divisor = 10u128.pow(scale);
        if !scaled.is_multiple_of(divisor) {
            return Err(format!("cpu {text:?} is finer than one millicore (1m)"));
        }
        let millis = u64::try_from(scaled / divisor).map_err(|_| bad())?;
        if millis == 0 {
            return Err(format!("cpu {text:?} must be more than zero"));
        }
        Ok(Cpu {
            text: text.trim().to_owned(),
            millis,
        })
    }
}

impl FromStr for Memory {
    type Err = String;

    fn from_str(text: &str) -> Result<Memory, String> {
        let bad = || format!("memory {text:?} is not a quantity: write 512Mi, 2Gi or 1G");
        let (number, suffix) = split_suffix(text.trim());
        let (mantissa, scale) = decimal(number).ok_or_else(bad)?;
        let multiplier: u128 = match suffix {
            "" => 1,
            "k" => 1000,
            "M" => 1000u128.pow(2),
            "G" => 1000u128.pow(3),
            "T" => 1000u128.pow(4),
            "P" => 1000u128.pow(5),
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            "Pi" => 1 << 50,
            _ => return Err(bad()),
        };
        // Rounded up, as the API server rounds a fractional byte count.
        let bytes = (mantissa * multiplier).div_ceil(10u128.pow(scale));
        let bytes = u64::try_from(bytes).map_err(|_| bad())?;
        if bytes == 0 {
            return Err(format!("memory {text:?} must be more than zero"));
        }
        Ok(Memory {
            text: text.trim().to_owned(),
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        let millis = |t: &str| t.parse::<Cpu>().map(|c| c.millis());
        assert_eq!(millis("1"), Ok(1000));
        assert_eq!(millis("0.5"), Ok(500));
        assert_eq!(millis("250m"), Ok(250));
        assert_eq!(millis("1.5"), Ok(1500));
        assert!((("2".parse::<Cpu>().unwrap()).cores() - 2.0).abs() < f64::EPSILON);
        for bad in ["", "m", "1.0005", "0", "0m", "1Gi", "-1", "1.2.3", "one"] {
            assert!(bad.parse::<Cpu>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn memory_quantities() {
        let bytes = |t: &str| t.parse::<Memory>().map(|m| m.bytes());
        assert_eq!(bytes("2Gi"), Ok(2 << 30));
        assert_eq!(bytes("512Mi"), Ok(512 << 20));
        assert_eq!(bytes("1G"), Ok(1_000_000_000));
        assert_eq!(bytes("1.5Ki"), Ok(1536));
        assert_eq!(bytes("1000"), Ok(1000));
        for bad in ["", "Gi", "2gb", "0", "2 Gi", "1e3"] {
            assert!(bad.parse::<Memory>().is_err(), "{bad:?} was accepted");
        }
    }
}
