//! Wire types of the native API: monitors.
