//! Support code shared by the end-to-end tests in `tests/` and the benches in `benches/`.

pub mod local_http;
pub mod plugins;
