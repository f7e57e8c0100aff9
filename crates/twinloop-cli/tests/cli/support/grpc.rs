//! Raw gRPC calls to the inference service over HTTP/2, and the few protobuf encodings they
//! need: enough to send any message, hostile ones included, with any `authorization` metadata.

use std::time::Duration;

/// An HTTP/2 client for gRPC's cleartext form.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

/// The gRPC status code and message of a unary call to `url` (`http://HOST:PORT/SERVICE/METHOD`)
/// with `message` (an encoded request) and, if given, `authorization` metadata; and the
/// response message.
pub async fn call(
    client: &reqwest::Client,
    url: &str,
    message: &[u8],
    authorization: Option<&str>,
) -> (u32, String, Vec<u8>) {
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(message);
    let mut request = client
        .post(url)
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = request
        .body(frame)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(response.status().as_u16(), 200);
    // A refused call is answered in the headers alone (gRPC's trailers-only form); an answered
    // one carries its status in trailers, which this client cannot read, and a message in the
    // body.
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let code = header("grpc-status").map_or(0, |c| c.parse().unwrap());
    let message = percent_decode(&header("grpc-message").unwrap_or_default());
    let body = response.bytes().await.unwrap();
    let reply = body.get(5..).unwrap_or_default().to_vec();
    (code, message, reply)
}

/// gRPC's `grpc-message` is percent-encoded.
fn percent_decode(text: &str) -> String {
    let mut out = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex: String = bytes.by_ref().take(2).map(char::from).collect();
            out.push(u8::from_str_radix(&hex, 16).unwrap());
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).unwrap()
}

// The few protobuf encodings `ModelInferRequest` needs, written out: this crate has no protobuf
// library of its own, and hostile messages are ones a library's types would not produce.

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn length_delimited(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint((field << 3) | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// `InferInputTensor`; `contents` is an encoded `InferTensorContents`.
pub fn input(name: &str, datatype: &str, shape: &[i64], contents: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    length_delimited(1, name.as_bytes(), &mut out);
    length_delimited(2, datatype.as_bytes(), &mut out);
    let mut dims = Vec::new();
    for &d in shape {
        varint(d as u64, &mut dims);
    }
    length_delimited(3, &dims, &mut out);
    if let Some(contents) = contents {
        length_delimited(5, &contents, &mut out);
    }
    out
}

/// `InferTensorContents` with `fp32_contents`.
pub fn fp32_contents(values: &[f32]) -> Vec<u8> {
    let packed: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut out = Vec::new();
    length_delimited(6, &packed, &mut out);
    out
}

/// A request whose field 1 is `name`: `ModelMetadataRequest` and `ModelReadyRequest` of that
/// model, an input-less `ModelInferRequest` to it; the requests without fields skip it.
pub fn named(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    length_delimited(1, name.as_bytes(), &mut out);
    out
}

/// `ModelInferRequest` for model `sum`.
pub fn infer_request(inputs: &[Vec<u8>], raw: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    length_delimited(1, b"sum", &mut out);
    for i in inputs {
        length_delimited(5, i, &mut out);
    }
    for r in raw {
        length_delimited(7, r, &mut out);
    }
    out
}

/// `raw_output_contents` (field 6) of an encoded `ModelInferResponse`.
pub fn raw_output_contents(mut message: &[u8]) -> Vec<Vec<u8>> {
    fn read_varint(bytes: &mut &[u8]) -> u64 {
        let mut v = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = bytes.split_first().expect("a complete varint");
            *bytes = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                break;
            }
        }
        v
    }
    let mut raw = Vec::new();
    while !message.is_empty() {
        let tag = read_varint(&mut message);
        assert_eq!(
            tag & 7,
            2,
            "ModelInferResponse has only length-delimited fields"
        );
        let len = read_varint(&mut message) as usize;
        let (value, rest) = message.split_at(len);
        if tag >> 3 == 6 {
            raw.push(value.to_vec());
        }
        message = rest;
    }
    raw
}
