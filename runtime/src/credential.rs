//! What a successful `create` hands the host: a revocation handle and a credential,
//! both held as secrets (redacted in `Debug`, zeroized on drop).

use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// One field of a credential.
pub struct CredentialField {
    /// The field's name, as the consumer sees it.
    pub name: String,
    /// The value. Every value is held as a secret; `secret` says whether it may be
    /// shown in logs.
    pub value: SecretString,
    /// Whether the plugin marked the value secret.
    pub secret: bool,
}

/// A credential, returned to the consumer once and never stored.
#[derive(Default)]
pub struct Credential {
    fields: Vec<CredentialField>,
}

impl Credential {
    pub(crate) fn new(fields: Vec<CredentialField>) -> Self {
        Self { fields }
    }

    /// The fields in the order the plugin gave them.
    pub fn fields(&self) -> &[CredentialField] {
        &self.fields
    }

    /// The value of the field `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.expose_secret())
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for field in &self.fields {
            let shown = if field.secret {
                "<redacted>"
            } else {
                field.value.expose_secret()
            };
            map.entry(&field.name, &shown);
        }
        map.finish()
    }
}

/// The result of a successful `create`.
pub struct Issued {
    /// What `renew` and `revoke` need; stored encrypted by the host, never shown.
    pub handle: SecretString,
    /// The credential for the consumer.
    pub credential: Credential,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("handle", &"<redacted>")
            .field("credential", &self.credential)
            .finish()
    }
}
