//! The plugin sandbox against hostile plugins, through the real runtime.
//!
//! Each attack must end as a typed error within the call's deadline, and a
//! well-behaved call right after it must succeed: the engine survives every plugin.

use leasehold_host::plugin::{
    CallScope, ConnectionLimit, ContractVersion, Failure, Grants, LeaseInfo, LoadError, MemoryPins,
    Plugin, PluginError, Runtime, RuntimeConfig,
};
use leasehold_plugin_artifacts as artifacts;
use secrecy::SecretString;
use serde_json::json;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(2);
const MEMORY: usize = 32 << 20;

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        memory_limit_bytes: MEMORY,
        call_timeout: TIMEOUT,
        max_instances: 16,
        cache_dir: None,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

async fn load(runtime: &Runtime, path: &str) -> Plugin {
    runtime.load(&artifacts::read(path)).await.unwrap()
}

fn lease() -> LeaseInfo {
    LeaseInfo {
        lease_id: "hostile/creds/attack/1".into(),
        mount: "hostile".into(),
        role: "attack".into(),
        requester: "tester".into(),
        issued_at: 1_700_000_000,
        ttl_seconds: 60,
        expires_at: 1_700_000_060,
    }
}

fn config(value: serde_json::Value) -> SecretString {
    SecretString::from(value.to_string())
}

fn act(name: &str) -> String {
    json!({ "act": name }).to_string()
}

/// Runs one attack, checks it ended within the deadline, and returns its error.
async fn attack(
    plugin: &Plugin,
    scope: &CallScope,
    cfg: serde_json::Value,
    name: &str,
) -> PluginError {
    let started = Instant::now();
    let outcome = plugin
        .create(scope, &config(cfg), &act(name), &lease())
        .await;
    let took = started.elapsed();
    assert!(
        took < TIMEOUT + Duration::from_secs(1),
        "{name} took {took:?}"
    );
    match outcome {
        Ok(issued) => panic!("the {name} attack succeeded: {issued:?}"),
        Err(err) => err,
    }
}

