//! `ccs sandbox-init SOCKET PORT -- PROGRAM ARGS…`: the first process of a
//! bubblewrap sandbox that may reach hosts ([`super::sandbox`]).
//!
//! The sandbox has no network but its own loopback; the worker's egress
//! proxy listens on a Unix socket bound into it. This listens on
//! `127.0.0.1:PORT` (before the agent starts, so the agent never races it),
//! relays every connection to `SOCKET`, runs the agent with its stdio, and
//! exits with the agent's status. It runs inside the sandbox with the
//! agent's rights; it holds no secret and decides nothing: the proxy on the
//! other side of the socket does every check. Plain threads, no runtime.
//!
//! Dispatched by [`crate::cli`] before anything else is set up (no
//! database, no logging, no configuration read).

use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, ExitCode};

/// Runs the relay and the agent; `args` are what follows `sandbox-init`.
pub fn main(args: &[String]) -> ExitCode {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ccs sandbox-init: {e}");
            ExitCode::from(126)
        }
    }
}

fn run(args: &[String]) -> io::Result<ExitCode> {
    let [socket, port, dashdash, program, rest @ ..] = args else {
        return Err(io::Error::other(
            "usage: sandbox-init SOCKET PORT -- PROGRAM ARGS…",
        ));
    };
    if dashdash != "--" {
        return Err(io::Error::other("expected -- before the program"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| io::Error::other(format!("bad port {port:?}")))?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
    let socket = socket.clone();
    std::thread::spawn(move || accept_loop(&listener, &socket));
    let status = Command::new(program).args(rest).status()?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(signal)) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(255)),
        (None, None) => ExitCode::FAILURE,
    })
}

fn accept_loop(listener: &TcpListener, socket: &str) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let socket = socket.to_owned();
        std::thread::spawn(move || {
            if let Ok(upstream) = UnixStream::connect(&socket) {
                let _ = relay(conn, upstream);
            }
        });
    }
}

/// Copies both ways until either side closes.
fn relay(client: TcpStream, upstream: UnixStream) -> io::Result<()> {
    let (mut client_r, mut client_w) = (client.try_clone()?, client);
    let (mut up_r, mut up_w) = (upstream.try_clone()?, upstream);
    let back = std::thread::spawn(move || {
        let _ = io::copy(&mut up_r, &mut client_w);
        let _ = client_w.shutdown(std::net::Shutdown::Write);
    });
    let _ = io::copy(&mut client_r, &mut up_w);
    let _ = up_w.shutdown(std::net::Shutdown::Write);
    let _ = back.join();
    Ok(())
}
