//! Container names from the Docker Engine API (dockerd, or podman's compatible service), asked
//! off the hot path.
//!
//! The recorder must never wait on a daemon while it drains the ring buffer, so one background
//! thread owns the HTTP client (a single-threaded tokio runtime of its own, whatever runtime
//! the caller has) and answers requests over a channel; [`Names`] is the recorder's side, which
//! only sends and polls. Every socket that answers the listing is asked (a host can run both
//! dockerd and podman); a container missing from the listing is inspected by id.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use serde::Deserialize;

use super::http;

/// How long one request to one socket may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// After a failed lookup (daemon down, timeout), how long before a container is asked again.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);

enum Request {
    List,
    Inspect(Arc<str>),
}

#[derive(Debug)]
enum Lookup {
    Named(String),
    /// No socket knows the container (it exited, or belongs to a runtime without the API).
    NotFound,
    /// No socket answered.
    Failed,
}

enum Answer {
    Listed { answered: Vec<PathBuf>, containers: Vec<(String, String)> },
    Inspected { id: Arc<str>, lookup: Lookup },
}

#[derive(Deserialize)]
struct Listed {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Names", default)]
    names: Vec<String>,
}

#[derive(Deserialize)]
struct Inspected {
    #[serde(rename = "Name")]
    name: String,
}

/// `/web` → `web`: the API prefixes names with the (legacy link) parent, `/`.
fn bare(name: &str) -> &str {
    name.strip_prefix('/').unwrap_or(name)
}

/// `GET /containers/json?all=true` on every socket that exists.
async fn list(sockets: &[PathBuf]) -> Answer {
    let mut answered = Vec::new();
    let mut containers = Vec::new();
    for socket in sockets.iter().filter(|s| s.exists()) {
        let got = http::get(socket, "/containers/json?all=true", REQUEST_TIMEOUT).await;
        match got.map(|(status, body)| (status, serde_json::from_slice::<Vec<Listed>>(&body))) {
            Ok((200, Ok(listed))) => {
                answered.push(socket.clone());
                for c in listed {
                    if let Some(name) = c.names.first() {
                        containers.push((c.id, bare(name).to_owned()));
                    }
                }
            }
            Ok((status, parsed)) => {
                let error = parsed.err().map(|e| e.to_string());
                tracing::debug!(socket = %socket.display(), status, error, "container listing refused");
            }
            Err(e) => tracing::debug!(error = %crate::ebpf::error_chain(&e), "container listing failed"),
        }
    }
    Answer::Listed { answered, containers }
}

/// `GET /containers/<id>/json` on each socket until one knows it.
async fn inspect(sockets: &[PathBuf], id: &str) -> Lookup {
    let mut lookup = Lookup::Failed;
    for socket in sockets.iter().filter(|s| s.exists()) {
        match http::get(socket, &format!("/containers/{id}/json"), REQUEST_TIMEOUT).await {
            Ok((200, body)) => match serde_json::from_slice::<Inspected>(&body) {
                Ok(c) => return Lookup::Named(bare(&c.name).to_owned()),
                Err(e) => tracing::debug!(socket = %socket.display(), id, error = %e, "unreadable inspect answer"),
            },
            Ok(_) => lookup = Lookup::NotFound,
            Err(e) => tracing::debug!(id, error = %crate::ebpf::error_chain(&e), "container inspect failed"),
        }
    }
    lookup
}

/// The background thread: answers requests until the [`Names`] side is dropped.
fn serve(sockets: Vec<PathBuf>, requests: Receiver<Request>, answers: Sender<Answer>) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::warn!(error = %e, "no runtime for container name lookups; containers stay unnamed");
            return;
        }
    };
    for request in requests {
        let answer = match request {
            Request::List => rt.block_on(list(&sockets)),
            Request::Inspect(id) => {
                let lookup = rt.block_on(inspect(&sockets, &id));
                Answer::Inspected { id, lookup }
            }
        };
        if answers.send(answer).is_err() {
            return;
        }
    }
}

/// Container id → name, filled in by the background thread.
#[derive(Debug)]
pub struct Names {
    requests: Sender<Request>,
    answers: Receiver<Answer>,
    /// Requests sent and not yet answered.
    in_flight: usize,
    names: FxHashMap<Arc<str>, Arc<str>>,
    /// Ids asked about: `None` while pending or once answered, `Some(t)` to ask again after `t`.
    asked: FxHashMap<Arc<str>, Option<Instant>>,
    answered: Vec<PathBuf>,
    listed: bool,
}

