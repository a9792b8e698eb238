//! A target that is up but never answers: it accepts every connection and
//! holds it open, reading and discarding whatever arrives. What a hung
//! database or a wedged HTTP service looks like from the broker.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running tarpit; stopped (and every held connection closed) on drop.
pub struct Tarpit {
    /// Its port.
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Tarpit {
    /// Listens on `port` (0: a free one).
    pub fn start(port: u16) -> Self {
        let listener = listen(port);
        let port = listener.local_addr().unwrap().port();
        let (accepted, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let thread = {
            let (accepted, stop, held) = (accepted.clone(), stop.clone(), held.clone());
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    // Take every connection that is waiting, then rest.
                    while let Ok((stream, _)) = listener.accept() {
                        stream.set_nonblocking(true).unwrap();
                        accepted.fetch_add(1, Ordering::Relaxed);
                        held.lock().unwrap().push(stream);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                    // Read what clients send so their writes never block; answer nothing.
                    for stream in held.lock().unwrap().iter_mut() {
                        let _ = stream.read(&mut buffer);
                    }
                }
            })
        };
        Self {
            port,
            accepted,
            stop,
            held,
            thread: Some(thread),
        }
    }

    /// Its base URL, for HTTP targets.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

/// A non-blocking listener with a deep accept queue: with std's 128, a burst
/// of connections overflows it, and Linux then drops the handshake's last ACK
/// while the client believes it is connected, so the tarpit would never count
/// a connection the broker did make.
fn listen(port: u16) -> TcpListener {
    use socket2::{Domain, Socket, Type};
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a tarpit socket");
    // The port may be one a stopped service just closed kept-alive connections
    // on (they linger in TIME_WAIT): take it over anyway.
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.bind(&address.into()).expect("binding the tarpit");
    socket.listen(4096).expect("listening");
    socket.set_nonblocking(true).unwrap();
    socket.into()
}

impl Drop for Tarpit {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.held.lock().unwrap().clear();
    }
}
