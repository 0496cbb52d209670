//! An HTTP/1.1 server in the test process, on 127.0.0.1: it records every request (method,
//! target, headers, body) and answers as the test says, per path or for every path, and the
//! test may change that while it runs (answer 500 now, answer after 10 s, close without an
//! answer, stop listening altogether).
//!
//! One thread per connection and one request per connection (`Connection: close`), so a slow
//! answer never delays another. Request bodies are read by `Content-Length` or chunked.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::lock;

/// One request as the server read it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The request target as sent: path and query (`/hook?x=1`).
    pub target: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// When it was read completely.
    pub at: Instant,
}

impl Request {
    /// The target without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// A header (the name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body of {} {} is not JSON ({e}): {}",
                self.method,
                self.target,
                self.text()
            )
        })
    }
}

/// A response: status, headers, body, and how long to wait before sending it.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Reply {
    /// `status` with an empty body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// `status` with a `text/plain` body.
    pub fn text(status: u16, body: &str) -> Reply {
        Reply::status(status)
            .header("Content-Type", "text/plain")
            .body(body.as_bytes())
    }

    /// `status` with a JSON body.
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply::status(status)
            .header("Content-Type", "application/json")
            .body(body.to_string().as_bytes())
    }

    /// The same with one more header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The same with this body.
    #[must_use]
    pub fn body(mut self, body: &[u8]) -> Reply {
        self.body = body.to_vec();
        self
    }

    /// The same, sent after `delay`.
    #[must_use]
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// A function that makes the reply from the request (an echo …).
pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// What the server does with a request.
#[derive(Clone)]
pub enum Answer {
    /// Sends this reply.
    Reply(Reply),
    /// Reads the request, then closes the connection without a word.
    Close,
    /// Sends what the function makes of the request.
    With(Handler),
}

impl Answer {
    /// An answer made by `f` from each request.
    pub fn with(f: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Answer {
        Answer::With(Arc::new(f))
    }
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        Answer::Reply(reply)
    }
}

struct State {
    default: Answer,
    routes: HashMap<String, Answer>,
    requests: Vec<Request>,
}

struct Shared {
    state: Mutex<State>,
    arrived: Condvar,
}

/// The HTTP server; it stops listening when dropped.
pub struct HttpReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    listener: Mutex<Option<(Arc<AtomicBool>, JoinHandle<()>)>>,
}

impl HttpReceiver {
    /// A server on a free port that answers `200` with an empty body to everything.
    pub fn start() -> HttpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let receiver = HttpReceiver {
            addr: listener.local_addr().unwrap(),
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    default: Answer::Reply(Reply::status(200)),
                    routes: HashMap::new(),
                    requests: Vec::new(),
                }),
                arrived: Condvar::new(),
            }),
            listener: Mutex::new(None),
        };
        receiver.listen(listener);
        receiver
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// From now on, answers every path without a route of its own this way.
    pub fn answer(&self, answer: impl Into<Answer>) {
        lock(&self.shared.state).default = answer.into();
    }

    /// From now on, answers requests for `path` (the target without its query) this way.
    pub fn route(&self, path: &str, answer: impl Into<Answer>) {
        lock(&self.shared.state)
            .routes
            .insert(path.to_string(), answer.into());
    }

    /// Every request received so far, in the order they were read completely.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.state).requests.clone()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        lock(&self.shared.state).requests.clear();
    }

    /// The requests once there are at least `n`; panics (listing what came) after `within`.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Request> {
        let deadline = Instant::now() + within;
        let mut state = lock(&self.shared.state);
        while state.requests.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{n} requests expected within {within:?}, {} came: {:#?}",
                state.requests.len(),
                state.requests
            );
            state = self
                .shared
                .arrived
                .wait_timeout(state, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        state.requests.clone()
    }

    /// Closes the listening socket: connections are refused until
    /// [`listen_again`](HttpReceiver::listen_again). Connections already accepted go on.
    pub fn stop_listening(&self) {
        let Some((stop, thread)) = lock(&self.listener).take() else {
            return;
        };
        stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which sees the flag and drops the listener.
        let _ = TcpStream::connect(self.addr);
        let _ = thread.join();
    }

    /// Listens again on the same port after [`stop_listening`](HttpReceiver::stop_listening).
    pub fn listen_again(&self) {
        if lock(&self.listener).is_some() {
            return;
        }
        let listener = TcpListener::bind(self.addr)
            .unwrap_or_else(|e| panic!("cannot listen on {} again: {e}", self.addr));
        self.listen(listener);
    }

    fn listen(&self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::clone(&self.shared);
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    let _ = serve(&shared, &stream);
                });
            }
        });
        *lock(&self.listener) = Some((stop, thread));
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.stop_listening();
    }
}

fn serve(shared: &Shared, stream: &TcpStream) -> io::Result<()> {
    let request = read_request(stream)?;
    let answer = {
        let mut state = lock(&shared.state);
        let answer = state
            .routes
            .get(request.path())
            .unwrap_or(&state.default)
            .clone();
        state.requests.push(request.clone());
        shared.arrived.notify_all();
        answer
    };
    let reply = match answer {
        Answer::Close => return Ok(()),
        Answer::Reply(reply) => reply,
        Answer::With(f) => f(&request),
    };
    if !reply.delay.is_zero() {
        thread::sleep(reply.delay);
    }
    respond(stream, &reply, request.method == "HEAD")
}

fn read_request(stream: &TcpStream) -> io::Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    if method.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "no request line",
        ));
    }
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked(&mut reader)?
    } else {
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        body
    };
    Ok(Request {
        method,
        target,
        headers,
        body,
        at: Instant::now(),
    })
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = size.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = String::new();
        reader.read_line(&mut crlf)?;
    }
}

fn respond(mut stream: &TcpStream, reply: &Reply, head: bool) -> io::Result<()> {
    let mut text = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        let _ = write!(text, "{name}: {value}\r\n");
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes())?;
    if !head {
        stream.write_all(&reply.body)?;
    }
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
