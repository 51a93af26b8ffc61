//! Public addresses on the network host: the NAT that maps each to its instance's fixed IP.
