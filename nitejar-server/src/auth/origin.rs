//! Is a state-changing request from this site? A browser says where a request comes from in
//! `Sec-Fetch-Site`, `Origin` and `Referer`; a form on another site that posts here must be refused
//! even when the browser attaches the operator's cookie.
//!
//! "This site" is the host the request was sent to (`Host`, or `X-Forwarded-Host` behind a proxy —
//! neither can be set by a cross-site form) or the host of `NITEJAR_PUBLIC_URL`. Requests that carry
//! none of the three headers (scripts, curl) pass this check; they still need the CSRF token.

use actix_web::http::header::{HeaderMap, HOST, ORIGIN, REFERER};

/// Why a request was judged cross-site.
#[derive(Debug, PartialEq, Eq)]
pub struct CrossSite(pub String);

/// Checks the request's provenance headers against the hosts this server answers as.
pub fn check_same_site(headers: &HeaderMap, public: Option<&url::Url>) -> Result<(), CrossSite> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return Err(CrossSite(format!("Sec-Fetch-Site is {site}")));
        }
    }
    let source = match (header(ORIGIN.as_str()), header(REFERER.as_str())) {
        (Some(origin), _) => origin,
        (None, Some(referer)) => referer,
        (None, None) => return Ok(()),
    };
    let Some((scheme, host, port)) = authority_of_url(source) else {
        return Err(CrossSite(format!("the request came from `{source}`")));
    };
    let default_port = if scheme == "https" { 443 } else { 80 };
    let mut own: Vec<(String, u16)> = Vec::new();
    for name in [HOST.as_str(), "x-forwarded-host"] {
        if let Some(value) = header(name) {
            for one in value.split(',') {
                if let Some(a) = authority_of_host(one.trim(), default_port) {
                    own.push(a);
                }
            }
        }
    }
    if let Some(url) = public {
        if let (Some(h), Some(p)) = (url.host_str(), url.port_or_known_default()) {
            own.push((h.to_ascii_lowercase(), p));
        }
    }
    if own.iter().any(|(h, p)| *h == host && *p == port) {
        Ok(())
    } else {
        Err(CrossSite(format!(
            "the request came from {scheme}://{host}:{port}, another site"
        )))
    }
}

fn authority_of_url(text: &str) -> Option<(String, String, u16)> {
    let url = url::Url::parse(text).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    Some((
        url.scheme().to_owned(),
        url.host_str()?.to_ascii_lowercase(),
        url.port_or_known_default()?,
    ))
}

fn authority_of_host(value: &str, default_port: u16) -> Option<(String, u16)> {
    let url = url::Url::parse(&format!("http://{value}/")).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    Some((host, url.port().unwrap_or(default_port)))
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                map.append(name, value);
            }
        }
        map
    }

    #[test]
    fn same_origin_posts_pass() {
        let h = headers(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "http://127.0.0.1:3000"),
        ]);
        assert_eq!(check_same_site(&h, None), Ok(()));
        let h = headers(&[
            ("host", "nj.example.com"),
            ("origin", "https://nj.example.com"),
        ]);
        assert_eq!(check_same_site(&h, None), Ok(()));
        let h = headers(&[
            ("host", "nj.example.com"),
            ("referer", "https://nj.example.com/admin/x"),
        ]);
        assert_eq!(check_same_site(&h, None), Ok(()));
        // Behind a proxy that rewrites Host, the public URL names the site.
        let public = url::Url::parse("https://nj.example.com").ok();
        let h = headers(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "https://nj.example.com"),
        ]);
        assert_eq!(check_same_site(&h, public.as_ref()), Ok(()));
        // No provenance headers at all: a script; the CSRF token still applies.
        assert_eq!(check_same_site(&headers(&[("host", "x")]), None), Ok(()));
    }

    #[test]
    fn cross_site_posts_fail() {
        for pairs in [
            vec![
                ("host", "127.0.0.1:3000"),
                ("origin", "http://evil.example"),
            ],
            vec![
                ("host", "127.0.0.1:3000"),
                ("origin", "http://127.0.0.1:3001"),
            ],
            vec![("host", "127.0.0.1:3000"), ("origin", "null")],
            vec![
                ("host", "127.0.0.1:3000"),
                ("referer", "https://evil.example/x"),
            ],
            vec![("host", "127.0.0.1:3000"), ("sec-fetch-site", "cross-site")],
            vec![("host", "127.0.0.1:3000"), ("sec-fetch-site", "same-site")],
        ] {
            assert!(
                check_same_site(&headers(&pairs), None).is_err(),
                "{pairs:?}"
            );
        }
    }
}
