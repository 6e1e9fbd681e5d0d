//! The routing macro. build.rs emits one `connect_service!` invocation per
//! proto service (a table of its RPCs); this macro expands it into
//!
//! * a trait with one async method per RPC, whose default body answers
//!   Connect `unimplemented` — so an RPC nobody has built yet is honest, and
//!   adding an RPC to the proto needs no hand edit here. A unary method
//!   answers with its response message, or with any other
//!   [`UnaryReply`](super::UnaryReply) of that message type (a response
//!   already held in encoded form); and
//! * `<service>_router(Arc<impl Trait>) -> axum::Router` with a `POST` route per
//!   RPC and a catch-all under the service prefix that answers unknown
//!   procedures with a Connect error instead of falling through to the web UI.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::ConnectError;

#[macro_export]
macro_rules! connect_service {
    (
        $(#[$smeta:meta])*
        service $svc:ident = $full:literal, router $router:ident;
        $(
            $(#[$mmeta:meta])*
            $kind:ident $method:ident ($proc:literal) ($input:ty) -> $output:ty;
        )*
    ) => {
        $(#[$smeta])*
        pub trait $svc: Send + Sync + 'static {
            $(
                $crate::connect_trait_method!($kind; $(#[$mmeta])*; $method; $full; $proc; $input; $output);
            )*
        }

        #[doc = concat!("Routes every RPC of `", $full, "` to `svc`.")]
        pub fn $router<S: $svc>(svc: ::std::sync::Arc<S>) -> ::axum::Router {
            let router = ::axum::Router::new();
            $(
                let router = router.route(
                    concat!("/", $full, "/", $proc),
                    $crate::connect_route!($kind; svc.clone(); $method; $full; $proc; $input; $output),
                );
            )*
            let _ = &svc;
            router.route(
                concat!("/", $full, "/{*rest}"),
                ::axum::routing::any($crate::connect::service::unknown_procedure),
            )
        }
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! connect_trait_method {
    (unary; $(#[$mmeta:meta])*; $method:ident; $full:literal; $proc:literal; $input:ty; $output:ty) => {
        $(#[$mmeta])*
        fn $method(
            &self,
            ctx: $crate::connect::RequestContext,
            request: $input,
        ) -> impl ::std::future::Future<
            Output = ::std::result::Result<
                // `use<Self>`: the reply owns its data, it doesn't borrow `self`.
                impl $crate::connect::UnaryReply<$output> + use<Self>,
                $crate::connect::ConnectError,
            >,
        > + Send {
            let _ = (ctx, request);
            async { Err::<$output, _>($crate::connect::ConnectError::unimplemented(concat!(
                $full, "/", $proc, " is not implemented in this version of backrest-rs"
            ))) }
        }
    };
    (server_stream; $(#[$mmeta:meta])*; $method:ident; $full:literal; $proc:literal; $input:ty; $output:ty) => {
        $(#[$mmeta])*
        fn $method(
            &self,
            ctx: $crate::connect::RequestContext,
            request: $input,
        ) -> impl ::std::future::Future<
            Output = ::std::result::Result<$crate::connect::ServerStream<$output>, $crate::connect::ConnectError>,
        > + Send {
            let _ = (ctx, request);
            async { Err($crate::connect::ConnectError::unimplemented(concat!(
                $full, "/", $proc, " is not implemented in this version of backrest-rs"
            ))) }
        }
    };
    // Bidirectional streams need HTTP/2 end to end; they are not part of the
    // trait until the protocol layer supports them.
    (bidi_stream; $(#[$mmeta:meta])*; $method:ident; $full:literal; $proc:literal; $input:ty; $output:ty) => {};
}

#[macro_export]
#[doc(hidden)]
macro_rules! connect_route {
    (unary; $svc:expr; $method:ident; $full:literal; $proc:literal; $input:ty; $output:ty) => {{
        let svc = $svc;
        ::axum::routing::post(move |req: ::axum::extract::Request| {
            let svc = svc.clone();
            async move {
                $crate::connect::unary::handle::<$input, $output, _, _, _>(
                    concat!("/", $full, "/", $proc),
                    req,
                    move |ctx, m| async move { svc.$method(ctx, m).await },
                )
                .await
            }
        })
    }};
    (server_stream; $svc:expr; $method:ident; $full:literal; $proc:literal; $input:ty; $output:ty) => {{
        let svc = $svc;
        ::axum::routing::post(move |req: ::axum::extract::Request| {
            let svc = svc.clone();
            async move {
                $crate::connect::stream::handle::<$input, $output, _, _>(
                    concat!("/", $full, "/", $proc),
                    req,
                    move |ctx, m| async move { svc.$method(ctx, m).await },
                )
                .await
            }
        })
    }};
    (bidi_stream; $svc:expr; $method:ident; $full:literal; $proc:literal; $input:ty; $output:ty) => {{
        let _ = $svc;
        ::axum::routing::post(|| async {
            ::axum::response::IntoResponse::into_response($crate::connect::ConnectError::unimplemented(concat!(
                $full, "/", $proc,
                " (bidirectional streaming, used by multihost sync) is not supported by backrest-rs yet"
            )))
        })
    }};
}

/// An unknown method under a known service prefix: HTTP 404 (which Connect
/// clients read as `unimplemented`) with a Connect error body.
pub async fn unknown_procedure(req: Request) -> Response {
    ConnectError::unimplemented(format!("unknown procedure {}", req.uri().path()))
        .with_status(StatusCode::NOT_FOUND)
        .into_response()
}
