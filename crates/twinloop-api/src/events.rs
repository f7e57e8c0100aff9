//! Wire types of the native API: events.
