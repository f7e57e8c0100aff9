//! Tensor datatypes, named as the Open Inference Protocol names them (the names also appear in
//! model metadata, validation messages and the prediction log).

/// A datatype name that is none of [`Datatype`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown datatype {name:?}: expected one of {}", expected())]
pub struct UnknownDatatype {
    pub name: String,
}

fn expected() -> String {
    ALL.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
    Bytes,
}

const ALL: [(Datatype, &str); 13] = [
    (Datatype::Bool, "BOOL"),
    (Datatype::Uint8, "UINT8"),
    (Datatype::Uint16, "UINT16"),
    (Datatype::Uint32, "UINT32"),
    (Datatype::Uint64, "UINT64"),
    (Datatype::Int8, "INT8"),
    (Datatype::Int16, "INT16"),
    (Datatype::Int32, "INT32"),
    (Datatype::Int64, "INT64"),
    (Datatype::Fp16, "FP16"),
    (Datatype::Fp32, "FP32"),
    (Datatype::Fp64, "FP64"),
    (Datatype::Bytes, "BYTES"),
];

impl Datatype {
    pub fn parse(text: &str) -> Result<Datatype, UnknownDatatype> {
        ALL.iter()
            .find(|(_, name)| *name == text)
            .map(|(d, _)| *d)
            .ok_or_else(|| UnknownDatatype {
                name: text.to_string(),
            })
    }

    pub fn name(self) -> &'static str {
        ALL.iter()
            .find(|(d, _)| *d == self)
            .map(|(_, n)| *n)
            .expect("every datatype is listed")
    }

    /// Bytes per element, little-endian and unpadded; `None` for BYTES (length-prefixed).
    pub fn size(self) -> Option<usize> {
        Some(match self {
            Datatype::Bool | Datatype::Uint8 | Datatype::Int8 => 1,
            Datatype::Uint16 | Datatype::Int16 | Datatype::Fp16 => 2,
            Datatype::Uint32 | Datatype::Int32 | Datatype::Fp32 => 4,
            Datatype::Uint64 | Datatype::Int64 | Datatype::Fp64 => 8,
            Datatype::Bytes => return None,
        })
    }
}

impl std::fmt::Display for Datatype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (d, name) in ALL {
            assert_eq!(Datatype::parse(name).unwrap(), d);
            assert_eq!(d.name(), name);
        }
        assert!(
            Datatype::parse("FLOAT")
                .unwrap_err()
                .to_string()
                .contains("expected one of BOOL")
        );
    }
}
