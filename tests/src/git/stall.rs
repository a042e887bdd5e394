//! A TCP relay in front of a real server (Git, or the API server) that can be switched to stall: it then accepts
//! connections and never answers, as a hung server or a black-holed network path does.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};

/// Relays `127.0.0.1:<port>` to `upstream` until [`StallingRelay::stall`]; stopped on drop.
pub struct StallingRelay {
    port: u16,
    stalled: Arc<AtomicBool>,
    /// Connections already relayed stop passing bytes too (a black-holed path, not only a
    /// server that stops accepting).
    frozen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Connections accepted while stalled: held open, never read or written.
    held: Arc<Mutex<Vec<TcpStream>>>,
    upstream: Arc<AtomicU16>,
}

impl StallingRelay {
    pub fn start(upstream_port: u16) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the relay")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stalled = Arc::new(AtomicBool::new(false));
        let frozen = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let upstream = Arc::new(AtomicU16::new(upstream_port));
        let (s, f, st, h) = (stalled.clone(), frozen.clone(), stop.clone(), held.clone());
        let u = upstream.clone();
        thread::spawn(move || accept_loop(listener, u, s, f, st, h));
        Ok(Self {
            port,
            stalled,
            frozen,
            stop,
            held,
            upstream,
        })
    }

    /// New connections go to `port` from now on (a server restarted on another port).
    pub fn retarget(&self, port: u16) {
        self.upstream.store(port, Ordering::SeqCst);
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `git://127.0.0.1:<relay port>/<path>`.
    pub fn git_url(&self, path: &str) -> String {
        format!("git://127.0.0.1:{}/{path}", self.port)
    }

    /// From now on, connections are accepted and left unanswered.
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    /// Stalls new connections and stops relaying bytes on the open ones (kept open, silent).
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
        self.stall();
    }

    /// Relays again; the connections held while stalled are closed.
    pub fn resume(&self) {
        self.frozen.store(false, Ordering::SeqCst);
        self.stalled.store(false, Ordering::SeqCst);
        for s in self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Connections accepted and held while stalled (to show the client did reach the server).
    pub fn held(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for StallingRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.resume();
    }
}

fn accept_loop(
    listener: TcpListener,
    upstream: Arc<AtomicU16>,
    stalled: Arc<AtomicBool>,
    frozen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<TcpStream>>>,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                if stalled.load(Ordering::SeqCst) {
                    held.lock().unwrap_or_else(|p| p.into_inner()).push(client);
                } else {
                    let frozen = frozen.clone();
                    let upstream_port = upstream.load(Ordering::SeqCst);
                    thread::spawn(move || {
                        let _ = relay(client, upstream_port, frozen);
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(10))
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn relay(client: TcpStream, upstream_port: u16, frozen: Arc<AtomicBool>) -> io::Result<()> {
    let server = TcpStream::connect(("127.0.0.1", upstream_port))?;
    let (mut c_read, mut s_write) = (client.try_clone()?, server.try_clone()?);
    let up_frozen = frozen.clone();
    let up = thread::spawn(move || {
        let _ = pump(&mut c_read, &mut s_write, &up_frozen);
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    let _ = pump(&mut s_read, &mut c_write, &frozen);
    let _ = c_write.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}

/// Copies until end of stream, holding each chunk while the relay is frozen.
fn pump(from: &mut TcpStream, to: &mut TcpStream, frozen: &AtomicBool) -> io::Result<()> {
    use std::io::{Read, Write};
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        while frozen.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(10));
        }
        to.write_all(&buf[..n])?;
    }
}
