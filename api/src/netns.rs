//! Listening inside another network namespace: the metadata service must be
//! reachable where the guests' bridges are, which may not be where this
//! process runs.

use std::io;
use std::net::TcpListener;

use nix::sched::{CloneFlags, setns};

/// Binds `address` inside the network namespace `netns` (made by
/// `ip netns add`); the socket stays there while this process does not.
pub fn bind_in(netns: &str, address: &str) -> io::Result<TcpListener> {
    let path = format!("/run/netns/{netns}");
    let address = address.to_owned();
    // A thread of its own enters the namespace and ends; no other thread's
    // sockets move.
    std::thread::spawn(move || -> io::Result<TcpListener> {
        let handle = std::fs::File::open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
        setns(&handle, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        let listener = TcpListener::bind(&address)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")))
}
