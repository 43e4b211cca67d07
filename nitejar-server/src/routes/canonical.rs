//! One spelling per path: requests whose path is not in canonical form are refused with 400 before
//! anything else looks at them.
//!
//! The router matches a percent-decoded path, while a check written against the raw path sees
//! another string: `/%61pi/admin/runtime` is not "under `/api`" to the raw eye, yet it routes to an
//! admin handler. Rather than normalise (and keep two spellings of every path alive in logs, links
//! and proxies' rules), the server accepts exactly one spelling of each path and refuses the rest,
//! for every route, webhooks included. No client of this server produces the refused forms: browsers
//! and HTTP libraries send canonical paths.
//!
//! A path is canonical when:
//!
//! 1. it starts with `/` and has no empty segment: no `//`, no trailing `/` (the root `/` alone is
//!    fine);
//! 2. no segment is `.` or `..`;
//! 3. every byte is an unreserved character (`A-Z a-z 0-9 - . _ ~`), one of `! $ & ' ( ) * + , = : @`,
//!    a `/` between segments, or the start of a percent escape; `;` (path parameters) and anything
//!    else (`\`, `"`, `{`, bytes past ASCII, …) are refused;
//! 4. a percent escape is `%` and two upper-case hex digits, encoding a byte that has to be escaped:
//!    never an unreserved character (`%61` for `a`, `%2E` for `.`), never a control character
//!    (`%00`-`%1F`, `%7F`).
//!
//! Escapes of other bytes are data inside their segment. In particular `%2F` is a `/` *inside* one
//! segment — how skill ids such as `plugin:acme.ops/runbook` travel in a URL — and never a
//! separator: neither the router nor the auth guard splits on it, so `/api%2Fadmin%2Fruntime` is a
//! single segment that matches no route.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::HttpResponse;

use crate::api::error::ApiError;

/// Why a path is not canonical.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NonCanonical {
    /// It does not start with `/`.
    NotAbsolute,
    /// `//` or a trailing `/`.
    EmptySegment,
    /// A `.` or `..` segment.
    DotSegment,
    /// `;` starts path parameters, which no route takes.
    PathParameter,
    /// A byte that must be percent-encoded, or cannot appear at all.
    Character(u8),
    /// `%` not followed by two hex digits.
    BrokenEscape,
    /// `%2f` rather than `%2F`.
    LowerCaseEscape,
    /// `%61` rather than `a`.
    EscapedUnreserved(u8),
    /// `%00` and the other control characters.
    ControlCharacter(u8),
}

impl std::fmt::Display for NonCanonical {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NonCanonical::NotAbsolute => write!(f, "it does not start with /"),
            NonCanonical::EmptySegment => {
                write!(f, "it has an empty segment (// or a trailing /)")
            }
            NonCanonical::DotSegment => write!(f, "it has a . or .. segment"),
            NonCanonical::PathParameter => write!(f, "it has a ; parameter"),
            NonCanonical::Character(b) if b.is_ascii_graphic() => {
                write!(f, "it has the character `{}` unescaped", char::from(*b))
            }
            NonCanonical::Character(b) => write!(f, "it has the byte 0x{b:02X} unescaped"),
            NonCanonical::BrokenEscape => write!(f, "a % is not followed by two hex digits"),
            NonCanonical::LowerCaseEscape => {
                write!(f, "a percent escape uses lower-case hex digits")
            }
            NonCanonical::EscapedUnreserved(b) => write!(
                f,
                "`{}` is percent-encoded; it is written as itself",
                char::from(*b)
            ),
            NonCanonical::ControlCharacter(b) => {
                write!(f, "it encodes the control character 0x{b:02X}")
            }
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Bytes a segment may hold as themselves (RFC 3986 `pchar` without `;` and without escapes).
fn is_plain(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@'
        )
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Checks that `path` (the raw path of the request target, without the query) is canonical.
pub fn check(path: &str) -> Result<(), NonCanonical> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(NonCanonical::NotAbsolute);
    };
    if rest.is_empty() {
        return Ok(());
    }
    for segment in rest.split('/') {
        check_segment(segment.as_bytes())?;
    }
    Ok(())
}

fn check_segment(segment: &[u8]) -> Result<(), NonCanonical> {
    match segment {
        b"" => return Err(NonCanonical::EmptySegment),
        b"." | b".." => return Err(NonCanonical::DotSegment),
        _ => {}
    }
    let mut i = 0;
    while i < segment.len() {
        let b = segment[i];
        if b == b'%' {
            let (Some(&hi), Some(&lo)) = (segment.get(i + 1), segment.get(i + 2)) else {
                return Err(NonCanonical::BrokenEscape);
            };
            let (Some(h), Some(l)) = (hex_value(hi), hex_value(lo)) else {
                return Err(NonCanonical::BrokenEscape);
            };
            let byte = h * 16 + l;
            if is_unreserved(byte) {
                return Err(NonCanonical::EscapedUnreserved(byte));
            }
            if byte < 0x20 || byte == 0x7F {
                return Err(NonCanonical::ControlCharacter(byte));
            }
            if hi.is_ascii_lowercase() || lo.is_ascii_lowercase() {
                return Err(NonCanonical::LowerCaseEscape);
            }
            i += 3;
            continue;
        }
        if b == b';' {
            return Err(NonCanonical::PathParameter);
        }
        if !is_plain(b) {
            return Err(NonCanonical::Character(b));
        }
        i += 1;
    }
    Ok(())
}

