//! The control plane's embedded etcd, reached directly through its gRPC gateway (JSON over
//! plain HTTP on the client port), for fault tests that need what only etcd can do: advance
//! its revision and compact history away under the API server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use serde_json::{Value, json};

pub struct Etcd {
    /// `host:port` of the client URL.
    addr: String,
}

impl Etcd {
    /// `url` as the control plane writes it to `<dir>/etcd-url`: `http://127.0.0.1:PORT`.
    pub fn new(url: &str) -> Result<Self> {
        let addr = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("etcd URL {url:?} is not http://"))?
            .trim_end_matches('/')
            .to_string();
        Ok(Self { addr })
    }

    /// Writes `key` (a key no API server reads) and returns the revision that write made.
    pub fn put(&self, key: &str, value: &str) -> Result<i64> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let answer = self.post(
            "/v3/kv/put",
            &json!({"key": b64.encode(key), "value": b64.encode(value)}),
        )?;
        revision(&answer)
    }

    /// Compacts away every revision before `revision` (physically, so a read at an older one
    /// fails at once).
    pub fn compact(&self, revision: i64) -> Result<()> {
        self.post(
            "/v3/kv/compaction",
            &json!({"revision": revision.to_string(), "physical": true}),
        )?;
        Ok(())
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let body = body.to_string();
        let what = || format!("POST {path} to etcd at {}", self.addr);
        let mut stream = TcpStream::connect(&self.addr).with_context(what)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        // HTTP/1.0: the gateway closes the connection after the answer, so it ends the read.
        write!(
            stream,
            "POST {path} HTTP/1.0\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .with_context(what)?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).with_context(what)?;
        let (head, json) = answer
            .split_once("\r\n\r\n")
            .ok_or_else(|| anyhow!("{}: no HTTP answer: {answer:?}", what()))?;
        if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
            bail!("{}: {head}\n{json}", what());
        }
        serde_json::from_str(json).with_context(|| format!("{}: {json}", what()))
    }
}

fn revision(answer: &Value) -> Result<i64> {
    answer["header"]["revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| anyhow!("etcd answered without a header revision: {answer}"))
}
