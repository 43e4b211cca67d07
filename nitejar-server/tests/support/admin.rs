//! Talking to the admin surface of a test server: the bearer API, and a signed-in browser-like
//! session (cookies and CSRF tokens handled by hand, redirects not followed).

use reqwest::{Client, Method};
use serde_json::Value;

use super::{DataDir, Server};

/// The admin token every admin test server is started with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// Starts a server with [`ADMIN_TOKEN`] and `env`.
pub fn start_admin(data: &DataDir, env: &[(&str, String)]) -> Server {
    let mut all = vec![("NITEJAR_ADMIN_TOKEN", ADMIN_TOKEN.to_owned())];
    all.extend(env.iter().cloned());
    Server::start(data, &all)
}

/// A client that does not follow redirects (the tests look at them).
pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The value a `Set-Cookie` gives cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies().iter().find_map(|c| {
            let first = c.split(';').next()?;
            let (k, v) = first.split_once('=')?;
            (k.trim() == name).then(|| v.trim().to_owned())
        })
    }
}

/// Reads a response whole.
pub async fn read(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    Answer {
        status,
        headers,
        text,
    }
}

/// Sends a request; `bearer` and `body` (JSON) are optional.
pub async fn call(
    server: &Server,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let mut req = client().request(method, server.url(path));
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    read(req.send().await.expect("request")).await
}

/// `call` with the admin token.
pub async fn api(server: &Server, method: Method, path: &str, body: Option<&Value>) -> Answer {
    call(server, method, path, Some(ADMIN_TOKEN), body).await
}

/// The value of the first `<input … name="{name}" value="…">` in a page.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

/// URL-encodes a form.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// A signed-in admin UI session.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
    pub origin: String,
}

impl Session {
    /// Signs in through the sign-in form, as a browser would.
    pub async fn sign_in(server: &Server) -> Session {
        Session::sign_in_with(server, ADMIN_TOKEN).await
    }

    /// Signs in with `token` through the sign-in form.
    pub async fn sign_in_with(server: &Server, token: &str) -> Session {
        let origin = server.url("");
        let page = read(
            client()
                .get(server.url("/admin/login"))
                .send()
                .await
                .expect("sign-in page"),
        )
        .await;
        assert_eq!(page.status, 200, "{}", page.text);
        let login_csrf = page
            .cookie("nitejar_login_csrf")
            .expect("login csrf cookie");
        let form_csrf = hidden_value(&page.text, "_csrf").expect("csrf field");
        let answer = read(
            client()
                .post(server.url("/admin/login"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", format!("nitejar_login_csrf={login_csrf}"))
                .header("origin", &origin)
                .body(form_body(&[
                    ("_csrf", &form_csrf),
                    ("token", token),
                    ("next", "/admin/plugins"),
                ]))
                .send()
                .await
                .expect("sign in"),
        )
        .await;
        assert_eq!(answer.status, 303, "{}", answer.text);
        let cookie = answer.cookie("nitejar_session").expect("session cookie");
        let mut session = Session {
            cookie,
            csrf: String::new(),
            origin,
        };
        let home = session.get(server, "/admin/plugins").await;
        assert_eq!(home.status, 200, "{}", home.text);
        session.csrf = hidden_value(&home.text, "_csrf").expect("csrf on a signed-in page");
        session
    }

    /// A GET with the session cookie.
    pub async fn get(&self, server: &Server, path: &str) -> Answer {
        read(
            client()
                .get(server.url(path))
                .header("cookie", format!("nitejar_session={}", self.cookie))
                .send()
                .await
                .expect("GET"),
        )
        .await
    }

    /// A form POST with the session cookie, this session's CSRF token and a same-site Origin.
    pub async fn post_form(&self, server: &Server, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut all = vec![("_csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(server, path, &form_body(&all), Some(&self.origin))
            .await
    }

    /// A form POST with the session cookie and exactly this body and Origin.
    pub async fn post_raw(
        &self,
        server: &Server,
        path: &str,
        body: &str,
        origin: Option<&str>,
    ) -> Answer {
        let mut req = client()
            .post(server.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("nitejar_session={}", self.cookie))
            .body(body.to_owned());
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        read(req.send().await.expect("POST")).await
    }
}