/// A well-behaved call on the same plugin and on another one both succeed.
async fn still_works(runtime: &Runtime, hostile: &Plugin) {
    let scope = CallScope::new("hostile", Grants::none());
    let issued = hostile
        .create(&scope, &config(json!({})), &act("behave"), &lease())
        .await
        .expect("a well-behaved call after the attack");
    // The fixture asks for at most 32 bytes, so requester and role are shortened.
    let username = issued.credential.get("username").unwrap();
    assert!(
        username.starts_with("v-test-atta-") && username.len() == 32,
        "{username}"
    );
    let noop = load(runtime, artifacts::NOOP).await;
    let issued = noop
        .create(&scope, &config(json!({})), "{}", &lease())
        .await
        .expect("another plugin after the attack");
    assert!(issued.credential.get("password").unwrap().len() >= 24);
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_the_deadline() {
    let runtime = runtime();
    let hostile = load(&runtime, artifacts::HOSTILE).await;
    let scope = CallScope::new("hostile", Grants::none());
    let err = attack(&hostile, &scope, json!({}), "spin").await;
    assert!(
        matches!(err, PluginError::Timeout(t) if t == TIMEOUT),
        "{err}"
    );
    assert!(err.is_retryable());
    still_works(&runtime, &hostile).await;
}

#[tokio::test]
async fn a_spinning_plugin_does_not_starve_other_calls_on_its_thread() {
    // A current-thread runtime: the spinning call and the good call share one
    // thread, so the good one finishes only because the spinner yields each tick.
    let runtime = runtime();
    let hostile = load(&runtime, artifacts::HOSTILE).await;
    let scope = CallScope::new("hostile", Grants::none());
    let cfg = config(json!({}));
    let lease = lease();
    let spin_role = act("spin");
    let behave_role = act("behave");
    let spin = hostile.create(&scope, &cfg, &spin_role, &lease);
    let good = async {
        let issued = hostile.create(&scope, &cfg, &behave_role, &lease).await;
        (issued, Instant::now())
    };
    let started = Instant::now();
    let (spun, (good, good_done)) = tokio::join!(spin, good);
    assert!(matches!(spun, Err(PluginError::Timeout(_))));
    assert!(good.is_ok());
    assert!(
        good_done.duration_since(started) < TIMEOUT,
        "the good call waited for the spinner"
    );
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_limit() {
    let runtime = runtime();
    let hostile = load(&runtime, artifacts::HOSTILE).await;
    let scope = CallScope::new("hostile", Grants::none());
    let err = attack(&hostile, &scope, json!({}), "oom").await;
    assert!(
        matches!(err, PluginError::MemoryLimit { limit_bytes } if limit_bytes == MEMORY),
        "{err}"
    );
    still_works(&runtime, &hostile).await;
}

#[tokio::test]
async fn a_panic_is_a_crash_of_that_call_only() {
    let runtime = runtime();
    let hostile = load(&runtime, artifacts::HOSTILE).await;
    let scope = CallScope::new("hostile", Grants::none());
    let err = attack(&hostile, &scope, json!({}), "panic").await;
    assert!(
        matches!(err, PluginError::Crashed(ref m) if m.contains("unreachable")),
        "{err}"
    );
    assert!(!err.is_retryable());
    still_works(&runtime, &hostile).await;
}

#[tokio::test]
async fn files_outside_the_granted_directory_stay_out_of_reach() {
    let outer = tempfile::tempdir().unwrap();
    let granted = outer.path().join("granted");
    std::fs::create_dir(&granted).unwrap();
    let canary = outer.path().join("canary.txt");
    std::fs::write(&canary, "outside-secret-7f3a").unwrap();

    let runtime = runtime();
    let hostile = load(&runtime, artifacts::HOSTILE).await;
    let scope = CallScope::new("hostile", Grants::none().directory(&granted).unwrap());
    let paths = [
        "../canary.txt".to_owned(),
        "/../canary.txt".to_owned(),
        canary.display().to_string(),
        format!("../../../../..{}", canary.display()),
        "/etc/passwd".to_owned(),
    ];
    let err = attack(&hostile, &scope, json!({ "paths": paths }), "escape").await;
    assert!(
        matches!(err, PluginError::Failed(Failure::Denied(ref m)) if m.contains("no path outside")),
        "{err}"
    );
    // The same plugin can read a file that is inside its grant.
    std::fs::write(granted.join("inside.txt"), "inside").unwrap();
    let issued = hostile
        .create(
            &scope,
            &config(json!({ "paths": ["inside.txt"] })),
            &act("escape"),
            &lease(),
        )
        .await
        .unwrap();
    assert_eq!(issued.credential.get("stolen"), Some("inside"));
    still_works(&runtime, &hostile).await;
}

#[tokio::test]
async fn a_port_that_was_not_granted_is_refused_and_named() {
    let granted = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let granted_addr = granted.local_addr().unwrap();
    let other_addr = other.local_addr().unwrap();

    let runtime = runtime();
    let hostile = load(&runtime, artifacts::HOSTILE).await;
    let grants = Grants::none().allow_tcp(&granted_addr.to_string()).unwrap();
    let scope = CallScope::new("hostile", grants);

    let err = attack(
        &hostile,
        &scope,
        json!({ "target": other_addr.to_string() }),
        "connect",
    )
    .await;
    match &err {
        PluginError::CapabilityDenied(what) => {
            assert!(
                what.contains(&format!("TCP connect to {other_addr}")),
                "{what}"
            )
        }
        other => panic!("expected a capability denial, got {other}"),
    }
    // The granted port connects.
    let issued = hostile
        .create(
            &scope,
            &config(json!({ "target": granted_addr.to_string() })),
            &act("connect"),
            &lease(),
        )
        .await
        .unwrap();
    assert_eq!(
        issued.credential.get("target"),
        Some(granted_addr.to_string().as_str())
    );
    // A name that was not granted does not even resolve.
    let err = attack(
        &hostile,
        &scope,
        json!({ "target": format!("example.org:{}", granted_addr.port()) }),
        "connect",
    )
    .await;
    assert!(
        matches!(err, PluginError::CapabilityDenied(ref what) if what.contains("name lookup of `example.org`")),
        "{err}"
    );
    still_works(&runtime, &hostile).await;
}

#[tokio::test]
async fn a_plugin_waiting_on_a_silent_socket_is_stopped_at_the_deadline() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let runtime = runtime();
    let hostile = load(&runtime, artifacts::HOSTILE).await;
    let scope = CallScope::new(
        "hostile",
        Grants::none().allow_tcp(&addr.to_string()).unwrap(),
    );
    let err = attack(
        &hostile,
        &scope,
        json!({ "target": addr.to_string() }),
        "hang",
    )
    .await;
    assert!(matches!(err, PluginError::Timeout(_)), "{err}");
    still_works(&runtime, &hostile).await;
}

/// A loopback HTTP server answering every request with 200 and the `Host` header
/// it received; runs until the test process ends.
fn http_server() -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut host = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("host:") {
                    host = value.trim().to_owned();
                }
                line.clear();
            }
            let body = format!("host={host}");
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[tokio::test]
async fn http_goes_only_to_granted_origins() {
    let server = http_server();
    let other = http_server();
    let runtime = runtime();
    let hostile = load(&runtime, artifacts::HOSTILE).await;
    let grants = Grants::none()
        .allow_http(&format!("http://{server}"))
        .unwrap()
        .allow_http(&format!("http://localhost:{}", server.port()))
        .unwrap();
    let scope = CallScope::new("hostile", grants);

    // The granted origin answers, and sees the Host it was addressed by.
    let issued = hostile
        .create(
            &scope,
            &config(json!({ "target": format!("http://{server}/users") })),
            &act("http"),
            &lease(),
        )
        .await
        .unwrap();
    assert_eq!(issued.credential.get("status"), Some("200"));
    assert_eq!(
        issued.credential.get("body"),
        Some(format!("host={server}").as_str())
    );

    for (target, refused) in [
        // Another port on the same host.
        (
            format!("http://{other}/"),
            format!("HTTP origin http://{other}"),
        ),
        // The granted host and port over another scheme.
        (
            format!("https://{server}/"),
            format!("HTTP origin https://{server}"),
        ),
        // A granted name that resolves to loopback grants nothing.
        (
            format!("http://localhost:{}/", server.port()),
            "its name resolved to no address a name may grant".to_owned(),
        ),
    ] {
        let err = attack(&hostile, &scope, json!({ "target": target }), "http").await;
        assert!(
            matches!(err, PluginError::CapabilityDenied(ref what) if what.contains(&refused)),
            "{target}: {err}"
        );
    }
    still_works(&runtime, &hostile).await;
}

