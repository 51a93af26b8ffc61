//! `stratus bench rpc`.
