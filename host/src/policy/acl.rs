//! Deciding a request: which rule applies to a path, and what it allows.

use super::parse::Policy;
use std::cmp::Reverse;
use std::collections::BTreeMap;

/// One capability of a path rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// Write to a path that does not exist yet.
    Create,
    /// Read.
    Read,
    /// Write to a path that exists.
    Update,
    /// Delete.
    Delete,
    /// List keys.
    List,
    /// Use a root-protected path (with the operation's own capability).
    Sudo,
    /// Nothing, overriding every other capability for the same pattern.
    Deny,
}

impl Capability {
    /// The capability for a policy word.
    pub fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "create" => Self::Create,
            "read" => Self::Read,
            "update" => Self::Update,
            "delete" => Self::Delete,
            "list" => Self::List,
            "sudo" => Self::Sudo,
            "deny" => Self::Deny,
            _ => return None,
        })
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// What an ACL says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The operation's capability is granted.
    pub allowed: bool,
    /// `sudo` is granted too.
    pub sudo: bool,
}

/// The combined rules of a token's policies.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    root: bool,
    /// Pattern to the union of its capabilities across policies.
    rules: BTreeMap<String, u8>,
}

/// Whether `pattern` (with `+` segments and an optional trailing `*`) matches
/// `path`.
fn matches(pattern: &str, path: &str) -> bool {
    let (body, glob) = match pattern.strip_suffix('*') {
        Some(body) => (body, true),
        None => (pattern, false),
    };
    let wanted: Vec<&str> = body.split('/').collect();
    let given: Vec<&str> = path.split('/').collect();
    if (!glob && wanted.len() != given.len()) || given.len() < wanted.len() {
        return false;
    }
    let last = wanted.len() - 1;
    wanted
        .iter()
        .zip(&given)
        .enumerate()
        .all(|(i, (want, have))| {
            if *want == "+" {
                true
            } else if glob && i == last {
                have.starts_with(want)
            } else {
                want == have
            }
        })
}

/// Vault's priority between two matching patterns, as a key where greater wins:
/// a later first wildcard, then not ending in `*`, then fewer `+` segments, then
/// longer, then lexicographically greater.
fn priority(pattern: &str) -> (usize, bool, Reverse<usize>, usize, &str) {
    let first_wildcard = pattern.find(['+', '*']).unwrap_or(usize::MAX);
    let plus_segments = pattern.split('/').filter(|s| *s == "+").count();
    (
        first_wildcard,
        !pattern.ends_with('*'),
        Reverse(plus_segments),
        pattern.len(),
        pattern,
    )
}

impl Acl {
    /// The ACL of the `root` policy: everything, with sudo.
    pub fn root() -> Self {
        Self {
            root: true,
            rules: BTreeMap::new(),
        }
    }

    /// Combines `policies`.
    pub fn from_policies<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> Self {
        let mut rules: BTreeMap<String, u8> = BTreeMap::new();
        for policy in policies {
            for (pattern, capabilities) in &policy.rules {
                let bits = capabilities.iter().fold(0, |bits, c| bits | c.bit());
                *rules.entry(pattern.clone()).or_default() |= bits;
            }
        }
        Self { root: false, rules }
    }