#[tokio::test]
async fn a_plugin_sees_no_environment_arguments_or_stdin() {
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("LEASEHOLD_TEST_CANARY", "host-secret") };
    let runtime = runtime();
    let hostile = load(&runtime, artifacts::HOSTILE).await;
    let scope = CallScope::new("hostile", Grants::none());
    let issued = hostile
        .create(&scope, &config(json!({})), &act("env"), &lease())
        .await
        .unwrap();
    assert_eq!(issued.credential.get("variables"), Some(""));
    assert_eq!(issued.credential.get("arguments"), Some(""));
    assert_eq!(issued.credential.get("stdin"), Some(""));
}

#[tokio::test]
async fn a_component_of_the_wrong_world_is_refused_at_load_naming_the_mismatch() {
    let runtime = runtime();
    let err = runtime
        .load(&artifacts::read(artifacts::WRONG_WORLD))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{message}");
    assert!(message.contains("leasehold:provider/plugin"), "{message}");
    assert!(
        message.contains("rotate-root") || message.contains("create"),
        "{message}"
    );
}

#[tokio::test]
async fn a_component_built_against_an_unknown_contract_version_is_refused_naming_it() {
    let runtime = runtime();
    let err = runtime
        .load(&artifacts::read(artifacts::FUTURE_CONTRACT))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, LoadError::UnsupportedContract { .. }),
        "{message}"
    );
    assert!(message.contains("leasehold:provider@0.9.0"), "{message}");
    assert!(message.contains("supports 0.1.0"), "{message}");
}

