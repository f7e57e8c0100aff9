//! The cache (section 6 of the design): a step's key is SHA-256 over canonical JSON of what it
//! reads — command, params used, code file digests, environment lock digests and declared vars,
//! input content digests, declared outputs, a salt. Outputs live in a content-addressed store, so
//! a re-executed step that writes identical bytes leaves downstream keys unchanged (early
//! cutoff) without anyone declaring data versions.
//!
//! In this phase the executions the cache reads are JSON lines under the pipeline home
//! ([`index`]); the metadata store and lineage take that role later. [`gc`] lists and removes
//! entries and the blobs nothing references any more.

pub mod cas;
pub mod digest;
pub mod gc;
pub mod index;
pub mod key;

pub use cas::Cas;
pub use index::{Execution, Index};
pub use key::KeyDoc;
