//! What a route runs, and who may run it, as one value: an admin route can only be made from a
//! handler whose first argument is the admin credential.
//!
//! [`Endpoint::admin`] accepts a handler only if its first argument is [`Admin`] or
//! [`AdminForm<T>`] — extractors that verify the credential themselves — so a route the table marks
//! `Admin` cannot run a handler that skips the check: such a table does not compile. The credential
//! is extracted first and to the end; only then are the handler's other arguments (a JSON body, a
//! multipart upload) extracted, so nothing of a request is read or parsed for a caller who has not
//! proved who they are.
//!
//! ```
//! use nitejar_server::auth::{Admin, AdminForm};
//! use nitejar_server::routes::Endpoint;
//!
//! async fn runtime(_admin: Admin) -> &'static str { "admin data" }
//! async fn save(_post: AdminForm<Vec<(String, String)>>) -> &'static str { "saved" }
//! let _ = Endpoint::admin(runtime);
//! let _ = Endpoint::admin(save);
//! ```
//!
//! A handler without the credential is refused at compile time:
//!
//! ```compile_fail,E0277
//! use nitejar_server::routes::Endpoint;
//!
//! async fn runtime() -> &'static str { "admin data" }
//! let _ = Endpoint::admin(runtime);
//! ```
//!
//! …and so is one that takes the credential anywhere but first, where it would run after
//! extractors that consume the body:
//!
//! ```compile_fail,E0277
//! use nitejar_server::auth::Admin;
//! use nitejar_server::routes::Endpoint;
//!
//! async fn runtime(_req: actix_web::HttpRequest, _admin: Admin) -> &'static str { "admin data" }
//! let _ = Endpoint::admin(runtime);
//! ```

use actix_web::{web, FromRequest, Handler, HttpRequest, Responder, Route};

use super::Access;
use crate::auth::{Admin, AdminForm, MetricsReader, SignInForm};

/// How a route's handler is attached to actix.
type Attach = Box<dyn Fn(Route) -> Route + Send + Sync>;

/// A route's handler with the access rule it was built for.
pub struct Endpoint {
    access: Access,
    attach: Attach,
}

/// Marks the extractors that verify a credential themselves.
pub trait Credential<Kind>: sealed::Sealed {}

/// The admin credential (a bearer token or a session with its CSRF checks).
pub enum AdminAccess {}
/// The admin credential or `NITEJAR_METRICS_TOKEN`.
pub enum MetricsAccess {}
/// The sign-in form's own checks (same site, CSRF cookie, throttle).
pub enum SignInAccess {}

impl Credential<AdminAccess> for Admin {}
impl<T> Credential<AdminAccess> for AdminForm<T> {}
impl Credential<MetricsAccess> for MetricsReader {}
impl<T> Credential<SignInAccess> for SignInForm<T> {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::auth::Admin {}
    impl<T> Sealed for crate::auth::AdminForm<T> {}
    impl Sealed for crate::auth::MetricsReader {}
    impl<T> Sealed for crate::auth::SignInForm<T> {}
}

/// A handler's argument list that starts with the credential of `Kind`: it splits into that
/// credential and the rest, so that the credential is extracted — and verified — before anything
/// else (no body is read, no JSON parsed, for a caller who has not proved who they are).
#[diagnostic::on_unimplemented(
    message = "this handler does not take the credential its route requires as its first argument",
    label = "`{Self}` does not start with it",
    note = "admin routes take `Admin` or `AdminForm<T>` first; `/metrics` takes `MetricsReader`; the sign-in form takes `SignInForm<T>`"
)]
pub trait CredentialFirst<Kind> {
    /// The credential.
    type First: FromRequest;
    /// The other arguments.
    type Rest: FromRequest;
    /// The whole argument list again.
    fn join(first: Self::First, rest: Self::Rest) -> Self;
}