#[tokio::test]
async fn bytes_that_are_not_a_component_are_refused() {
    let runtime = runtime();
    for (what, bytes) in [
        ("garbage", b"definitely not wasm".to_vec()),
        ("a core module", b"\0asm\x01\0\0\0".to_vec()),
        (
            "a truncated component",
            artifacts::read(artifacts::NOOP)[..1000].to_vec(),
        ),
    ] {
        let err = runtime.load(&bytes).await.unwrap_err();
        assert!(
            matches!(err, LoadError::InvalidComponent(_)),
            "{what}: {err}"
        );
    }
}

#[tokio::test]
async fn a_loaded_plugin_describes_itself_and_is_identified_by_sha256() {
    let runtime = runtime();
    let bytes = artifacts::read(artifacts::HTPASSWD);
    let plugin = runtime.load(&bytes).await.unwrap();
    let info = plugin.info();
    assert_eq!(info.name, "htpasswd");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert!(!info.can_rotate_root);
    assert_eq!(info.contract_version, ContractVersion::V0_2_0);
    assert_eq!(plugin.contract_version(), ContractVersion::V0_2_0);
    let config_schema: serde_json::Value = serde_json::from_str(&info.config_schema).unwrap();
    assert_eq!(config_schema["required"], json!(["file"]));
    use sha2::Digest;
    assert_eq!(plugin.sha256(), hex::encode(sha2::Sha256::digest(&bytes)));
}

#[tokio::test]
async fn compiled_plugins_are_cached_on_disk_and_a_swapped_artifact_is_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let cached = || {
        Runtime::new(RuntimeConfig {
            cache_dir: Some(dir.path().join("cache")),
            ..RuntimeConfig::default()
        })
        .unwrap()
    };
    // Where the broker records what it wrote (the barrier, in the server).
    let pins = MemoryPins::default();
    let noop = artifacts::read(artifacts::NOOP);
    let hostile = artifacts::read(artifacts::HOSTILE);
    let first = cached();
    first.load_pinned(&noop, Some(&pins)).await.unwrap();
    first.load_pinned(&hostile, Some(&pins)).await.unwrap();
    assert_eq!(first.cached_artifacts(), 2);

    // A second runtime (a restart) loads the artifact instead of compiling.
    let second = cached();
    let plugin = second.load_pinned(&noop, Some(&pins)).await.unwrap();
    assert_eq!(second.cached_artifacts(), 2);
    let scope = CallScope::new("noop", Grants::none());
    plugin
        .create(&scope, &config(json!({})), "{}", &lease())
        .await
        .unwrap();
    drop((plugin, second, first));

    // Someone who can write the cache puts the hostile plugin's (valid) native
    // code where noop's artifact is: it is not run, noop is compiled again.
    let artifacts_on_disk: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let noop_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&noop));
    let (noop_path, hostile_path): (Vec<_>, Vec<_>) = artifacts_on_disk.iter().partition(|p| {
        p.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(&noop_sha)
    });
    std::fs::copy(hostile_path[0], noop_path[0]).unwrap();
    let third = cached();
    let plugin = third.load_pinned(&noop, Some(&pins)).await.unwrap();
    assert_eq!(plugin.info().name, "noop");
    plugin
        .create(&scope, &config(json!({})), "{}", &lease())
        .await
        .unwrap();
    // The replaced artifact verifies again.
    drop(plugin);
    let fourth = cached();
    assert_eq!(
        fourth
            .load_pinned(&noop, Some(&pins))
            .await
            .unwrap()
            .info()
            .name,
        "noop"
    );

    // Without a record of what was written (another broker's pins), the cache
    // is not trusted at all: everything is compiled.
    let strangers = MemoryPins::default();
    let fifth = cached();
    assert_eq!(
        fifth
            .load_pinned(&noop, Some(&strangers))
            .await
            .unwrap()
            .info()
            .name,
        "noop"
    );
}

#[test]
fn a_cache_directory_others_may_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache),
        ..RuntimeConfig::default()
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("others may write"), "{err}");
}

#[tokio::test]
async fn the_plugins_own_errors_arrive_typed() {
    let runtime = runtime();
    let noop = load(&runtime, artifacts::NOOP).await;
    let scope = CallScope::new("noop", Grants::none());
    // noop's config denies unknown fields.
    let err = noop
        .create(
            &scope,
            &config(json!({ "password": "hunter2-secret" , "x": 1})),
            "{}",
            &lease(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, PluginError::Failed(Failure::InvalidConfig(_))),
        "{err}"
    );
    assert!(!err.to_string().contains("hunter2-secret"), "{err}");
}

