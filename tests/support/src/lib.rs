//! Real target servers for the end-to-end tests, started on free loopback ports
//! with everything in temporary directories, and stopped on drop.

mod certs;
mod inventory;
mod nginx;
mod postgres;
mod redis;
mod tarpit;
mod webhook;

pub use certs::{Issued, TestCa};
pub use inventory::{InventoryService, Recorded};
pub use nginx::Nginx;
pub use postgres::PostgresServer;
pub use redis::{RedisClient, RedisServer};
pub use tarpit::Tarpit;
pub use webhook::{InHouse, Users};

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A loopback port nothing listens on right now, and that this process has not
/// handed out before: the tests of one binary run at once, and two servers
/// given the same free port would race for it (the loser's clients then talk
/// to the winner).
fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("finding a free loopback port")
            .port();
        if HANDED_OUT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port)
        {
            return port;
        }
    }
}

/// Waits until something accepts connections on `port`, failing the test with
/// `what` after `limit`.
fn wait_for_port(port: u16, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
