//! The audit log: one JSON line per request and per response, to every enabled
//! device, before any work is done.
//!
//! Every string value that could be a secret (tokens, accessors, request and
//! response data) is replaced by `hmac-sha256:<hex>` under the device's own key, so
//! the log can be searched ([`AuditDevice::hash`], `sys/audit-hash`) but not read
//! for secrets. Each line carries the HMAC of the line before it under a second
//! key of the device's, and after every fsync the broker checkpoints the chain's
//! head in the barrier, so a deleted, reordered, edited or truncated line
//! anywhere, the last one included, is found by [`AuditDevice::verify`]. Each
//! device has its own writer thread. If at least one device is enabled and none
//! can write, the request is refused: the broker fails closed.

mod chain;
mod device;
mod registry;
mod writer;

pub use chain::{Checkpoint, Verified, VerifyError};
pub use device::{AuditDevice, hmac_values};
pub use registry::{AuditError, AuditRegistry, DeviceConfig};
pub use writer::Durability;
