//! What `create` returns: a revocation handle and the credential's fields.

use crate::bindings::leasehold::provider::types::{CredentialField, Issued as WitIssued};

/// A credential created on the target.
///
/// ```
/// # use leasehold_sdk::Issued;
/// let issued = Issued::new("v-app-reader-0a1b")
///     .field("username", "v-app-reader-0a1b")
///     .secret("password", "correct-horse-battery");
/// assert_eq!(issued.handle(), "v-app-reader-0a1b");
/// ```
#[derive(Clone)]
pub struct Issued {
    handle: String,
    fields: Vec<CredentialField>,
}

impl Issued {
    /// Starts a credential with the handle `revoke` and `renew` will receive.
    pub fn new(handle: impl Into<String>) -> Self {
        Self {
            handle: handle.into(),
            fields: Vec::new(),
        }
    }

    /// Adds a field the consumer may see and the host may log (a username, a URL).
    pub fn field(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.push(name.into(), value.into(), false)
    }

    /// Adds a secret field (a password, a key): returned to the consumer once, never
    /// logged or audited in clear.
    pub fn secret(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.push(name.into(), value.into(), true)
    }

    /// The revocation handle.
    pub fn handle(&self) -> &str {
        &self.handle
    }

    fn push(mut self, name: String, value: String, secret: bool) -> Self {
        self.fields.push(CredentialField {
            name,
            value,
            secret,
        });
        self
    }
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fields: Vec<(&str, &str)> = self
            .fields
            .iter()
            .map(|field| {
                let shown = if field.secret {
                    "<redacted>"
                } else {
                    field.value.as_str()
                };
                (field.name.as_str(), shown)
            })
            .collect();
        f.debug_struct("Issued")
            .field("handle", &self.handle)
            .field("fields", &fields)
            .finish()
    }
}

impl From<Issued> for WitIssued {
    fn from(issued: Issued) -> Self {
        WitIssued {
            handle: issued.handle,
            credential: issued.fields,
        }
    }
}
