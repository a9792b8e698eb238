//! Reading a policy document, HCL or JSON.

use super::acl::Capability;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The policy's name.
    pub name: String,
    /// Pattern to capabilities, in document order of first appearance.
    pub rules: Vec<(String, Vec<Capability>)>,
}

/// Why a policy document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Neither valid HCL nor valid JSON of the policy shape.
    #[error("the policy does not parse: {0}")]
    Syntax(String),
    /// A capability that does not exist.
    #[error(
        "path \"{path}\": unknown capability `{capability}` (known: create, read, update, delete, list, sudo, deny)"
    )]
    UnknownCapability {
        /// The rule's pattern.
        path: String,
        /// The word used.
        capability: String,
    },
    /// A pattern with a `*` anywhere but at the end.
    #[error("path \"{0}\": `*` is only allowed at the end of a path")]
    BadGlob(String),
    /// A rule without capabilities.
    #[error("path \"{0}\" has no capabilities")]
    NoCapabilities(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    path: BTreeMap<String, Rule>,
}

#[derive(Deserialize)]
struct Rule {
    #[serde(default)]
    capabilities: Vec<String>,
    /// Vault's older `policy = "read"` shorthand.
    #[serde(default)]
    policy: Option<String>,
}

/// Parses `text` (HCL, or JSON when it starts with `{`) as policy `name`.
pub fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
    let document: Document = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|err| PolicyError::Syntax(err.to_string()))?
    } else {
        hcl::from_str(text).map_err(|err| PolicyError::Syntax(err.to_string()))?
    };
    let mut rules = Vec::new();
    for (path, rule) in document.path {
        if path.trim_end_matches('*').contains('*') {
            return Err(PolicyError::BadGlob(path));
        }
        let mut words = rule.capabilities;
        if let Some(shorthand) = rule.policy {
            words.extend(legacy(&shorthand).iter().map(|s| (*s).to_owned()));
        }
        if words.is_empty() {
            return Err(PolicyError::NoCapabilities(path));
        }
        let capabilities = words
            .iter()
            .map(|word| {
                Capability::parse(word).ok_or_else(|| PolicyError::UnknownCapability {
                    path: path.clone(),
                    capability: word.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        rules.push((path.trim_start_matches('/').to_owned(), capabilities));
    }
    Ok(Policy {
        name: name.to_owned(),
        rules,
    })
}

/// Vault's pre-0.9 `policy = "..."` words.
fn legacy(word: &str) -> &'static [&'static str] {
    match word {
        "deny" => &["deny"],
        "read" => &["read", "list"],
        "write" => &["create", "read", "update", "delete", "list"],
        "sudo" => &["create", "read", "update", "delete", "list", "sudo"],
        _ => &["unknown-legacy-policy-word"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcl_and_json_give_the_same_policy() {
        let hcl = r#"
            path "db/creds/ro" { capabilities = ["read"] }
            path "sys/leases/*" { capabilities = ["update", "sudo"] }
        "#;
        let json = r#"{"path": {"db/creds/ro": {"capabilities": ["read"]},
                                "sys/leases/*": {"capabilities": ["update", "sudo"]}}}"#;
        let from_hcl = parse("p", hcl).unwrap();
        assert_eq!(from_hcl, parse("p", json).unwrap());
        assert_eq!(from_hcl.rules.len(), 2);
    }

    #[test]
    fn mistakes_are_named() {
        assert!(
            matches!(parse("p", "path \"a\" { capabilities = [\"raed\"] }"), Err(PolicyError::UnknownCapability { capability, .. }) if capability == "raed")
        );
        assert!(matches!(
            parse("p", "path \"a*b\" { capabilities = [\"read\"] }"),
            Err(PolicyError::BadGlob(_))
        ));
        assert!(matches!(
            parse("p", "path \"a\" { }"),
            Err(PolicyError::NoCapabilities(_))
        ));
        assert!(matches!(
            parse("p", "path \"a\" {"),
            Err(PolicyError::Syntax(_))
        ));
        assert!(matches!(
            parse("p", "{\"paths\": {}}"),
            Err(PolicyError::Syntax(_))
        ));
    }
}
