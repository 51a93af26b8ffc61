use std::net::TcpListener;

/// A loopback TCP port free now (another process may still take it before
/// the test binds it: bind it soon).
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct loopback ports free now: held together while chosen, so the
/// kernel cannot hand the same one out twice.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port"))
        .collect();
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&held) {
        *port = listener.local_addr().expect("local address").port();
    }
    ports
}

/// A free loopback port below 40000 whose companion `port + offset` is free
/// too (RabbitMQ derives its distribution port that way).
pub fn free_port_with_companion(offset: u16) -> u16 {
    loop {
        let port = free_port();
        if port > 40_000 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + offset)).is_ok() {
            return port;
        }
    }
}
