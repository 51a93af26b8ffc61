//! apache-libcloud's EC2 driver, unchanged, against a cloud on real guests.