/// Collects what a `tracing` fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn plugin_output_reaches_the_host_log_with_plugin_and_mount() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The test runtime is single-threaded, so the plugin's calls log on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);

    let runtime = runtime();
    let hostile = load(&runtime, artifacts::HOSTILE).await;
    let scope = CallScope::new("attack-mount", Grants::none());
    attack(&hostile, &scope, json!({}), "panic").await;

    let htpasswd = load(&runtime, artifacts::HTPASSWD).await;
    let dir = tempfile::tempdir().unwrap();
    let scope = CallScope::new("web-mount", Grants::none().directory(dir.path()).unwrap());
    let issued = htpasswd
        .create(
            &scope,
            &config(json!({ "file": "users", "bcrypt_cost": 4 })),
            "{}",
            &lease(),
        )
        .await
        .unwrap();

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let panic_line = log
        .lines()
        .find(|l| l.contains("the hostile plugin panics on purpose"))
        .unwrap_or_else(|| panic!("the panic message was not forwarded:\n{log}"));
    assert!(panic_line.contains("plugin=\"hostile\""), "{panic_line}");
    assert!(
        panic_line.contains("mount=\"attack-mount\""),
        "{panic_line}"
    );
    assert!(panic_line.contains("stream=\"stderr\""), "{panic_line}");
    let user = issued.credential.get("username").unwrap();
    let info_line = log
        .lines()
        .find(|l| l.contains(&format!("added user {user}")))
        .unwrap_or_else(|| panic!("the plugin's log line was not forwarded:\n{log}"));
    assert!(
        info_line.contains("INFO") && info_line.contains("mount=\"web-mount\""),
        "{info_line}"
    );
    // The password never reaches the log.
    assert!(!log.contains(issued.credential.get("password").unwrap()));
}

#[tokio::test]
async fn a_plugin_gets_a_bounded_number_of_sockets_and_none_without_a_tcp_grant() {
    let runtime = runtime();
    let hostile = load(&runtime, artifacts::HOSTILE).await;
    // Connections complete in the listener's backlog; nobody needs to accept.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let cfg = config(json!({ "target": target }));
    let held = |issued: leasehold_host::plugin::Issued| {
        issued
            .credential
            .get("held")
            .unwrap()
            .parse::<u32>()
            .unwrap()
    };

    let granted = CallScope::new("hostile", Grants::none().allow_tcp(&target).unwrap());
    let issued = hostile
        .create(&granted, &cfg, &act("sockets"), &lease())
        .await
        .unwrap();
    assert_eq!(held(issued), 16, "the per-call socket cap");

    // Without any TCP grant not even one socket is created.
    let none = CallScope::new("hostile", Grants::none());
    let issued = hostile
        .create(&none, &cfg, &act("sockets"), &lease())
        .await
        .unwrap();
    assert_eq!(held(issued), 0);
    still_works(&runtime, &hostile).await;
}

#[tokio::test]
async fn a_result_larger_than_a_call_may_return_is_refused() {
    let runtime = runtime();
    let hostile = load(&runtime, artifacts::HOSTILE).await;
    let scope = CallScope::new("hostile", Grants::none());
    let err = attack(&hostile, &scope, json!({}), "huge-result").await;
    assert!(
        matches!(err, PluginError::TooLarge { limit, .. } if limit == 64 * 1024),
        "{err}"
    );
    still_works(&runtime, &hostile).await;
}

