//! Wire types of the native API: error.
