//! Wire types of the native API: deployments.
