//! The audit log: one JSON line per request and per response, to every enabled
//! device, before any work is done.
//!
//! Every string value that could be a secret (tokens, accessors, request and
//! response data) is replaced by `hmac-sha256:<hex>` under the device's own key, so
//! the log can be searched ([`AuditDevice::hash`], `sys/audit-hash`) but not read
//! for secrets. Each line carries the SHA-256 of the line before it, so a deleted,
//! reordered or edited line breaks the chain ([`verify`]). If at least one device
//! is enabled and none can write, the request is refused: the broker fails closed.

mod chain;
mod device;
mod registry;

pub use chain::{VerifyError, verify};
pub use device::{AuditDevice, hmac_values};
pub use registry::{AuditError, AuditRegistry, DeviceConfig};
