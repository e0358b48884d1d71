//! The traced workloads: TCP connection churn (as fast as it goes, or paced to a fixed rate),
//! UDP request/response like a busy DNS server, and one bulk TCP transfer. All on loopback,
//! each returning how much work it did in how long.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use socket2::{Domain, Socket, Type};

/// Units of work done (connections, queries, bytes) over `secs`.
#[derive(Clone, Copy, Debug)]
pub struct Done {
    pub units: f64,
    pub secs: f64,
}

impl Done {
    pub fn rate(&self) -> f64 {
        self.units / self.secs
    }
}

/// Connect, 64 B request, 128 B response, close: `clients` threads, each from its own source
/// address (127.0.0.2 ...), to two accepting threads. `rate`: connections per second in all,
/// paced; `None`: as fast as it goes.
pub fn churn(secs: f64, clients: usize, rate: Option<f64>) -> Result<Done> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut servers = Vec::new();
    for _ in 0..2 {
        let l = listener.try_clone()?;
        let stop = stop.clone();
        servers.push(std::thread::spawn(move || {
            let mut req = [0u8; 64];
            let resp = [b'r'; 128];
            while !stop.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = l.accept() else { continue };
                if s.read_exact(&mut req).is_ok() {
                    let _ = s.write_all(&resp);
                }
                // The server closes first, so TIME_WAIT stays on its side and client ports recycle.
            }
        }));
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let period = rate.map(|r| Duration::from_secs_f64(clients as f64 / r));
    let mut threads = Vec::new();
    for i in 0..clients {
        let done = done.clone();
        let src = Ipv4Addr::new(127, 0, 0, 2 + (i % 8) as u8);
        threads.push(std::thread::spawn(move || -> Result<()> {
            let dst: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
            let req = [b'q'; 64];
            let mut buf = [0u8; 256];
            let mut next = start;
            loop {
                if let Some(p) = period {
                    // Each thread keeps its own schedule: one connection every `p`.
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                    next += p;
                }
                if Instant::now() >= deadline {
                    return Ok(());
                }
                let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
                s.bind(&SocketAddr::from((src, 0)).into())?;
                s.connect(&dst.into())?;
                let mut s: TcpStream = s.into();
                s.write_all(&req)?;
                while s.read(&mut buf)? > 0 {}
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in threads {
        t.join().expect("client thread")?;
    }
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for _ in 0..2 {
        let _ = TcpStream::connect(("127.0.0.1", port));
    }
    for s in servers {
        let _ = s.join();
    }
    Ok(Done { units: done.load(Ordering::Relaxed) as f64, secs })
}

/// A DNS-like exchange: one unconnected server socket answers 40 B queries with 120 B replies
/// (recvfrom/sendto); `clients` threads each send a query and wait for its answer, on a
/// connected socket that is replaced every 100 queries (a new flow, as resolvers' random
/// source ports make). Units: queries answered.
pub fn udp_request_response(secs: f64, clients: usize) -> Result<Done> {
    let server = UdpSocket::bind("127.0.0.1:0")?;
    let addr = server.local_addr()?;
    server.set_read_timeout(Some(Duration::from_millis(100)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let srv = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let reply = [b'a'; 120];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((_, peer)) = server.recv_from(&mut buf) {
                    let _ = server.send_to(&reply, peer);
                }
            }
        })
    };
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut threads = Vec::new();
    for _ in 0..clients {
        let done = done.clone();
        threads.push(std::thread::spawn(move || -> Result<()> {
            let q = [b'q'; 40];
            let mut buf = [0u8; 512];
            while Instant::now() < deadline {
                let s = UdpSocket::bind("127.0.0.1:0")?;
                s.connect(addr)?;
                s.set_read_timeout(Some(Duration::from_millis(200)))?;
                for _ in 0..100 {
                    s.send(&q)?;
                    // A reply lost to a full socket buffer is retried by the next query.
                    if s.recv(&mut buf).is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(())
        }));
    }
    for t in threads {
        t.join().expect("client thread")?;
    }
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = srv.join();
    Ok(Done { units: done.load(Ordering::Relaxed) as f64, secs })
}

/// One TCP connection carrying 128 KiB writes as fast as the receiver reads. Units: bytes.
pub fn bulk_tcp(secs: f64) -> Result<Done> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let reader = std::thread::spawn(move || -> Result<u64> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut n = 0u64;
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(n),
                k => n += k as u64,
            }
        }
    });
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    let chunk = vec![b'b'; 128 * 1024];
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    while Instant::now() < deadline {
        s.write_all(&chunk)?;
    }
    s.shutdown(std::net::Shutdown::Write)?;
    let bytes = reader.join().expect("reader thread")?;
    Ok(Done { units: bytes as f64, secs: start.elapsed().as_secs_f64() })
}
