//! Streaming profiles.
