//! `auth/token/*`: the caller's own token.

use super::caller::Caller;
use super::response::Envelope;
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

/// `GET auth/token/lookup-self`.
pub async fn lookup_self(caller: Caller) -> Envelope {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let entry = caller.entry;
    Envelope::data(json!({
        "accessor": entry.accessor,
        "creation_time": entry.creation_time,
        "creation_ttl": entry.ttl,
        "display_name": entry.display_name,
        "entity_id": "",
        "expire_time": entry.expire_time.map(rfc3339),
        "explicit_max_ttl": 0,
        "id": caller.token.expose(),
        "identity_policies": [],
        "issue_time": rfc3339(entry.creation_time),
        "meta": entry.meta,
        "num_uses": 0,
        "orphan": entry.orphan,
        "path": entry.path,
        "policies": entry.policies,
        "renewable": entry.renewable,
        "ttl": entry.ttl_remaining(now),
        "type": "service",
    }))
}
