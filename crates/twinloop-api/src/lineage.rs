//! Wire types of the native API: lineage.
