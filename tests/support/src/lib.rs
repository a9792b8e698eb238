//! Real target servers for the end-to-end tests, started on free loopback ports
//! with everything in temporary directories, and stopped on drop.

mod nginx;
mod postgres;
mod redis;
mod webhook;

pub use nginx::Nginx;
pub use postgres::PostgresServer;
pub use redis::{RedisClient, RedisServer};
pub use webhook::{InHouse, Users};