/// Host-owned connections (contract 0.2.0) are decided by the grants exactly
/// like sockets: an address or port that is not granted, or a granted name that
/// resolves to an address a name never grants, is refused and named; a kept
/// connection is offered again only to a later call on the same connection and
/// config that still grants its address, and never by a call that failed.
#[tokio::test]
async fn host_connections_follow_the_grants_and_the_pool_follows_the_config() {
    let granted = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (granted_addr, other_addr) = (granted.local_addr().unwrap(), other.local_addr().unwrap());
    let runtime = runtime();
    let hostile = load(&runtime, artifacts::HOSTILE).await;
    let grants = Grants::none().allow_tcp(&granted_addr.to_string()).unwrap();
    let on_connection = |grants: Grants| {
        CallScope::new("hostile", grants).on_connection(ConnectionLimit {
            key: "mount-id/main".into(),
            max_parallel: 2,
        })
    };
    let scope = on_connection(grants.clone());
    let target = |addr: &str| json!({ "target": addr });

    // Not granted: another port, and a name that resolves to loopback (a name
    // never grants loopback, even when granted by name).
    let err = attack(
        &hostile,
        &scope,
        target(&other_addr.to_string()),
        "host-connect",
    )
    .await;
    assert!(
        matches!(&err, PluginError::CapabilityDenied(what) if what.contains(&format!("connection to {other_addr}"))),
        "{err}"
    );
    let by_name = format!("localhost:{}", granted_addr.port());
    let named = on_connection(grants.clone().allow_tcp(&by_name).unwrap());
    let err = attack(&hostile, &named, target(&by_name), "host-connect").await;
    assert!(
        matches!(&err, PluginError::CapabilityDenied(what) if what.contains(&format!("connection to {by_name}"))),
        "{err}"
    );

    // Kept by one call, taken by the next with the same config; once taken it
    // is gone from the pool.
    let config = target(&granted_addr.to_string());
    let call = async |scope: &CallScope, config: &serde_json::Value, name: &str| {
        hostile
            .create(scope, &self::config(config.clone()), &act(name), &lease())
            .await
    };
    let taken = async |scope: &CallScope, config: &serde_json::Value| {
        let issued = call(scope, config, "host-take").await.unwrap();
        issued.credential.get("taken").unwrap() == "true"
    };
    call(&scope, &config, "host-connect").await.unwrap();
    assert!(taken(&scope, &config).await);
    assert!(!taken(&scope, &config).await);

    // Another config (a changed password, a rotated root) never sees it.
    call(&scope, &config, "host-connect").await.unwrap();
    let mut changed = config.clone();
    changed["paths"] = json!(["/changed"]);
    assert!(!taken(&scope, &changed).await);
    // Nor does a call on no connection, or on another one.
    let unpooled = CallScope::new("hostile", grants.clone());
    assert!(!taken(&unpooled, &config).await);
    // Nor a call whose grants no longer reach its address; and it is closed.
    let narrowed = on_connection(Grants::none().allow_tcp(&other_addr.to_string()).unwrap());
    assert!(!taken(&narrowed, &config).await);
    assert!(!taken(&scope, &config).await);

    // A call that fails after keeping a connection pools nothing.
    let failed = call(&scope, &config, "host-connect-then-fail").await;
    assert!(failed.is_err());
    assert!(!taken(&scope, &config).await);

    // Forgetting the connection (its config was written) closes what it kept.
    call(&scope, &config, "host-connect").await.unwrap();
    runtime.forget_connection("mount-id/main");
    assert!(!taken(&scope, &config).await);
    still_works(&runtime, &hostile).await;
}

/// A loopback HTTP/1.1 server that keeps connections open and counts how many
/// it accepted; answers every request with 200 and `ok`.
fn keep_alive_server() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    // One request: its head, up to the empty line (GETs have no body).
                    let mut head = 0;
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        head += 1;
                        if line == "\r\n" {
                            break;
                        }
                        line.clear();
                    }
                    if head == 0 || line != "\r\n" {
                        return;
                    }
                    if stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// Plugins' HTTP requests to one granted origin share kept-alive connections,
/// within a call and across calls: five calls, one connection.
#[tokio::test]
async fn http_connections_are_kept_alive_across_calls() {
    let (server, accepted) = keep_alive_server();
    let runtime = runtime();
    let hostile = load(&runtime, artifacts::HOSTILE).await;
    let scope = CallScope::new(
        "hostile",
        Grants::none()
            .allow_http(&format!("http://{server}"))
            .unwrap(),
    );
    for _ in 0..5 {
        let issued = hostile
            .create(
                &scope,
                &config(json!({ "target": format!("http://{server}/users") })),
                &act("http"),
                &lease(),
            )
            .await
            .unwrap();
        assert_eq!(issued.credential.get("body"), Some("ok"));
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "each request opened a connection of its own"
    );
}
