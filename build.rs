//! Build script: compiles `proto/` with protox (no system protoc), generates
//! prost messages, pbjson serde impls, and one `connect_service!` invocation per
//! service. The descriptor set is written to OUT_DIR for docs generation and tests.

use std::fmt::Write as _;
use std::path::PathBuf;

use prost_build::{Service, ServiceGenerator};

#[path = "build/openapi.rs"]
mod openapi;

/// Emits `crate::connect_service! { ... }` for every service. The macro (in
/// `src/connect/service.rs`) expands it into a trait and an axum router, so the
/// generated text stays a plain table of RPCs and all logic is hand-written.
struct ConnectServiceGenerator;

impl ServiceGenerator for ConnectServiceGenerator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        let full_name = format!("{}.{}", service.package, service.proto_name);
        let router_fn = format!("{}_router", to_snake(&service.proto_name));
        let _ = writeln!(buf, "crate::connect_service! {{");
        for line in &service.comments.leading {
            let _ = writeln!(buf, "    ///{line}");
        }
        let _ = writeln!(
            buf,
            "    service {} = \"{}\", router {};",
            service.name, full_name, router_fn
        );
        for m in &service.methods {
            let kind = match (m.client_streaming, m.server_streaming) {
                (false, false) => "unary",
                (false, true) => "server_stream",
                (true, _) => "bidi_stream",
            };
            for line in &m.comments.leading {
                let _ = writeln!(buf, "    ///{line}");
            }
            let _ = writeln!(
                buf,
                "    {kind} {}(\"{}\")({}) -> {};",
                m.name, m.proto_name, m.input_type, m.output_type
            );
        }
        let _ = writeln!(buf, "}}");
    }
}

fn to_snake(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let roots = [
        "proto/v1/service.proto",
        "proto/v1/authentication.proto",
        "proto/v1sync/syncservice.proto",
    ];
    let fds = protox::compile(roots, ["proto"]).map_err(|e| format!("{e:?}"))?;
    let descriptor_bytes = prost::Message::encode_to_vec(&fds);
    std::fs::write(out_dir.join("descriptor.bin"), &descriptor_bytes)?;
    openapi::write(&fds, &out_dir.join("openapi.json"))?;

    prost_build::Config::new()
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        .service_generator(Box::new(ConnectServiceGenerator))
        .compile_fds(fds)?;

    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .ignore_unknown_fields()
        .build(&[".v1", ".v1sync", ".types"])?;

    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=.sqlx");
    println!("cargo:rerun-if-env-changed=SQLX_OFFLINE");
    println!("cargo:rerun-if-env-changed=DATABASE_URL");
    Ok(())
}
