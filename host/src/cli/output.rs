//! Printing responses: aligned `Key  Value` tables for people, JSON for scripts.

use serde_json::Value;

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned key/value table.
    Table,
    /// The server's JSON.
    Json,
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "n/a".into(),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(text).collect::<Vec<_>>().join(" "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", text(v)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        other => other.to_string(),
    }
}

/// Prints `rows` as a two-column table.
pub fn table(rows: &[(String, Value)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(3).max(3);
    println!("{:<width$}    Value", "Key");
    println!("{:<width$}    -----", "---");
    for (key, value) in rows {
        println!("{key:<width$}    {}", text(value));
    }
}

/// Prints a server response: warnings, then its data, auth block, or body.
pub fn response(format: Format, value: &Value) {
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
        return;
    }
    if let Some(warnings) = value["warnings"].as_array() {
        for warning in warnings {
            eprintln!("WARNING! {}", text(warning));
        }
    }
    let mut rows: Vec<(String, Value)> = Vec::new();
    if let Some(auth) = value["auth"].as_object() {
        for (ours, theirs) in [
            ("token", "client_token"),
            ("token_accessor", "accessor"),
            ("token_duration", "lease_duration"),
            ("token_renewable", "renewable"),
            ("token_policies", "token_policies"),
            ("policies", "policies"),
        ] {
            rows.push((
                ours.into(),
                auth.get(theirs).cloned().unwrap_or(Value::Null),
            ));
        }
    }
    if let Some(lease) = value["lease_id"].as_str().filter(|l| !l.is_empty()) {
        rows.push(("lease_id".into(), Value::String(lease.into())));
        rows.push(("lease_duration".into(), value["lease_duration"].clone()));
        rows.push(("lease_renewable".into(), value["renewable"].clone()));
    }
    let body = if value.get("data").is_some() {
        &value["data"]
    } else {
        value
    };
    if let Some(map) = body.as_object() {
        rows.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if rows.is_empty() {
        println!("Success!");
    } else {
        table(&rows);
    }
}

/// `plugin list` as `bao` prints it: a line per plugin version.
pub fn plugin_table(catalog: &Value) {
    let rows: Vec<[String; 3]> = catalog["data"]["detailed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|plugin| {
            let text = |key: &str| plugin[key].as_str().unwrap_or_default().to_owned();
            [text("name"), text("type"), text("version")]
        })
        .collect();
    let width = |column: usize, title: &str| {
        rows.iter()
            .map(|row| row[column].len())
            .chain([title.len()])
            .max()
            .unwrap_or_default()
    };
    let (name, kind) = (width(0, "Name"), width(1, "Type"));
    println!("{:<name$}    {:<kind$}    Version", "Name", "Type");
    println!("{:<name$}    {:<kind$}    -------", "----", "----");
    for [n, t, v] in &rows {
        println!("{n:<name$}    {t:<kind$}    {v}");
    }
}

/// Prints one field of an answer, raw, as `bao -field=NAME` does: looked up in
/// its data, then its auth (where `bao` calls `client_token` `token`), then
/// the answer itself (`lease_id`…).
pub fn field(value: &Value, name: &str) -> Result<(), String> {
    let auth_name = match name {
        "token" => "client_token",
        "token_accessor" => "accessor",
        "token_duration" => "lease_duration",
        "token_renewable" => "renewable",
        "token_policies" => "policies",
        other => other,
    };
    let found = [&value["data"], &value["auth"]]
        .into_iter()
        .zip([name, auth_name])
        .find_map(|(section, key)| section.get(key))
        .or_else(|| value.get(name).filter(|v| !v.is_null()));
    match found {
        Some(Value::String(text)) => println!("{text}"),
        Some(other) => println!("{other}"),
        None => return Err(format!("field `{name}` is not in the answer")),
    }
    Ok(())
}

/// What `plugin register FILE.wasm` prints: what was registered, and the
/// commands that take it to a first credential.
pub fn registered(names: &[String], data: &Value, sha256: &str) -> String {
    let name = names.last().map(String::as_str).unwrap_or_default();
    let fields = |schema: &str| {
        let names: Vec<&str> = data[schema]["properties"]
            .as_object()
            .into_iter()
            .flat_map(|props| props.keys().map(String::as_str))
            .collect();
        if names.is_empty() {
            String::new()
        } else {
            format!("{}=…", names.join("=… "))
        }
    };
    format!(
        "Registered plugin `{name}` version {version}\n\
         SHA-256: {sha256}\n\
         \n\
         Next, mount it, grant it what it may reach, and issue a credential:\n\
         \x20 leasehold secrets enable -path={name} {name}\n\
         \x20 leasehold write sys/grants/{name} allowed_origins=http://HOST:PORT   # an HTTP target\n\
         \x20 leasehold write sys/grants/{name} allowed_hosts=HOST:PORT            # a TCP target\n\
         \x20 leasehold write {name}/config/main {config} allowed_roles=ROLE\n\
         \x20 leasehold write {name}/roles/ROLE db_name=main {role}\n\
         \x20 leasehold read {name}/creds/ROLE\n",
        version = data["version"].as_str().unwrap_or("?"),
        config = fields("config_schema"),
        role = fields("role_schema"),
    )
}
