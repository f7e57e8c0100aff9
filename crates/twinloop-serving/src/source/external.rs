//! ONNX external data, checked before ONNX Runtime sees the model (CVE-2022-25882,
//! CVE-2024-27318): a tensor may keep its bytes in a file its `external_data` names by a
//! `location`, which ONNX Runtime opens relative to the model. A hostile model names
//! `../../etc/passwd` or an absolute path and has the server read it as weights, and back out
//! through inference. So every location in the graph, in subgraphs and functions too, must be a
//! plain relative path that stays inside the model's directory once links are resolved.
//!
//! A few protobuf fields are walked by hand rather than generating the whole ONNX schema: only
//! the messages that can hold a `TensorProto` matter here.

use std::path::{Component, Path};

/// A location the model must not use, or a model whose bytes are not a protobuf.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub String);

/// Checks every external-data location of the ONNX model `bytes` kept in `dir`.
pub fn check(bytes: &[u8], dir: &Path) -> Result<(), Refused> {
    let mut locations = Vec::new();
    walk(bytes, Message::Model, &mut locations, 0)?;
    let root = dir
        .canonicalize()
        .map_err(|_| Refused("the model's directory cannot be read".into()))?;
    for location in locations {
        let refuse = || {
            Refused(format!(
                "external data location {location:?} is outside the model's directory"
            ))
        };
        let path = Path::new(&location);
        if location.is_empty()
            || location.contains('\\')
            || location.contains('\0')
            || !path
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(refuse());
        }
        // A file that does not exist cannot be read; one that does must stay inside once its
        // links are followed.
        if let Ok(resolved) = root.join(path).canonicalize()
            && !resolved.starts_with(&root)
        {
            return Err(refuse());
        }
    }
    Ok(())
}

/// The ONNX messages that can contain a tensor, directly or below.
#[derive(Debug, Clone, Copy)]
enum Message {
    Model,
    Graph,
    Node,
    Attribute,
    Tensor,
    SparseTensor,
    Function,
    TrainingInfo,
    StringStringEntry,
}

impl Message {
    /// What the length-delimited field `number` of this message holds, if it matters.
    fn child(self, number: u64) -> Option<Message> {
        use Message::*;
        match (self, number) {
            (Model, 7) => Some(Graph),
            (Model, 20) => Some(TrainingInfo),
            (Model, 25) => Some(Function),
            (TrainingInfo, 1 | 3) => Some(Graph),
            (Graph, 1) => Some(Node),
            (Graph, 5) => Some(Tensor),
            (Graph, 15) => Some(SparseTensor),
            (Function, 7) => Some(Node),
            (Node, 5) => Some(Attribute),
            (Attribute, 5 | 10) => Some(Tensor),
            (Attribute, 6 | 11) => Some(Graph),
            (Attribute, 22 | 23) => Some(SparseTensor),
            (SparseTensor, 1 | 2) => Some(Tensor),
            (Tensor, 13) => Some(StringStringEntry),
            _ => None,
        }
    }
}

/// Protobuf nests as deep as the graph's subgraphs; a model nested deeper is not a model.
const MAX_DEPTH: usize = 64;

fn walk(
    mut bytes: &[u8],
    message: Message,
    locations: &mut Vec<String>,
    depth: usize,
) -> Result<(), Refused> {
    let malformed = || Refused("the model file is not a valid ONNX protobuf".into());
    if depth > MAX_DEPTH {
        return Err(malformed());
    }
    let (mut key, mut value) = (None::<Vec<u8>>, None::<Vec<u8>>);
    while !bytes.is_empty() {
        let tag = varint(&mut bytes).ok_or_else(malformed)?;
        let (number, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => {
                varint(&mut bytes).ok_or_else(malformed)?;
            }
            1 => bytes = bytes.get(8..).ok_or_else(malformed)?,
            5 => bytes = bytes.get(4..).ok_or_else(malformed)?,
            2 => {
                let len = usize::try_from(varint(&mut bytes).ok_or_else(malformed)?)
                    .map_err(|_| malformed())?;
                let field = bytes.get(..len).ok_or_else(malformed)?;
                bytes = &bytes[len..];
                if let Message::StringStringEntry = message {
                    match number {
                        1 => key = Some(field.to_vec()),
                        2 => value = Some(field.to_vec()),
                        _ => {}
                    }
                } else if let Some(child) = message.child(number) {
                    walk(field, child, locations, depth + 1)?;
                }
            }
            _ => return Err(malformed()),
        }
    }
    if key.as_deref() == Some(b"location".as_slice()) {
        let value = value.unwrap_or_default();
        locations.push(String::from_utf8(value).map_err(|_| malformed())?);
    }
    Ok(())
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_varint(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn field(number: u64, bytes: &[u8], out: &mut Vec<u8>) {
        put_varint(number << 3 | 2, out);
        put_varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    /// A model with one initializer stored at `location`; `in_subgraph` puts it in an `If`
    /// node's branch instead of the main graph.
    fn model(location: &str, in_subgraph: bool) -> Vec<u8> {
        let mut entry = Vec::new();
        field(1, b"location", &mut entry);
        field(2, location.as_bytes(), &mut entry);
        let mut tensor = Vec::new();
        field(8, b"w", &mut tensor);
        field(13, &entry, &mut tensor);
        let mut inner = Vec::new();
        field(5, &tensor, &mut inner);
        let graph = if in_subgraph {
            let mut attribute = Vec::new();
            field(6, &inner, &mut attribute);
            let mut node = Vec::new();
            field(5, &attribute, &mut node);
            let mut graph = Vec::new();
            field(1, &node, &mut graph);
            graph
        } else {
            inner
        };
        let mut out = Vec::new();
        put_varint(1 << 3, &mut out);
        put_varint(8, &mut out);
        field(7, &graph, &mut out);
        out
    }

    #[test]
    fn locations_outside_the_model_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("weights.bin"), [0u8; 16]).unwrap();
        for nested in [false, true] {
            for bad in [
                "../../etc/passwd",
                "sub/../../x",
                "/etc/passwd",
                "..\\x",
                "",
            ] {
                assert!(check(&model(bad, nested), dir.path()).is_err(), "{bad}");
            }
            for good in ["weights.bin", "./weights.bin", "sub/later.bin"] {
                assert_eq!(check(&model(good, nested), dir.path()), Ok(()), "{good}");
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_location_that_links_out_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("w.bin"))
            .unwrap();
        assert!(check(&model("w.bin", false), dir.path()).is_err());
    }

    #[test]
    fn garbage_is_refused_and_a_model_without_external_data_passes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check(&[0xff, 0xff, 0xff], dir.path()).is_err());
        let mut plain = Vec::new();
        put_varint(1 << 3, &mut plain);
        put_varint(8, &mut plain);
        assert_eq!(check(&plain, dir.path()), Ok(()));
    }
}
