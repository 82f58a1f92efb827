//! Just enough HTTP/1.1: read one request with a `Content-Length` body, write one response.

use std::io::{self, Read, Write};

use crate::request::{Client, Request, Response};

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body accepted.
const MAX_BODY: usize = 1024 * 1024;
const MAX_HEADERS: usize = 64;

/// A request as read off the wire.
#[derive(Debug)]
pub(crate) struct HttpRequest {
    pub(crate) method: String,
    /// The request target as sent: path and query.
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// HTTP/1.1 without `Connection: close`.
    pub(crate) keep_alive: bool,
    /// The request head as received when it asks for `Upgrade: websocket`, to replay into the WebSocket
    /// handshake.
    pub(crate) upgrade_head: Option<Vec<u8>>,
}

impl HttpRequest {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request for the services, from `client`.
    pub(crate) fn into_request(self, client: Client) -> Request {
        let (path, query) = match self.target.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (self.target, String::new()),
        };
        Request {
            method: self.method,
            path,
            query,
            headers: self.headers,
            body: self.body,
            client,
        }
    }
}

/// A request that cannot be read: answered with `status` and the connection closed.
#[derive(Debug)]
pub(crate) enum ReadError {
    Malformed { status: u16, message: String },
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

fn malformed(status: u16, message: impl Into<String>) -> ReadError {
    ReadError::Malformed {
        status,
        message: message.into(),
    }
}

/// Read the next request from `stream`; `buf` keeps bytes that arrived after it. `Ok(None)` when the peer
/// closed the connection between requests.
pub(crate) fn read_request<R: Read>(stream: &mut R, buf: &mut Vec<u8>) -> Result<Option<HttpRequest>, ReadError> {
    let (head_len, mut request, content_length) = loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let (request, length) = build(&parsed)?;
                break (n, request, length);
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() > MAX_HEAD {
                    return Err(malformed(431, format!("request head exceeds {MAX_HEAD} bytes")));
                }
                if fill(stream, buf)? == 0 {
                    return if buf.is_empty() {
                        Ok(None)
                    } else {
                        Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-request").into())
                    };
                }
            }
            Err(e) => return Err(malformed(400, format!("malformed HTTP request: {e}"))),
        }
    };
    while buf.len() < head_len + content_length {
        if fill(stream, buf)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-body").into());
        }
    }
    if request
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    {
        request.upgrade_head = Some(buf[..head_len].to_vec());
    }
    request.body = buf[head_len..head_len + content_length].to_vec();
    buf.drain(..head_len + content_length);
    Ok(Some(request))
}

fn fill<R: Read>(stream: &mut R, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A peer that closes without close_notify is treated as a plain close.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
    }
}

/// The path and query of a request target: an absolute-form target (`https://host:port/path?query`, as
/// some clients send through a proxy tunnel; RFC 9112 3.2.2 says servers must accept it) loses its scheme
/// and authority.
fn origin_form(target: &str) -> &str {
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let Some(rest) = ["https://", "http://"]
        .iter()
        .find(|p| lower.starts_with(*p))
        .and_then(|p| target.get(p.len()..))
    else {
        return target;
    };
    rest.find('/').map_or("/", |i| &rest[i..])
}

fn build(parsed: &httparse::Request<'_, '_>) -> Result<(HttpRequest, usize), ReadError> {
    let method = parsed.method.unwrap_or_default().to_string();
    let target = origin_form(parsed.path.unwrap_or_default()).to_string();
    let mut headers = Vec::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let value =
            std::str::from_utf8(h.value).map_err(|_| malformed(400, format!("header {} is not UTF-8", h.name)))?;
        headers.push((h.name.to_string(), value.trim().to_string()));
    }
    let mut request = HttpRequest {
        method,
        target,
        headers,
        body: Vec::new(),
        keep_alive: false,
        upgrade_head: None,
    };
    if request.header("transfer-encoding").is_some() {
        return Err(malformed(
            411,
            "chunked request bodies are not supported: send Content-Length",
        ));
    }
    let length = match request.header("content-length") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| malformed(400, format!("bad Content-Length {v:?}")))?,
    };
    if length > MAX_BODY {
        return Err(malformed(413, format!("request body exceeds {MAX_BODY} bytes")));
    }
    let close = request
        .header("connection")
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
    request.keep_alive = parsed.version == Some(1) && !close;
    Ok((request, length))
}

/// Write `response` as HTTP/1.1 (a `204` without a body or `Content-Length`, as RFC 9110 says).
pub(crate) fn write_response<W: Write>(w: &mut W, response: &Response, keep_alive: bool) -> io::Result<()> {
    let mut head = if response.status == 204 {
        format!("HTTP/1.1 204 {}\r\n", reason(204))
    } else {
        format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
            response.status,
            reason(response.status),
            response.body.len()
        )
    };
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut out = head.into_bytes();
    out.extend_from_slice(&response.body);
    w.write_all(&out)?;
    w.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        412 => "Precondition Failed",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pipelined_requests_and_bodies() {
        let data = b"PUT /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nConnection: close\r\n\r\n";
        let mut src = &data[..];
        let mut buf = Vec::new();
        let first = read_request(&mut src, &mut buf).unwrap().unwrap();
        assert_eq!((first.method.as_str(), first.target.as_str()), ("PUT", "/a"));
        assert_eq!(first.body, b"abc");
        assert!(first.keep_alive);
        let second = read_request(&mut src, &mut buf).unwrap().unwrap();
        assert_eq!((second.method.as_str(), second.target.as_str()), ("GET", "/b"));
        assert!(!second.keep_alive);
        assert!(read_request(&mut src, &mut buf).unwrap().is_none());
    }

    #[test]
    fn absolute_form_targets_keep_their_path_and_query() {
        let data = b"GET https://127.0.0.1:443/s/registrations/d/operations/x?api-version=1 HTTP/1.1\r\n\r\n";
        let request = read_request(&mut &data[..], &mut Vec::new()).unwrap().unwrap();
        assert_eq!(request.target, "/s/registrations/d/operations/x?api-version=1");
        assert_eq!(origin_form("HTTP://h"), "/");
        assert_eq!(origin_form("/a?b"), "/a?b");
    }

    #[test]
    fn rejects_bad_requests() {
        for (data, status) in [
            (&b"PUT /a HTTP/1.1\r\nContent-Length: x\r\n\r\n"[..], 400),
            (&b"PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..], 411),
            (&b"PUT /a HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"[..], 413),
            (&b"\x01\x02 garbage\r\n\r\n"[..], 400),
        ] {
            let mut src = data;
            match read_request(&mut src, &mut Vec::new()) {
                Err(ReadError::Malformed { status: s, .. }) => assert_eq!(s, status),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn truncated_body_is_an_io_error() {
        let mut src = &b"PUT /a HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"[..];
        assert!(matches!(read_request(&mut src, &mut Vec::new()), Err(ReadError::Io(_))));
    }
}
