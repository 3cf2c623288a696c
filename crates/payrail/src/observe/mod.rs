//! What payrail tells its operators about itself while it runs: the
//! Prometheus [`metrics`], and the upstream calls measured by
//! [`provider::Metered`].

pub mod metrics;
pub mod provider;

pub use metrics::{Metrics, StoreGauges};