/// The canonical spelling of a refused path, when it has one (to tell the client what to request
/// instead): unreserved characters unescaped, escapes in upper case, `;` parameters, empty and `.`
/// segments dropped, `..` applied. `None` when the path holds something no spelling can carry
/// (a control character, a broken escape, a byte that is not allowed).
pub fn suggestion(path: &str) -> Option<String> {
    let rest = path.strip_prefix('/')?;
    let mut segments: Vec<String> = Vec::new();
    for raw in rest.split('/') {
        let raw = raw.split(';').next().unwrap_or("");
        let mut segment = String::with_capacity(raw.len());
        let bytes = raw.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'%' {
                let h = hex_value(*bytes.get(i + 1)?)?;
                let l = hex_value(*bytes.get(i + 2)?)?;
                let byte = h * 16 + l;
                if byte < 0x20 || byte == 0x7F {
                    return None;
                }
                if is_unreserved(byte) {
                    segment.push(char::from(byte));
                } else {
                    segment.push_str(&format!("%{byte:02X}"));
                }
                i += 3;
                continue;
            }
            if !is_plain(b) {
                return None;
            }
            segment.push(char::from(b));
            i += 1;
        }
        match segment.as_str() {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    Some(format!("/{}", segments.join("/")))
}

/// The middleware (`actix_web::middleware::from_fn(refuse_non_canonical)`), in front of the auth
/// guard and the router.
pub async fn refuse_non_canonical(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let path = req.path();
    let Err(why) = check(path) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let suggestion = suggestion(path);
    let message = match &suggestion {
        Some(s) => {
            format!("The request path is not in canonical form: {why}. Request {s} instead.")
        }
        None => format!("The request path is not in canonical form: {why}."),
    };
    let shown = suggestion.as_deref().unwrap_or(path);
    let api = shown == "/api" || shown.starts_with("/api/") || shown == "/metrics";
    let response = if api {
        HttpResponse::BadRequest()
            .json(ApiError::new(StatusCode::BAD_REQUEST, "non_canonical_path", message).body())
    } else {
        crate::ui::error_page(StatusCode::BAD_REQUEST, &message)
    };
    Ok(req.into_response(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_pass() {
        for path in [
            "/",
            "/admin",
            "/api/admin/runtime",
            "/api/openapi.json",
            "/admin/skills/plugin%3Aacme.ops%2FRun%20Book",
            "/admin/skills/repo:ops",
            "/api/admin/skills/%C3%A9t%C3%A9",
            "/api/webhooks/plugins/telegram/0190a6c2-7f0e-7c3a-9c1e-4b6a0d3e2f11",
            "/a/b~c/d-e_f/%25/%2B+",
        ] {
            assert_eq!(check(path), Ok(()), "{path}");
        }
    }

    #[test]
    fn other_spellings_are_refused_with_the_reason() {
        use NonCanonical::*;
        for (path, why) in [
            ("api/admin", NotAbsolute),
            ("", NotAbsolute),
            ("*", NotAbsolute),
            ("/%61pi/admin/runtime", EscapedUnreserved(b'a')),
            ("/%41pi", EscapedUnreserved(b'A')),
            ("/api/admin/runtim%65", EscapedUnreserved(b'e')),
            ("/api/openapi%2Ejson", EscapedUnreserved(b'.')),
            ("/api/openapi%2ejson", EscapedUnreserved(b'.')),
            ("/api/admin/%2E%2E/admin", EscapedUnreserved(b'.')),
            ("/api//admin/runtime", EmptySegment),
            ("//api/admin/runtime", EmptySegment),
            ("/api/admin/runtime/", EmptySegment),
            ("/admin/", EmptySegment),
            ("/api/./admin/runtime", DotSegment),
            ("/api/x/../admin/runtime", DotSegment),
            ("/api/admin/runtime/..", DotSegment),
            ("/api/admin/runtime;x=1", PathParameter),
            ("/api;/admin/runtime", PathParameter),
            ("/api/admin/runtime%00", ControlCharacter(0)),
            ("/api/admin/runtime%0A", ControlCharacter(0x0A)),
            ("/api/admin/runtime%7F", ControlCharacter(0x7F)),
            ("/api/admin/skills/a%2fb", LowerCaseEscape),
            ("/api/admin/skills/a%c3%a9", LowerCaseEscape),
            ("/api/admin/runtime%", BrokenEscape),
            ("/api/admin/runtime%2", BrokenEscape),
            ("/api/admin/runtime%zz", BrokenEscape),
            ("/api\\admin", Character(b'\\')),
            ("/api/admin/{id}", Character(b'{')),
            ("/api/admin/\u{e9}", Character(0xC3)),
        ] {
            assert_eq!(check(path), Err(why), "{path}");
        }
    }

    #[test]
    fn refused_paths_name_their_canonical_spelling() {
        for (path, expected) in [
            ("/%61pi/admin/runtime", Some("/api/admin/runtime")),
            ("/api//admin/./runtime/", Some("/api/admin/runtime")),
            ("/api/x/../admin/runtime;x=1", Some("/api/admin/runtime")),
            ("/admin/", Some("/admin")),
            ("/admin/skills/a%2fb", Some("/admin/skills/a%2Fb")),
            ("/../..", Some("/")),
            ("/api/admin/runtime%00", None),
            ("/api/admin/%zz", None),
            ("/api\\admin", None),
        ] {
            assert_eq!(suggestion(path).as_deref(), expected, "{path}");
            if let Some(s) = expected {
                assert_eq!(check(s), Ok(()), "the suggestion {s} is canonical");
            }
        }
    }
}