macro_rules! credential_first {
    ($($rest:ident),*) => {
        impl<Kind, C, $($rest,)*> CredentialFirst<Kind> for (C, $($rest,)*)
        where
            C: FromRequest + Credential<Kind> + 'static,
            $($rest: FromRequest + 'static,)*
        {
            type First = C;
            type Rest = ($($rest,)*);
            #[allow(non_snake_case)]
            fn join(first: C, rest: ($($rest,)*)) -> Self {
                let ($($rest,)*) = rest;
                (first, $($rest,)*)
            }
        }
    };
}
credential_first!();
credential_first!(A);
credential_first!(A, B);
credential_first!(A, B, C2);
credential_first!(A, B, C2, D);
credential_first!(A, B, C2, D, E);
credential_first!(A, B, C2, D, E, F);
credential_first!(A, B, C2, D, E, F, G);

impl Endpoint {
    fn new<F, Args>(access: Access, handler: F) -> Endpoint
    where
        F: Handler<Args> + Send + Sync,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        Endpoint {
            access,
            attach: Box::new(move |route: Route| route.to(handler.clone())),
        }
    }

    /// A handler whose first argument, the credential, is extracted to the end before the others.
    fn guarded<Kind, F, Args>(access: Access, handler: F) -> Endpoint
    where
        F: Handler<Args> + Send + Sync,
        Args: CredentialFirst<Kind> + 'static,
        F::Output: Responder + 'static,
    {
        let checked = move |req: HttpRequest, payload: web::Payload| {
            let handler = handler.clone();
            async move {
                let mut payload = payload.into_inner();
                let first = <Args::First as FromRequest>::from_request(&req, &mut payload)
                    .await
                    .map_err(Into::into)?;
                let rest = <Args::Rest as FromRequest>::from_request(&req, &mut payload)
                    .await
                    .map_err(Into::into)?;
                Ok::<_, actix_web::Error>(handler.call(Args::join(first, rest)).await)
            }
        };
        Endpoint {
            access,
            attach: Box::new(move |route: Route| route.to(checked.clone())),
        }
    }

    /// A route only the admin may call: the handler takes [`Admin`] or [`AdminForm<T>`] first.
    pub fn admin<F, Args>(handler: F) -> Endpoint
    where
        F: Handler<Args> + Send + Sync,
        Args: CredentialFirst<AdminAccess> + 'static,
        F::Output: Responder + 'static,
    {
        Endpoint::guarded::<AdminAccess, _, _>(Access::Admin, handler)
    }

    /// `/metrics`: the handler takes [`MetricsReader`] first.
    pub fn metrics<F, Args>(handler: F) -> Endpoint
    where
        F: Handler<Args> + Send + Sync,
        Args: CredentialFirst<MetricsAccess> + 'static,
        F::Output: Responder + 'static,
    {
        Endpoint::guarded::<MetricsAccess, _, _>(Access::Metrics, handler)
    }

    /// The sign-in form: the handler takes [`SignInForm<T>`] first.
    pub fn sign_in<F, Args>(handler: F) -> Endpoint
    where
        F: Handler<Args> + Send + Sync,
        Args: CredentialFirst<SignInAccess> + 'static,
        F::Output: Responder + 'static,
    {
        Endpoint::guarded::<SignInAccess, _, _>(Access::SignIn, handler)
    }

    /// A route anyone may call. Which paths may be public is checked when the table is built
    /// (`super::check_table`).
    pub fn public<F, Args>(handler: F) -> Endpoint
    where
        F: Handler<Args> + Send + Sync,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        Endpoint::new(Access::Public, handler)
    }

    /// A webhook: anyone may call it; the integration checks the request's own signature.
    pub fn webhook<F, Args>(handler: F) -> Endpoint
    where
        F: Handler<Args> + Send + Sync,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        Endpoint::new(Access::Webhook, handler)
    }

    /// Who may call it.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Attaches the handler to an actix route.
    pub(crate) fn attach(&self, route: Route) -> Route {
        (self.attach)(route)
    }
}