    /// What the ACL grants on `path`, in Vault's words for `sys/capabilities`:
    /// `["root"]` for the root policy, `["deny"]` when nothing is granted.
    pub fn capabilities(&self, path: &str) -> Vec<&'static str> {
        if self.root {
            return vec!["root"];
        }
        let best = self
            .rules
            .iter()
            .filter(|(pattern, _)| matches(pattern, path))
            .max_by(|(a, _), (b, _)| priority(a).cmp(&priority(b)));
        let bits = match best {
            Some((_, bits)) if bits & Capability::Deny.bit() == 0 => *bits,
            _ => 0,
        };
        let words: Vec<&'static str> = [
            (Capability::Create, "create"),
            (Capability::Delete, "delete"),
            (Capability::List, "list"),
            (Capability::Read, "read"),
            (Capability::Sudo, "sudo"),
            (Capability::Update, "update"),
        ]
        .into_iter()
        .filter(|(capability, _)| bits & capability.bit() != 0)
        .map(|(_, word)| word)
        .collect();
        if words.is_empty() {
            vec!["deny"]
        } else {
            words
        }
    }

    /// Decides `capability` on `path` (no leading slash, no `v1/`).
    pub fn decide(&self, path: &str, capability: Capability) -> Decision {
        if self.root {
            return Decision {
                allowed: true,
                sudo: true,
            };
        }
        let best = self
            .rules
            .iter()
            .filter(|(pattern, _)| matches(pattern, path))
            .max_by(|(a, _), (b, _)| priority(a).cmp(&priority(b)));
        match best {
            Some((_, bits)) if bits & Capability::Deny.bit() == 0 => Decision {
                allowed: bits & capability.bit() != 0,
                sudo: bits & Capability::Sudo.bit() != 0,
            },
            _ => Decision {
                allowed: false,
                sudo: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse;
    use Capability::*;

    fn acl(policies: &[&str]) -> Acl {
        let parsed: Vec<_> = policies
            .iter()
            .enumerate()
            // The table writes two blocks on one line; HCL wants a newline between.
            .map(|(i, text)| parse(&format!("p{i}"), &text.replace("} path", "}\npath")).unwrap())
            .collect();
        Acl::from_policies(&parsed)
    }

    /// Vault's documented examples of matching and precedence, one row each:
    /// (policies, path, capability, allowed).
    #[test]
    fn vaults_precedence_rules() {
        let table: &[(&[&str], &str, Capability, bool)] = &[
            // An exact path matches only itself.
            (
                &[r#"path "secret/foo" { capabilities = ["read"] }"#],
                "secret/foo",
                Read,
                true,
            ),
            (
                &[r#"path "secret/foo" { capabilities = ["read"] }"#],
                "secret/foo/bar",
                Read,
                false,
            ),
            (
                &[r#"path "secret/foo" { capabilities = ["read"] }"#],
                "secret/foo",
                Update,
                false,
            ),
            // `*` is a string prefix, not a segment prefix.
            (
                &[r#"path "secret/foo*" { capabilities = ["read"] }"#],
                "secret/foobar",
                Read,
                true,
            ),
            (
                &[r#"path "secret/foo*" { capabilities = ["read"] }"#],
                "secret/foo/bar",
                Read,
                true,
            ),
            (
                &[r#"path "secret/*" { capabilities = ["read"] }"#],
                "secret",
                Read,
                false,
            ),
            // `+` is exactly one segment.
            (
                &[r#"path "secret/+/teamb" { capabilities = ["read"] }"#],
                "secret/x/teamb",
                Read,
                true,
            ),
            (
                &[r#"path "secret/+/teamb" { capabilities = ["read"] }"#],
                "secret/x/y/teamb",
                Read,
                false,
            ),
            (
                &[r#"path "secret/+/teamb" { capabilities = ["read"] }"#],
                "secret/teamb",
                Read,
                false,
            ),
            // An exact match beats a glob.
            (
                &[
                    r#"path "secret/*" { capabilities = ["read"] } path "secret/foo" { capabilities = ["deny"] }"#,
                ],
                "secret/foo",
                Read,
                false,
            ),
            (
                &[
                    r#"path "secret/*" { capabilities = ["deny"] } path "secret/foo" { capabilities = ["read"] }"#,
                ],
                "secret/foo",
                Read,
                true,
            ),
            // Rule 1: the later first wildcard wins ("secret/foo/*" over "secret/foo*").
            (
                &[
                    r#"path "secret/foo*" { capabilities = ["deny"] } path "secret/foo/*" { capabilities = ["read"] }"#,
                ],
                "secret/foo/bar",
                Read,
                true,
            ),
            // Rule 2: not ending in `*` wins ("secret/+/bar" over "secret/*").
            (
                &[
                    r#"path "secret/*" { capabilities = ["deny"] } path "secret/+/bar" { capabilities = ["read"] }"#,
                ],
                "secret/x/bar",
                Read,
                true,
            ),
            // Rule 3: fewer `+` wins ("secret/*" over "secret/+/*").
            (
                &[
                    r#"path "secret/*" { capabilities = ["read"] } path "secret/+/*" { capabilities = ["deny"] }"#,
                ],
                "secret/x/y",
                Read,
                true,
            ),
            // Rule 4: longer wins ("secret/a/*" over "secret/*"... by rule 1 already; "secret/+/bc*" over "secret/+/b*").
            (
                &[
                    r#"path "secret/+/b*" { capabilities = ["deny"] } path "secret/+/bc*" { capabilities = ["read"] }"#,
                ],
                "secret/x/bcd",
                Read,
                true,
            ),
            // The most specific rule decides alone: a broader grant does not add to it.
            (
                &[
                    r#"path "db/*" { capabilities = ["read", "update"] } path "db/creds/ro" { capabilities = ["read"] }"#,
                ],
                "db/creds/ro",
                Update,
                false,
            ),
            // Same pattern in two policies: capabilities merge...
            (
                &[
                    r#"path "db/creds/ro" { capabilities = ["read"] }"#,
                    r#"path "db/creds/ro" { capabilities = ["update"] }"#,
                ],
                "db/creds/ro",
                Update,
                true,
            ),
            // ...and deny in either wins.
            (
                &[
                    r#"path "db/creds/ro" { capabilities = ["read"] }"#,
                    r#"path "db/creds/ro" { capabilities = ["deny"] }"#,
                ],
                "db/creds/ro",
                Read,
                false,
            ),
            // No matching rule: denied.
            (
                &[r#"path "db/creds/ro" { capabilities = ["read"] }"#],
                "db/creds/rw",
                Read,
                false,
            ),
        ];
        for (policies, path, capability, allowed) in table {
            let decision = acl(policies).decide(path, *capability);
            assert_eq!(
                decision.allowed, *allowed,
                "{policies:?} {path} {capability:?}"
            );
        }
    }

    #[test]
    fn sudo_is_reported_and_root_has_everything() {
        let acl =
            acl(&[r#"path "sys/leases/revoke-prefix/*" { capabilities = ["update", "sudo"] }"#]);
        assert_eq!(
            acl.decide("sys/leases/revoke-prefix/db", Update),
            Decision {
                allowed: true,
                sudo: true
            }
        );
        let root = Acl::root();
        assert_eq!(
            root.decide("anything/at/all", Delete),
            Decision {
                allowed: true,
                sudo: true
            }
        );
    }
}
