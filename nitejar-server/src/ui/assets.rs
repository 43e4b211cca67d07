//! `/admin/assets/{file}`: the stylesheet, compiled into the binary.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const ADMIN_CSS: &str = include_str!("../../assets/admin.css");

pub async fn asset(file: web::Path<String>) -> HttpResponse {
    match file.as_str() {
        "admin.css" => HttpResponse::Ok()
            .content_type("text/css; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(ADMIN_CSS),
        _ => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such asset"),
    }
}
