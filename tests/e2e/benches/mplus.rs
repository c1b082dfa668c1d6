//! Placeholder until the connector lands.
fn main() {}
