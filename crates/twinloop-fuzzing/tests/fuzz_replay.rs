//! The fuzz targets on stable, for CI: every committed input of `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` replayed, then a bounded property run that mutates the corpus
//! (bit flips, byte changes, insertions, deletions, splices of two seeds). The long
//! coverage-guided runs are nightly libFuzzer's (`fuzz/`, docs/security.md "Fuzzing").

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestError, TestRng, TestRunner};

type Target = fn(&[u8]);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("a readable input");
            (p, bytes)
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Splice(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Bytes that matter to the parsers here: quotes, brackets, separators, digits, NUL, 0xff.
    let interesting = prop::sample::select(b"\"'`()[]{},:;.-+/\\=<>!%#?&\0\n 019eE\xff".to_vec());
    let byte = prop_oneof![any::<u8>(), interesting];
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), prop::collection::vec(byte, 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), any::<usize>()).prop_map(|(seed, at)| Mutation::Splice(seed, at)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation], seeds: &[Vec<u8>]) -> Vec<u8> {
    for m in mutations {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        match m {
            Mutation::Flip(i, bit) if !bytes.is_empty() => {
                let i = at(*i, bytes.len());
                bytes[i] ^= 1 << bit;
            }
            Mutation::Set(i, b) if !bytes.is_empty() => {
                let i = at(*i, bytes.len());
                bytes[i] = *b;
            }
            Mutation::Insert(i, b) => {
                let i = at(*i, bytes.len() + 1);
                bytes.splice(i..i, b.iter().copied());
            }
            Mutation::Delete(i, n) if !bytes.is_empty() => {
                let i = at(*i, bytes.len());
                let end = (i + n).min(bytes.len());
                bytes.drain(i..end);
            }
            Mutation::Splice(seed, cut) => {
                let other = &seeds[seed % seeds.len()];
                let here = at(*cut, bytes.len() + 1);
                let there = at(*cut, other.len() + 1);
                bytes.truncate(here);
                bytes.extend_from_slice(&other[there..]);
            }
            _ => {}
        }
    }
    bytes
}

/// Replays the target's committed inputs, then runs `cases` mutated ones.
fn run(name: &str, target: Target, cases: u32) {
    let corpus = inputs(&fuzz_dir().join("corpus").join(name));
    assert!(!corpus.is_empty(), "fuzz/corpus/{name}/ has no seed");
    let regressions = inputs(&fuzz_dir().join("regressions").join(name));
    for (path, bytes) in corpus.iter().chain(&regressions) {
        let outcome = std::panic::catch_unwind(|| target(bytes));
        assert!(outcome.is_ok(), "{} fails", path.display());
    }
    let seeds: Vec<Vec<u8>> = corpus.into_iter().map(|(_, b)| b).collect();
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let strategy = (
        prop::sample::select(seeds.clone()),
        prop::collection::vec(mutation(), 1..6),
    );
    // A fixed seed: CI runs the same cases every time, so a red run is this change's doing and
    // reproduces; exploring new inputs is the long libFuzzer runs' job.
    let rng = TestRng::deterministic_rng(config.rng_algorithm);
    let result = TestRunner::new_with_rng(config, rng).run(&strategy, |(seed, mutations)| {
        target(&mutate(seed, &mutations, &seeds));
        Ok(())
    });
    if let Err(TestError::Fail(why, (seed, mutations))) = result {
        // The shrunk input as bytes, ready to be committed to fuzz/regressions/<target>/.
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{name}-failure"));
        std::fs::write(&path, mutate(seed, &mutations, &seeds)).expect("the input written");
        panic!("{name}: {why}; the input is in {}", path.display());
    }
}

/// One test per target, so each reports on its own. The counts keep every target to a few
/// seconds in a debug build; the slow ones write a file and run the drift engine per case.
macro_rules! targets {
    ($($name:ident: $cases:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            run(stringify!($name), twinloop_fuzzing::$name, $cases);
        }
    )*};
}

targets! {
    filter: 8_000,
    order_by: 8_000,
    page_token: 8_000,
    artifact_path: 8_000,
    location: 5_000,
    rest_json: 10_000,
    rest_binary: 10_000,
    grpc_infer: 10_000,
    native_json: 10_000,
    mlflow_json: 10_000,
    feast_online: 10_000,
    feast_push: 10_000,
    feature_repo: 3_000,
    pipeline_yaml: 3_000,
    drift_csv: 500,
    drift_parquet: 1_000,
}
