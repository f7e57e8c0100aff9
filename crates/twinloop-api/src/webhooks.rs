//! Wire types of the native API: webhooks.
