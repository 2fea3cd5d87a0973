//! `@fetch=URL`, `@fetch-direct=URL` and `@serve=PORT`: plain HTTP with
//! `std::net` only, for tests of the Docker runner's egress allow-list.
//!
//! `@fetch` goes through the proxy named by `HTTP_PROXY` (or `http_proxy`)
//! when one is set — an absolute-form request line, as curl sends it — and
//! straight to the host otherwise; `@fetch-direct` always goes straight to the
//! host. Host names are looked up in `/etc/hosts` first (a static binary in a
//! `FROM scratch` image has no NSS modules), then with the system resolver.
//!
//! The outcome becomes one line of the result text:
//! `FETCH <url> -> <status> <first line of the body>` or
//! `FETCH <url> -> error: <why>`. A failed fetch does not fail the run.
//!
//! `@serve=PORT` makes the agent an HTTP server instead: after the init line
//! it answers every request on `0.0.0.0:PORT` with `200` and the body
//! `hello from ccs-test-agent <path>`, until it is killed. Run as a container
//! on Docker's default bridge, it stands for a host on the internet.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long a connection attempt and each read or write may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The most of a response that is read.
const MAX_RESPONSE: u64 = 64 * 1024;

/// Fetches `url` and describes the outcome in one line.
pub fn fetch_line(url: &str, use_proxy: bool) -> String {
    let proxy = if use_proxy { proxy_from_env() } else { None };
    match fetch(url, proxy.as_deref()) {
        Ok((status, body)) => {
            let first = body.lines().next().unwrap_or_default().trim();
            format!("FETCH {url} -> {status} {first}")
                .trim_end()
                .to_string()
        }
        Err(why) => format!("FETCH {url} -> error: {why}"),
    }
}

fn proxy_from_env() -> Option<String> {
    ["HTTP_PROXY", "http_proxy"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// Serves `hello from ccs-test-agent <path>` on `0.0.0.0:port`, forever.
pub fn serve(port: u16) -> Result<(), String> {
    let listener = std::net::TcpListener::bind(("0.0.0.0", port))
        .map_err(|e| format!("ccs-test-agent: @serve={port}: {e}"))?;
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        std::thread::spawn(move || {
            let _ = conn.set_read_timeout(Some(TIMEOUT));
            let mut buf = [0u8; 8192];
            let n = conn.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request
                .lines()
                .next()
                .and_then(|line| line.split_whitespace().nth(1))
                .unwrap_or("/");
            let body = format!("hello from ccs-test-agent {path}\n");
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(response.as_bytes());
        });
    }
    Ok(())
}

/// `http://host[:port]/path` split into host, port and path.
fn parse_http_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http:// URL: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .map_err(|_| format!("bad port in {url}"))?,
        ),
        None => (authority, 80),
    };
    if host.is_empty() {
        return Err(format!("no host in {url}"));
    }
    Ok((host.to_string(), port, path.to_string()))
}

/// The status code and body of a GET of `url`, directly or via `proxy`.
fn fetch(url: &str, proxy: Option<&str>) -> Result<(u16, String), String> {
    let (host, port, path) = parse_http_url(url)?;
    let (connect_host, connect_port, request_target) = match proxy {
        Some(proxy) => {
            let (proxy_host, proxy_port, _) = parse_http_url(proxy)?;
            (proxy_host, proxy_port, url.to_string())
        }
        None => (host.clone(), port, path),
    };
    let addr = resolve(&connect_host, connect_port)?;
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let host_header = if port == 80 {
        host
    } else {
        format!("{host}:{port}")
    };
    let request = format!(
        "GET {request_target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: ccs-test-agent\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| "not an HTTP response".to_string())?;
    Ok((status, body.to_string()))
}

/// The address of `host`: an IP literal, an `/etc/hosts` entry, or the
/// system resolver's first answer.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if let Some(ip) = std::fs::read_to_string("/etc/hosts")
        .ok()
        .and_then(|hosts| hosts_lookup(&hosts, host))
    {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {host}: no address"))
}

/// The first address `/etc/hosts` text gives `host`.
fn hosts_lookup(hosts: &str, host: &str) -> Option<IpAddr> {
    hosts.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let ip = fields.next()?.parse::<IpAddr>().ok()?;
        fields
            .any(|name| name.eq_ignore_ascii_case(host))
            .then_some(ip)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split() {
        assert_eq!(
            parse_http_url("http://a.test:8080/x?y").unwrap(),
            ("a.test".to_string(), 8080, "/x?y".to_string())
        );
        assert_eq!(
            parse_http_url("http://b").unwrap(),
            ("b".to_string(), 80, "/".to_string())
        );
        assert!(parse_http_url("https://b/").is_err());
        assert!(parse_http_url("http://:80/").is_err());
        assert!(parse_http_url("http://a:x/").is_err());
    }

    #[test]
    fn hosts_file_lookup() {
        let hosts = "127.0.0.1 localhost\n# 10.0.0.1 commented.test\n172.17.0.1\tallowed.test blocked.test # both\n";
        assert_eq!(
            hosts_lookup(hosts, "blocked.test"),
            Some("172.17.0.1".parse().unwrap())
        );
        assert_eq!(hosts_lookup(hosts, "commented.test"), None);
        assert_eq!(
            hosts_lookup(hosts, "LOCALHOST"),
            Some("127.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn fetches_from_a_local_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = conn.read(&mut buf).unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n")
                .unwrap();
            request
        });
        let line = fetch_line(&format!("http://{addr}/path"), false);
        assert_eq!(line, format!("FETCH http://{addr}/path -> 200 hello"));
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /path HTTP/1.1\r\n"), "{request}");

        // Through a "proxy": the request line carries the absolute URL.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = conn.read(&mut buf).unwrap();
            conn.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\nrefused by policy\n")
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).to_string()
        });
        let result = fetch("http://far.test:81/x", Some(&format!("http://{proxy}")));
        assert_eq!(result.unwrap(), (403, "refused by policy\n".to_string()));
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET http://far.test:81/x HTTP/1.1\r\nHost: far.test:81\r\n"),
            "{request}"
        );
    }

    #[test]
    fn connection_errors_are_described() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let line = fetch_line(&format!("http://{addr}/"), false);
        assert!(line.contains("-> error: connect"), "{line}");
    }
}
