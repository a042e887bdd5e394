//! Smart HTTP: a minimal HTTP/1.1 server that runs `git http-backend` as a CGI per request.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::exec_path;

/// Credentials a [`HttpGitServer`] demands via HTTP basic auth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl BasicAuth {
    pub fn new(username: &str, password: &str) -> Self {
        BasicAuth {
            username: username.to_owned(),
            password: password.to_owned(),
        }
    }
}

/// Serves every repository below a directory over smart HTTP on `http://127.0.0.1:<port>/`,
/// optionally behind basic auth (push is allowed for authenticated users). Stopped on drop.
#[derive(Debug)]
pub struct HttpGitServer {
    port: u16,
    base: PathBuf,
    auth: Option<BasicAuth>,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    stopping: AtomicBool,
    requests: AtomicUsize,
    unauthorized: AtomicUsize,
}

struct Backend {
    program: PathBuf,
    base: PathBuf,
    auth: Option<BasicAuth>,
    shared: Arc<Shared>,
}

impl HttpGitServer {
    /// Serves the repositories below `base`; with `auth`, every request must carry it.
    pub fn serve(base: &Path, auth: Option<BasicAuth>) -> Result<Self> {
        let program = exec_path()?.join("git-http-backend");
        if !program.is_file() {
            bail!(
                "{} not found; install the Debian package `git`",
                program.display()
            );
        }
        let base = base
            .canonicalize()
            .with_context(|| format!("resolving HTTP base path {}", base.display()))?;
        let listener =
            TcpListener::bind("127.0.0.1:0").context("binding the Git HTTP server to 127.0.0.1")?;
        let port = listener
            .local_addr()
            .context("reading the Git HTTP server's port")?
            .port();
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
            unauthorized: AtomicUsize::new(0),
        });
        let backend = Arc::new(Backend {
            program,
            base: base.clone(),
            auth: auth.clone(),
            shared: shared.clone(),
        });
        let acceptor = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if backend.shared.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let backend = backend.clone();
                std::thread::spawn(move || {
                    if let Err(e) = backend.handle(stream) {
                        eprintln!("tests::git::HttpGitServer: {e:#}");
                    }
                });
            }
        });
        Ok(HttpGitServer {
            port,
            base,
            auth,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// `http://127.0.0.1:<port>/<path>` for a repository at `<base>/<path>` (no credentials
    /// in the URL; give them to the client).
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    pub fn auth(&self) -> Option<&BasicAuth> {
        self.auth.as_ref()
    }

    /// Requests received so far, including rejected ones.
    pub fn request_count(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests answered with 401 (missing or wrong credentials) so far.
    pub fn unauthorized_count(&self) -> usize {
        self.shared.unauthorized.load(Ordering::SeqCst)
    }
}

impl Drop for HttpGitServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the thread sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Backend {
    fn handle(&self, stream: TcpStream) -> Result<()> {
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .context("setting read timeout")?;
        let mut reader = BufReader::new(stream.try_clone().context("cloning the connection")?);
        let mut writer = stream;
        let Some(request) = read_head(&mut reader)? else {
            return Ok(()); // Connection closed without a request (e.g. the shutdown wake-up).
        };
        self.shared.requests.fetch_add(1, Ordering::SeqCst);

        let user = match (&self.auth, request.header("authorization")) {
            (None, _) => None,
            (Some(expected), Some(value)) if credentials_match(expected, value) => {
                Some(expected.username.clone())
            }
            (Some(_), _) => {
                self.shared.unauthorized.fetch_add(1, Ordering::SeqCst);
                let body = "authentication required\n";
                write!(
                    writer,
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
                     Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )?;
                return Ok(());
            }
        };

        if request
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let body = read_body(&mut reader, &request)?;
        let cgi_output = self.run_cgi(&request, user.as_deref(), body)?;
        let response = cgi_to_http(&cgi_output)?;
        writer
            .write_all(&response)
            .context("writing the HTTP response")?;
        let _ = writer.shutdown(Shutdown::Write);
        Ok(())
    }

    fn run_cgi(&self, request: &Request, user: Option<&str>, body: Vec<u8>) -> Result<Vec<u8>> {
        let mut cmd = Command::new(&self.program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_PROJECT_ROOT", &self.base)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("GATEWAY_INTERFACE", "CGI/1.1")
            .env("SERVER_PROTOCOL", "HTTP/1.1")
            .env("REQUEST_METHOD", &request.method)
            .env("PATH_INFO", &request.path)
            .env("QUERY_STRING", &request.query)
            .env("REMOTE_ADDR", "127.0.0.1")
            .env("CONTENT_LENGTH", body.len().to_string());
        if let Some(content_type) = request.header("content-type") {
            cmd.env("CONTENT_TYPE", content_type);
        }
        if let Some(encoding) = request.header("content-encoding") {
            cmd.env("HTTP_CONTENT_ENCODING", encoding);
        }
        if let Some(protocol) = request.header("git-protocol") {
            cmd.env("GIT_PROTOCOL", protocol);
        }
        // http-backend only allows receive-pack (push) for an authenticated REMOTE_USER.
        if let Some(user) = user {
            cmd.env("REMOTE_USER", user).env("AUTH_TYPE", "Basic");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))?;
        let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin pipe"))?;
        // Feed stdin from another thread: the backend may write output before reading it all.
        let feeder = std::thread::spawn(move || stdin.write_all(&body));
        let output = child
            .wait_with_output()
            .context("waiting for git http-backend")?;
        let _ = feeder.join();
        if !output.status.success() && output.stdout.is_empty() {
            bail!(
                "git http-backend {} {} failed with {}: {}",
                request.method,
                request.path,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(output.stdout)
    }
}

fn credentials_match(expected: &BasicAuth, header: &str) -> bool {
    let Some(encoded) = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(decoded) = BASE64.decode(encoded.trim()) else {
        return false;
    };
    decoded == format!("{}:{}", expected.username, expected.password).as_bytes()
}

fn read_head(reader: &mut impl BufRead) -> Result<Option<Request>> {
    let mut line = String::new();
    if reader
        .read_line(&mut line)
        .context("reading the request line")?
        == 0
    {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        bail!("malformed HTTP request line {line:?}");
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers: Vec::new(),
    };
    loop {
        let mut header = String::new();
        reader
            .read_line(&mut header)
            .context("reading request headers")?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            request
                .headers
                .push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    Ok(Some(request))
}

fn read_body(reader: &mut impl BufRead, request: &Request) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    if request
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size_line = String::new();
            reader
                .read_line(&mut size_line)
                .context("reading a chunk size")?;
            let size_hex = size_line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_hex, 16)
                .with_context(|| format!("malformed chunk size {size_line:?}"))?;
            if size == 0 {
                // Trailers (normally none) end with an empty line.
                let mut trailer = String::new();
                while reader.read_line(&mut trailer)? > 0 && trailer.trim_end() != "" {
                    trailer.clear();
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader
                .read_exact(&mut body[start..])
                .context("reading a chunk")?;
            let mut crlf = [0u8; 2];
            reader
                .read_exact(&mut crlf)
                .context("reading a chunk terminator")?;
        }
    } else if let Some(length) = request.header("content-length") {
        let length: usize = length
            .parse()
            .with_context(|| format!("malformed Content-Length {length:?}"))?;
        body.resize(length, 0);
        reader
            .read_exact(&mut body)
            .context("reading the request body")?;
    }
    Ok(body)
}

/// Turns CGI output (headers, blank line, body) into an HTTP/1.1 response.
fn cgi_to_http(output: &[u8]) -> Result<Vec<u8>> {
    let (head, body) = split_cgi(output)
        .ok_or_else(|| anyhow!("git http-backend output has no header terminator"))?;
    let head = String::from_utf8_lossy(head);
    let mut status = "200 OK".to_owned();
    let mut headers = String::new();
    for line in head.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("status") => {
                status = value.trim().to_owned();
            }
            _ => {
                headers.push_str(line);
                headers.push_str("\r\n");
            }
        }
    }
    let mut response = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    Ok(response)
}

fn split_cgi(output: &[u8]) -> Option<(&[u8], &[u8])> {
    let crlf = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    let lf = output.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let (at, len) = match (crlf, lf) {
        (Some(a), Some(b)) => {
            if a.0 < b.0 {
                a
            } else {
                b
            }
        }
        (a, b) => a.or(b)?,
    };
    Some((&output[..at], &output[at + len..]))
}
