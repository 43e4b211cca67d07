//! HTTP routes.

use actix_web::web;

mod health;
mod webhooks;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    webhooks::configure(cfg);
}
