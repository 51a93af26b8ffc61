/// Six hex digits, to keep the names of parallel tests' resources apart.
pub fn short_id() -> String {
    hex(6)
}

/// `<prefix>-<8 hex digits>`: a name no other running test picks.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", hex(8))
}

fn hex(digits: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..digits].to_owned()
}