impl Names {
    /// Starts the background thread for `sockets` (none of which need exist).
    pub fn start(sockets: Vec<PathBuf>) -> Names {
        let (requests, rx) = mpsc::channel();
        let (tx, answers) = mpsc::channel();
        let spawned = std::thread::Builder::new().name("gespann-names".into()).spawn(move || serve(sockets, rx, tx));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the container name thread; containers stay unnamed");
        }
        Names {
            requests,
            answers,
            in_flight: 0,
            names: FxHashMap::default(),
            asked: FxHashMap::default(),
            answered: Vec::new(),
            listed: false,
        }
    }

    /// Lists every container, waiting at most `timeout` for the answer (a late answer is taken
    /// by a later [`Names::poll`]). Returns the ids named by whatever arrived meanwhile.
    pub fn list_now(&mut self, timeout: Duration) -> Vec<Arc<str>> {
        let mut named = Vec::new();
        if self.requests.send(Request::List).is_err() {
            return named;
        }
        self.in_flight += 1;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.answers.recv_timeout(left) {
                Ok(answer) => {
                    self.in_flight -= 1;
                    let was_listing = matches!(answer, Answer::Listed { .. });
                    self.take(answer, &mut named);
                    if was_listing {
                        return named;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    tracing::debug!(?timeout, "container listing not answered in time, names will come later");
                    return named;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.in_flight = 0;
                    return named;
                }
            }
        }
    }

    /// Takes the answers that arrived; returns the ids they named. Cheap when nothing is in
    /// flight.
    pub fn poll(&mut self) -> Vec<Arc<str>> {
        let mut named = Vec::new();
        while self.in_flight > 0 {
            match self.answers.try_recv() {
                Ok(answer) => {
                    self.in_flight -= 1;
                    self.take(answer, &mut named);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.in_flight = 0,
            }
        }
        named
    }

    /// Whether answers may still arrive.
    pub fn pending(&self) -> bool {
        self.in_flight > 0
    }

    fn take(&mut self, answer: Answer, named: &mut Vec<Arc<str>>) {
        match answer {
            Answer::Listed { answered, containers } => {
                tracing::debug!(?answered, containers = containers.len(), "listed containers");
                self.listed = true;
                for s in answered {
                    if !self.answered.contains(&s) {
                        self.answered.push(s);
                    }
                }
                for (id, name) in containers {
                    let id: Arc<str> = id.into();
                    self.asked.insert(id.clone(), None);
                    self.names.insert(id.clone(), name.into());
                    named.push(id);
                }
            }
            Answer::Inspected { id, lookup } => match lookup {
                Lookup::Named(name) => {
                    tracing::debug!(%id, name, "named container");
                    self.names.insert(id.clone(), name.into());
                    named.push(id);
                }
                Lookup::NotFound => {}
                Lookup::Failed => {
                    self.asked.insert(id, Some(Instant::now() + RETRY_AFTER));
                }
            },
        }
    }

    /// The name of container `id` if known; otherwise asks the background thread (once, or
    /// again after a failure) and returns `None`.
    pub fn name(&mut self, id: &Arc<str>) -> Option<Arc<str>> {
        if let Some(n) = self.names.get(id) {
            return Some(n.clone());
        }
        let ask = match self.asked.get(id) {
            None => true,
            Some(None) => false,
            Some(Some(after)) => Instant::now() >= *after,
        };
        if ask && self.requests.send(Request::Inspect(id.clone())).is_ok() {
            self.in_flight += 1;
            self.asked.insert(id.clone(), None);
        }
        None
    }

    /// Whether container `id`'s name is known.
    pub fn knows(&self, id: &str) -> bool {
        self.names.contains_key(id)
    }

    /// The ids of containers called `name` (with or without the leading `/`).
    pub fn ids_named(&self, name: &str) -> Vec<Arc<str>> {
        let name = bare(name);
        self.names.iter().filter(|(_, n)| &***n == name).map(|(id, _)| id.clone()).collect()
    }

    /// The sockets that answered a listing.
    pub fn answered(&self) -> &[PathBuf] {
        &self.answered
    }

    /// Whether a listing has been answered (by any socket, or by none that exist).
    pub fn listed(&self) -> bool {
        self.listed
    }

    /// How many containers have names.
    pub fn count(&self) -> usize {
        self.names.len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    use std::path::Path;

    /// How a canned body is framed.
    #[derive(Clone, Copy)]
    pub enum Framing {
        Length,
        Chunked,
    }

    /// Serves `routes` (request path → (status, JSON body)) on a unix socket at `path` until the
    /// test process ends; unknown paths get 404.
    pub fn fake_api(path: &Path, framing: Framing, routes: Vec<(String, u16, String)>) {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                        break;
                    }
                }
                let target = request_line.split_whitespace().nth(1).unwrap_or_default();
                let (status, body) = routes
                    .iter()
                    .find(|(p, _, _)| p == target)
                    .map(|(_, s, b)| (*s, b.clone()))
                    .unwrap_or((404, r#"{"message":"no such container"}"#.into()));
                let head = format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n");
                let out = match framing {
                    Framing::Length => format!("{head}Content-Length: {}\r\n\r\n{body}", body.len()),
                    Framing::Chunked => {
                        let mut out = format!("{head}Transfer-Encoding: chunked\r\n\r\n");
                        // several chunks, split inside the JSON
                        for piece in body.as_bytes().chunks(7) {
                            out += &format!("{:x}\r\n{}\r\n", piece.len(), std::str::from_utf8(piece).unwrap());
                        }
                        out + "0\r\n\r\n"
                    }
                };
                let _ = stream.write_all(out.as_bytes());
            }
        });
    }

    pub fn listing(containers: &[(&str, &str)]) -> String {
        let items: Vec<String> = containers
            .iter()
            .map(|(id, name)| format!(r#"{{"Id":"{id}","Names":["/{name}"],"State":"running"}}"#))
            .collect();
        format!("[{}]", items.join(","))
    }

    fn names_over(framing: Framing) {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("api.sock");
        let routes = vec![
            ("/containers/json?all=true".to_owned(), 200, listing(&[("aaa", "web"), ("bbb", "db")])),
            ("/containers/ccc/json".to_owned(), 200, r#"{"Id":"ccc","Name":"/late"}"#.to_owned()),
        ];
        fake_api(&sock, framing, routes);
        let mut names = Names::start(vec![dir.path().join("missing.sock"), sock.clone()]);
        let mut named = names.list_now(Duration::from_secs(5));
        named.sort();
        assert_eq!(named, [Arc::from("aaa"), Arc::from("bbb")]);
        assert_eq!(names.answered(), [sock]);
        assert_eq!(names.name(&"aaa".into()).as_deref(), Some("web"));
        assert_eq!(names.ids_named("/db"), [Arc::from("bbb")]);

        // a miss is asked in the background: no name now, the name once the answer is in
        assert_eq!(names.name(&"ccc".into()), None);
        assert_eq!(names.name(&"ddd".into()), None);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut late = Vec::new();
        while names.pending() && Instant::now() < deadline {
            late.extend(names.poll());
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(late, [Arc::from("ccc")]);
        assert_eq!(names.name(&"ccc".into()).as_deref(), Some("late"));
        assert!(!names.pending(), "ddd is not asked again after a 404");
        assert_eq!(names.name(&"ddd".into()), None);
        assert!(!names.pending());
    }

    #[test]
    fn names_from_a_content_length_api() {
        names_over(Framing::Length);
    }

    #[test]
    fn names_from_a_chunked_api_like_podman() {
        names_over(Framing::Chunked);
    }

    #[test]
    fn a_silent_socket_delays_the_start_by_the_timeout_only() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("silent.sock");
        // accepts connections (in the backlog) and never answers
        let _listener = UnixListener::bind(&sock).unwrap();
        let mut names = Names::start(vec![sock]);
        let t = Instant::now();
        assert!(names.list_now(Duration::from_millis(300)).is_empty());
        assert!(t.elapsed() < Duration::from_millis(900), "{:?}", t.elapsed());
        assert!(!names.listed());
        // the thread gives up after REQUEST_TIMEOUT and the (empty) listing arrives later
        let deadline = Instant::now() + REQUEST_TIMEOUT * 3;
        while !names.listed() && Instant::now() < deadline {
            names.poll();
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(names.listed());
        assert!(names.answered().is_empty());
    }
}
