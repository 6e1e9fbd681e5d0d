//! Build-time OpenAPI 3.1 generator. Included by `build.rs`, it turns the same
//! `FileDescriptorSet` the server is compiled from into `OUT_DIR/openapi.json`,
//! which `src/docs.rs` serves at `GET /openapi.json` (and `/docs` renders).
//!
//! The mapping follows proto3 JSON exactly as the server speaks it (pbjson plus
//! `src/connect/codec.rs`):
//!
//! * one `POST /<package>.<Service>/<Method>` per RPC; unary calls as
//!   `application/json`, server streams as `application/connect+json`, the bidi
//!   `v1sync.BackrestSyncService/Sync` documented as not supported (it always
//!   answers `unimplemented`);
//! * properties by json name; proto comments as descriptions;
//! * two schemas per message: `pkg.Msg` is what the server *sends* (strict:
//!   int64 as decimal strings, enums as names, no unknown properties) and
//!   `pkg.MsgInput` what it *accepts* (int64 as string or number, int32 also
//!   as a string, enums by name or number, `null` for any field meaning
//!   "default", unknown properties ignored, at most one member of a oneof).
//!   Keeping the two apart lets the fuzzer check both directions precisely;
//! * oneof members are optional properties with a note in their description;
//! * the Connect error body is every operation's `default` response.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet};
use serde_json::{Map, Value, json};

/// Services whose routes never require credentials (proto: "Its routes never
/// require credentials").
const PUBLIC_SERVICES: &[&str] = &["v1.Authentication"];

/// Suffix of the schema of what the server accepts. `-`-free names keep the
/// viewers' anchors simple; a collision with a real message name fails the build.
const INPUT_SUFFIX: &str = "Input";

/// Curated request bodies for the curl examples. Every other RPC gets a body
/// built from its top-level string fields (`{"repoId": "REPO_ID"}`) or `{}`.
const EXAMPLE_BODIES: &[(&str, &str)] = &[
    ("v1.Backrest/Backup", r#"{"value": "PLAN_ID"}"#),
    (
        "v1.Backrest/GetOperations",
        r#"{"selector": {"planId": "PLAN_ID"}, "lastN": "100"}"#,
    ),
    (
        "v1.Backrest/ClearHistory",
        r#"{"selector": {"planId": "PLAN_ID"}, "onlyFailed": true}"#,
    ),
    (
        "v1.Backrest/DoRepoTask",
        r#"{"repoId": "REPO_ID", "task": "TASK_PRUNE"}"#,
    ),
    ("v1.Backrest/Cancel", r#"{"operationId": "42"}"#),
    (
        "v1.Backrest/AddRepo",
        r#"{"repo": {"id": "REPO_ID", "uri": "/path/to/repo", "password": "REPO_PASSWORD"}}"#,
    ),
    (
        "v1.Backrest/CheckRepoExists",
        r#"{"repo": {"id": "REPO_ID", "uri": "/path/to/repo", "password": "REPO_PASSWORD"}}"#,
    ),
    (
        "v1.Backrest/SetConfig",
        r#"{"modno": 1, "instance": "INSTANCE_ID", "repos": [], "plans": []}"#,
    ),
    ("v1.Backrest/GetLogs", r#"{"ref": "LOGREF"}"#),
    ("v1.Backrest/PathAutocomplete", r#"{"value": "/home/"}"#),
    (
        "v1.Backrest/RunCommand",
        r#"{"repoId": "REPO_ID", "command": "snapshots --json"}"#,
    ),
    (
        "v1.Backrest/GetDownloadURL",
        r#"{"opId": "42", "filePath": "/path/in/snapshot"}"#,
    ),
    (
        "v1.Authentication/Login",
        r#"{"username": "USERNAME", "password": "PASSWORD"}"#,
    ),
    ("v1.Authentication/HashPassword", r#"{"value": "PASSWORD"}"#),
    (
        "v1sync.BackrestSyncStateService/GetPeerSyncStatesStream",
        r#"{"subscribe": true}"#,
    ),
];

/// Generates the document. `version` becomes `info.version`.
pub fn generate(fds: &FileDescriptorSet, version: &str) -> Result<Value, String> {
    let index = Index::new(fds);
    let mut generator = Generator {
        index: &index,
        schemas: Map::new(),
        pending: Vec::new(),
    };

    let mut paths = Map::new();
    let mut tags = Vec::new();
    for file in &fds.file {
        let comments = &index.comments[file.name()];
        for (si, service) in file.service.iter().enumerate() {
            let full = format!("{}.{}", file.package(), service.name());
            let service_doc = comments
                .get(&vec![6, si as i32])
                .cloned()
                .unwrap_or_default();
            tags.push(json!({ "name": full, "description": service_doc }));
            for (mi, method) in service.method.iter().enumerate() {
                let doc = comments
                    .get(&vec![6, si as i32, 2, mi as i32])
                    .cloned()
                    .unwrap_or_default();
                let op = generator.operation(&full, method, &doc)?;
                paths.insert(format!("/{full}/{}", method.name()), json!({ "post": op }));
            }
        }
    }
    generator.drain()?;

    let mut schemas = generator.schemas;
    schemas.insert("connect.error".into(), connect_error_schema());
    let schemas: Map<String, Value> = {
        let mut sorted: Vec<_> = schemas.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        sorted.into_iter().collect()
    };

    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "backrest-rs API",
            "version": version,
            "summary": "Backrest's Connect API, as served by backrest-rs.",
            "description": INFO_DESCRIPTION,
            "license": { "name": "GPL-3.0-only", "identifier": "GPL-3.0-only" },
        },
        "servers": [{ "url": "/", "description": "This server" }],
        "security": [{ "basicAuth": [] }, { "bearerAuth": [] }, {}],
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": { "ConnectError": connect_error_response() },
            "securitySchemes": {
                "basicAuth": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "A user from the config's `auth.users` (e.g. `curl -u USERNAME:PASSWORD`). Needed only when authentication is enabled in the config.",
                },
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A token from `v1.Authentication/Login` (`-H 'Authorization: Bearer TOKEN'`), as Backrest's web UI sends it. Needed only when authentication is enabled in the config.",
                },
            },
        },
    }))
}

/// Writes `openapi.json` (pretty-printed, stable key order) for `fds`.
pub fn write(
    fds: &FileDescriptorSet,
    path: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_else(|_| "0.0.0".into());
    let doc = generate(fds, &version)?;
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    std::fs::write(path, text)?;
    Ok(())
}

const INFO_DESCRIPTION: &str = r#"Every RPC is `POST /<package>.<Service>/<Method>` with the [Connect protocol](https://connectrpc.com/docs/protocol): the same API as [Backrest](https://github.com/garethgeorge/backrest), so its web UI, scripts and hooks work unchanged. This document is generated from the server's `.proto` files when it is built.

```sh
curl -X POST localhost:9898/v1.Backrest/GetOperations -H 'Content-Type: application/json' --data '{}'
```

**Unary RPCs** take and return one message: JSON (`Content-Type: application/json`, shown here) or binary protobuf (`application/proto`). `Connect-Protocol-Version: 1` may be sent and is not required; `Connect-Timeout-Ms` bounds a call (`deadline_exceeded` when it runs out); `Content-Encoding: gzip` and `Accept-Encoding: gzip` compress bodies.

**Server-streaming RPCs** (`GetOperationEvents`, `GetLogs`, `GetPeerSyncStatesStream`) use `application/connect+json` (or `+proto`): the request and every response message are *enveloped* — one flags byte, a 4-byte big-endian length, then the JSON — and the stream ends with an envelope with flags `2` whose JSON is `{}` or `{"error": {"code": ..., "message": ...}}`. Their schemas below describe one message. The bidirectional `v1sync.BackrestSyncService/Sync` (instance-to-instance sync) is listed for completeness and is not supported yet.

**JSON** follows the proto3 JSON mapping. Responses omit fields at their default value (`0`, `""`, `false`, empty lists, the first enum value); 64-bit integers are decimal strings (`"lastN": "100"`); enums are names (`"STATUS_SUCCESS"`); bytes are base64. Requests may also use proto field names (`plan_id`), send 64-bit integers as numbers and 32-bit ones as strings, enums as numbers, and `null` for "default"; unknown fields are ignored. An empty body is read as `{}`. A oneof (e.g. a hook's action) is a set of optional properties of which at most one is set.

**Errors** are Connect errors: `{"code": "not_found", "message": "..."}` with the code's HTTP status (`invalid_argument`, `failed_precondition` and `out_of_range` 400, `unauthenticated` 401, `permission_denied` 403, `not_found` 404, `already_exists` and `aborted` 409, `internal` 500, `unimplemented` 501, `unavailable` 503, `deadline_exceeded` 504, ...). RPCs that are not built yet answer `unimplemented`.

**Authentication**, when enabled in the config, is HTTP Basic (`curl -u USERNAME:PASSWORD`) or a bearer token from `v1.Authentication/Login`; with authentication disabled every route is open. `v1.Authentication` itself never requires credentials."#;

/// Indexed view of the descriptor set: messages, enums and comments by name.
struct Index<'a> {
    messages: HashMap<String, MessageInfo<'a>>,
    enums: HashMap<String, EnumInfo<'a>>,
    /// File name -> source path -> cleaned comment.
    comments: HashMap<String, HashMap<Vec<i32>, String>>,
}

struct MessageInfo<'a> {
    desc: &'a DescriptorProto,
    comment: Option<String>,
    field_comments: Vec<Option<String>>,
}

struct EnumInfo<'a> {
    desc: &'a EnumDescriptorProto,
    comment: Option<String>,
    value_comments: Vec<Option<String>>,
}

impl<'a> Index<'a> {
    fn new(fds: &'a FileDescriptorSet) -> Self {
        let mut index = Index {
            messages: HashMap::new(),
            enums: HashMap::new(),
            comments: HashMap::new(),
        };
        for file in &fds.file {
            let mut comments = HashMap::new();
            if let Some(info) = &file.source_code_info {
                for loc in &info.location {
                    let text = loc
                        .leading_comments
                        .as_deref()
                        .or(loc.trailing_comments.as_deref());
                    if let Some(text) = text.map(clean_comment).filter(|t| !t.is_empty()) {
                        comments.insert(loc.path.clone(), text);
                    }
                }
            }
            let prefix = if file.package().is_empty() {
                String::new()
            } else {
                format!("{}.", file.package())
            };
            for (i, m) in file.message_type.iter().enumerate() {
                index.add_message(&comments, &prefix, m, vec![4, i as i32]);
            }
            for (i, e) in file.enum_type.iter().enumerate() {
                index.add_enum(&comments, &prefix, e, vec![5, i as i32]);
            }
            index.comments.insert(file.name().to_string(), comments);
        }
        index
    }

    fn add_message(
        &mut self,
        comments: &HashMap<Vec<i32>, String>,
        prefix: &str,
        m: &'a DescriptorProto,
        path: Vec<i32>,
    ) {
        let full = format!("{prefix}{}", m.name());
        let field_comments = (0..m.field.len())
            .map(|i| {
                comments
                    .get(&[path.as_slice(), &[2, i as i32]].concat())
                    .cloned()
            })
            .collect();
        let nested_prefix = format!("{full}.");
        for (i, n) in m.nested_type.iter().enumerate() {
            self.add_message(
                comments,
                &nested_prefix,
                n,
                [path.as_slice(), &[3, i as i32]].concat(),
            );
        }
        for (i, e) in m.enum_type.iter().enumerate() {
            self.add_enum(
                comments,
                &nested_prefix,
                e,
                [path.as_slice(), &[4, i as i32]].concat(),
            );
        }
        self.messages.insert(
            full,
            MessageInfo {
                desc: m,
                comment: comments.get(&path).cloned(),
                field_comments,
            },
        );
    }

    fn add_enum(
        &mut self,
        comments: &HashMap<Vec<i32>, String>,
        prefix: &str,
        e: &'a EnumDescriptorProto,
        path: Vec<i32>,
    ) {
        let full = format!("{prefix}{}", e.name());
        let value_comments = (0..e.value.len())
            .map(|i| {
                comments
                    .get(&[path.as_slice(), &[2, i as i32]].concat())
                    .cloned()
            })
            .collect();
        self.enums.insert(
            full,
            EnumInfo {
                desc: e,
                comment: comments.get(&path).cloned(),
                value_comments,
            },
        );
    }
}

/// Strips the one space after `//` from each line and surrounding blank lines.
fn clean_comment(raw: &str) -> String {
    let lines: Vec<&str> = raw
        .lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end())
        .collect();
    lines.join("\n").trim().to_string()
}

/// Which side of the wire a schema describes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    /// What the server sends (responses, stream messages).
    Out,
    /// What the server accepts (request bodies).
    In,
}

/// How an RPC streams.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unary,
    ServerStream,
    Bidi,
}

struct Generator<'a> {
    index: &'a Index<'a>,
    schemas: Map<String, Value>,
    /// Named types referenced but not yet generated.
    pending: Vec<(String, Dir)>,
}

impl Generator<'_> {
    fn operation(
        &mut self,
        service: &str,
        method: &prost_types::MethodDescriptorProto,
        doc: &str,
    ) -> Result<Value, String> {
        let name = method.name();
        let procedure = format!("{service}/{name}");
        let input = method.input_type().trim_start_matches('.').to_string();
        let output = method.output_type().trim_start_matches('.').to_string();
        let kind = match (method.client_streaming(), method.server_streaming()) {
            (false, false) => Kind::Unary,
            (false, true) => Kind::ServerStream,
            (true, _) => Kind::Bidi,
        };
        let content_type = if kind == Kind::Unary {
            "application/json"
        } else {
            "application/connect+json"
        };
        let in_ref = self.reference(&input, Dir::In);
        let out_ref = self.reference(&output, Dir::Out);

        let example = self.example_body(&procedure, &input)?;
        let mut description = if doc.is_empty() {
            // Not every RPC has a comment in the proto.
            format!("Takes a `{input}`, answers a `{output}`.")
        } else {
            doc.to_string()
        };
        let curl = match kind {
            Kind::Unary => format!(
                "curl -X POST localhost:9898/{procedure} \\\n  -H 'Content-Type: application/json' \\\n  --data '{example}'"
            ),
            Kind::ServerStream | Kind::Bidi => {
                let len = example.len();
                let prefix = format!(
                    "\\000\\{:03o}\\{:03o}\\{:03o}\\{:03o}",
                    (len >> 24) & 0xff,
                    (len >> 16) & 0xff,
                    (len >> 8) & 0xff,
                    len & 0xff
                );
                format!(
                    "# One enveloped request message: flags 0, a 4-byte big-endian length ({len}), the JSON.\n\
                     printf '{prefix}%s' '{example}' |\n  \
                     curl -N -X POST localhost:9898/{procedure} \\\n    -H 'Content-Type: application/connect+json' --data-binary @-"
                )
            }
        };
        match kind {
            Kind::ServerStream => {
                let _ = write!(
                    description,
                    "\n\nServer stream (`application/connect+json` or `+proto`): one enveloped request message; \
                     the response is a sequence of enveloped `{output}` messages ended by an end-of-stream envelope \
                     (flags `2`) carrying `{{}}` or `{{\"error\": ...}}`."
                );
            }
            Kind::Bidi => {
                let _ = write!(
                    description,
                    "\n\nBidirectional stream between Backrest instances (multihost sync), over HTTP/2. \
                     **Not supported by backrest-rs yet:** it answers Connect `unimplemented` (HTTP 501)."
                );
            }
            Kind::Unary => {}
        }
        let description = description.trim().to_string();

        let mut responses = Map::new();
        if kind != Kind::Bidi {
            responses.insert(
                "200".into(),
                json!({
                    "description": if kind == Kind::Unary {
                        format!("The `{output}` reply.")
                    } else {
                        format!("A stream of enveloped `{output}` messages (each described by this schema).")
                    },
                    "content": { content_type: { "schema": out_ref } },
                }),
            );
        }
        responses.insert(
            "default".into(),
            json!({ "$ref": "#/components/responses/ConnectError" }),
        );

        let mut op = json!({
            "operationId": format!("{service}.{name}"),
            "summary": name,
            "description": description,
            "tags": [service],
            "requestBody": {
                "required": true,
                "content": { content_type: { "schema": in_ref, "example": serde_json::from_str::<Value>(&example).map_err(|e| format!("{procedure}: bad example: {e}"))? } },
            },
            "responses": responses,
            "x-codeSamples": [{ "lang": "Shell", "label": "curl", "source": curl }],
        });
        match kind {
            Kind::Unary => {}
            Kind::ServerStream => op["x-connect-streaming"] = json!("server"),
            Kind::Bidi => op["x-connect-streaming"] = json!("bidi"),
        }
        if kind == Kind::Bidi {
            op["x-backrest-rs-unsupported"] = json!(true);
        }
        if PUBLIC_SERVICES.contains(&service) {
            op["security"] = json!([]);
        }
        Ok(op)
    }

    /// The example request body of `procedure`: curated, else its top-level
    /// string fields as placeholders.
    fn example_body(&self, procedure: &str, input: &str) -> Result<String, String> {
        if let Some((_, body)) = EXAMPLE_BODIES.iter().find(|(p, _)| *p == procedure) {
            return Ok(body.to_string());
        }
        let Some(msg) = self.index.messages.get(input) else {
            return Ok("{}".into());
        };
        let parts: Vec<String> = msg
            .desc
            .field
            .iter()
            .filter(|f| {
                f.r#type() == Type::String
                    && f.label() != Label::Repeated
                    && f.oneof_index.is_none()
            })
            .map(|f| {
                format!(
                    "\"{}\": \"{}\"",
                    json_name(f),
                    f.name().to_ascii_uppercase()
                )
            })
            .collect();
        Ok(if parts.is_empty() {
            "{}".into()
        } else {
            format!("{{{}}}", parts.join(", "))
        })
    }

    /// A `$ref` to the schema of message `full` for `dir`, queueing it.
    fn reference(&mut self, full: &str, dir: Dir) -> Value {
        let name = schema_name(full, dir);
        if !self.schemas.contains_key(&name)
            && !self.pending.iter().any(|(f, d)| f == full && *d == dir)
        {
            self.pending.push((full.to_string(), dir));
        }
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    fn drain(&mut self) -> Result<(), String> {
        while let Some((full, dir)) = self.pending.pop() {
            let name = schema_name(&full, dir);
            if self.schemas.contains_key(&name) {
                continue;
            }
            if dir == Dir::In
                && (self.index.messages.contains_key(&name) || self.index.enums.contains_key(&name))
            {
                return Err(format!(
                    "schema name {name} of {full}'s input form collides with a proto type"
                ));
            }
            // Placeholder first: recursive types reference themselves.
            self.schemas.insert(name.clone(), Value::Null);
            let schema = if let Some(wkt) = well_known(&full, dir) {
                wkt
            } else if let Some(e) = self.index.enums.get(&full) {
                enum_schema(&full, e, dir)
            } else if let Some(m) = self.index.messages.get(&full) {
                self.message_schema(&full, m, dir)?
            } else {
                return Err(format!("type {full} is not in the descriptor set"));
            };
            self.schemas.insert(name, schema);
        }
        Ok(())
    }

    fn message_schema(
        &mut self,
        full: &str,
        m: &MessageInfo<'_>,
        dir: Dir,
    ) -> Result<Value, String> {
        let desc = m.desc;
        // Real (non-synthetic) oneofs: index -> member json names.
        let mut oneofs: Vec<Vec<String>> = vec![Vec::new(); desc.oneof_decl.len()];
        for f in &desc.field {
            if let Some(i) = f.oneof_index.filter(|_| !f.proto3_optional()) {
                oneofs[i as usize].push(json_name(f));
            }
        }

        let mut properties = Map::new();
        for (i, f) in desc.field.iter().enumerate() {
            let mut prop = self.field_schema(full, f, dir)?;
            let mut doc = m.field_comments[i].clone().unwrap_or_default();
            if let Some(oi) = f.oneof_index.filter(|_| !f.proto3_optional()) {
                let members = &oneofs[oi as usize];
                let others: Vec<String> = members
                    .iter()
                    .filter(|n| **n != json_name(f))
                    .map(|n| format!("`{n}`"))
                    .collect();
                let note = format!(
                    "Member of oneof `{}`: set at most one of this and {}.",
                    desc.oneof_decl[oi as usize].name(),
                    others.join(", ")
                );
                doc = if doc.is_empty() {
                    note
                } else {
                    format!("{doc}\n\n{note}")
                };
            } else if f.proto3_optional() {
                let note = "Optional: sent whenever it is set, even to its default value.";
                doc = if doc.is_empty() {
                    note.to_string()
                } else {
                    format!("{doc}\n\n{note}")
                };
            }
            if dir == Dir::In && f.name() != json_name(f) {
                let note = format!("Also accepted as `{}`.", f.name());
                doc = if doc.is_empty() {
                    note
                } else {
                    format!("{doc} {note}")
                };
            }
            if !doc.is_empty() {
                prop.as_object_mut()
                    .expect("object")
                    .insert("description".into(), Value::String(doc));
            }
            properties.insert(json_name(f), prop);
        }

        let mut schema = Map::new();
        schema.insert("type".into(), json!("object"));
        schema.insert("title".into(), json!(full));
        if let Some(doc) = &m.comment {
            schema.insert("description".into(), json!(doc));
        }
        schema.insert("properties".into(), Value::Object(properties));
        match dir {
            Dir::Out => {
                schema.insert("additionalProperties".into(), json!(false));
            }
            Dir::In => {
                // pbjson rejects two members of one oneof (unless all but one are null).
                let mut pairs = Vec::new();
                for members in oneofs.iter().filter(|m| m.len() > 1) {
                    for (a, x) in members.iter().enumerate() {
                        for y in &members[a + 1..] {
                            pairs.push(json!({
                                "required": [x, y],
                                "properties": { x: { "not": { "type": "null" } }, y: { "not": { "type": "null" } } },
                            }));
                        }
                    }
                }
                if !pairs.is_empty() {
                    schema.insert("not".into(), json!({ "anyOf": pairs }));
                }
            }
        }
        Ok(Value::Object(schema))
    }

    fn field_schema(
        &mut self,
        parent: &str,
        f: &FieldDescriptorProto,
        dir: Dir,
    ) -> Result<Value, String> {
        let repeated = f.label() == Label::Repeated;
        // Map fields: a repeated nested `*Entry` message with map_entry set,
        // written as an object with the keys as strings.
        let map_entry = self
            .index
            .messages
            .get(f.type_name().trim_start_matches('.'))
            .filter(|m| {
                repeated
                    && m.desc
                        .options
                        .as_ref()
                        .and_then(|o| o.map_entry)
                        .unwrap_or(false)
            });
        if let Some(entry) = map_entry {
            let key = entry
                .desc
                .field
                .iter()
                .find(|x| x.number() == 1)
                .ok_or("map entry without key")?;
            let value = entry
                .desc
                .field
                .iter()
                .find(|x| x.number() == 2)
                .ok_or("map entry without value")?;
            let value_schema = nullable(self.element_schema(parent, value, dir)?, dir);
            let mut schema = json!({ "type": "object", "additionalProperties": value_schema });
            if let Some(p) = key_pattern(key.r#type()) {
                schema["propertyNames"] = json!({ "pattern": p });
            }
            return Ok(nullable(schema, dir));
        }
        let element = self.element_schema(parent, f, dir)?;
        let schema = if repeated {
            json!({ "type": "array", "items": element })
        } else {
            element
        };
        Ok(nullable(schema, dir))
    }

    /// The schema of one value of field `f` (ignoring `repeated`).
    fn element_schema(
        &mut self,
        parent: &str,
        f: &FieldDescriptorProto,
        dir: Dir,
    ) -> Result<Value, String> {
        Ok(match f.r#type() {
            Type::Message | Type::Group | Type::Enum => {
                self.reference(f.type_name().trim_start_matches('.'), dir)
            }
            t => scalar_schema(t, dir)
                .ok_or_else(|| format!("{parent}.{}: unsupported type {t:?}", f.name()))?,
        })
    }
}

/// Allows `null` on input (proto3 JSON: `null` means the default value).
fn nullable(schema: Value, dir: Dir) -> Value {
    if dir == Dir::Out {
        return schema;
    }
    let mut schema = schema;
    let obj = schema.as_object_mut().expect("schema object");
    match obj.get_mut("type") {
        Some(Value::String(t)) => {
            let t = t.clone();
            obj.insert("type".into(), json!([t, "null"]));
            schema
        }
        Some(Value::Array(ts)) => {
            ts.push(json!("null"));
            schema
        }
        _ => json!({ "anyOf": [schema, { "type": "null" }] }),
    }
}

const INT64_MAX: i64 = i64::MAX;
const INT64_MIN: i64 = i64::MIN;

/// Scalar types as proto3 JSON maps them. Input patterns are what the server's
/// decoder parses (Rust `FromStr`), bounded so that generated values stay in range.
fn scalar_schema(t: Type, dir: Dir) -> Option<Value> {
    let float_in = r"^[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[Ii][Nn][Ff]([Ii][Nn][Ii][Tt][Yy])?|[Nn][Aa][Nn])$";
    Some(match (t, dir) {
        (Type::Double | Type::Float, Dir::Out) => json!({ "type": "number" }),
        (Type::Double | Type::Float, Dir::In) => json!({
            "type": ["number", "string"],
            "pattern": float_in,
        }),
        (Type::Int64 | Type::Sint64 | Type::Sfixed64, Dir::Out) => json!({
            "type": "string",
            "pattern": "^-?[0-9]+$",
            "description": "A 64-bit integer as a decimal string.",
        }),
        (Type::Int64 | Type::Sint64 | Type::Sfixed64, Dir::In) => json!({
            "type": ["string", "integer"],
            "pattern": "^[+-]?[0-9]{1,18}$",
            "minimum": INT64_MIN,
            "maximum": INT64_MAX,
            "description": "A 64-bit integer: a decimal string (as the server sends it) or a JSON number.",
        }),
        (Type::Uint64 | Type::Fixed64, Dir::Out) => json!({
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "An unsigned 64-bit integer as a decimal string.",
        }),
        (Type::Uint64 | Type::Fixed64, Dir::In) => json!({
            "type": ["string", "integer"],
            "pattern": "^\\+?[0-9]{1,19}$",
            "minimum": 0,
            "maximum": u64::MAX,
            "description": "An unsigned 64-bit integer: a decimal string (as the server sends it) or a JSON number.",
        }),
        (Type::Int32 | Type::Sint32 | Type::Sfixed32, Dir::Out) => json!({
            "type": "integer",
            "format": "int32",
        }),
        (Type::Int32 | Type::Sint32 | Type::Sfixed32, Dir::In) => json!({
            "type": ["integer", "string"],
            "pattern": "^[+-]?[0-9]{1,9}$",
            "minimum": i32::MIN,
            "maximum": i32::MAX,
        }),
        (Type::Uint32 | Type::Fixed32, Dir::Out) => json!({
            "type": "integer",
            "minimum": 0,
            "maximum": u32::MAX,
        }),
        (Type::Uint32 | Type::Fixed32, Dir::In) => json!({
            "type": ["integer", "string"],
            "pattern": "^\\+?[0-9]{1,9}$",
            "minimum": 0,
            "maximum": u32::MAX,
        }),
        (Type::Bool, _) => json!({ "type": "boolean" }),
        (Type::String, _) => json!({ "type": "string" }),
        (Type::Bytes, Dir::Out) => json!({
            "type": "string",
            "contentEncoding": "base64",
            "pattern": "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
            "description": "Bytes, as standard base64 with padding.",
        }),
        (Type::Bytes, Dir::In) => json!({
            "type": "string",
            "contentEncoding": "base64",
            // Standard or URL-safe alphabet, padding optional; the final
            // character carries no stray bits, as the decoder requires.
            "pattern": "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/][AQgw](==)?|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=?)?$|^([A-Za-z0-9_-]{4})*([A-Za-z0-9_-][AQgw](==)?|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048]=?)?$",
            "description": "Bytes as base64: standard or URL-safe, with or without padding.",
        }),
        _ => return None,
    })
}

/// Map keys are JSON object keys; integer keys are decimal strings.
fn key_pattern(t: Type) -> Option<&'static str> {
    match t {
        Type::Int64
        | Type::Sint64
        | Type::Sfixed64
        | Type::Int32
        | Type::Sint32
        | Type::Sfixed32 => Some("^-?[0-9]+$"),
        Type::Uint64 | Type::Fixed64 | Type::Uint32 | Type::Fixed32 => Some("^[0-9]+$"),
        Type::Bool => Some("^(true|false)$"),
        _ => None,
    }
}

fn enum_schema(full: &str, e: &EnumInfo<'_>, dir: Dir) -> Value {
    let names: Vec<&str> = e.desc.value.iter().map(|v| v.name()).collect();
    let mut doc = e.comment.clone().unwrap_or_default();
    let documented: Vec<String> = e
        .desc
        .value
        .iter()
        .zip(&e.value_comments)
        .filter_map(|(v, c)| c.as_ref().map(|c| format!("* `{}`: {c}", v.name())))
        .collect();
    if !documented.is_empty() {
        if !doc.is_empty() {
            doc.push_str("\n\n");
        }
        doc.push_str(&documented.join("\n"));
    }
    let mut schema = match dir {
        Dir::Out => json!({ "type": "string", "enum": names }),
        Dir::In => {
            let numbers: Vec<i32> = e.desc.value.iter().map(|v| v.number()).collect();
            let note = "Accepted by name or by number.";
            doc = if doc.is_empty() {
                note.to_string()
            } else {
                format!("{doc}\n\n{note}")
            };
            json!({ "anyOf": [{ "type": "string", "enum": names }, { "type": "integer", "enum": numbers }] })
        }
    };
    schema["title"] = json!(full);
    if !doc.is_empty() {
        schema["description"] = json!(doc);
    }
    schema
}

/// JSON forms of the google.protobuf well-known types.
fn well_known(full: &str, dir: Dir) -> Option<Value> {
    let wrapper = |t: Type| scalar_schema(t, dir).map(|s| nullable(s, dir));
    Some(match full {
        "google.protobuf.Empty" if dir == Dir::Out => {
            json!({ "type": "object", "title": full, "description": "No fields: `{}`.", "additionalProperties": false, "properties": {} })
        }
        "google.protobuf.Empty" => {
            // Like every request message, unknown members are ignored (src/connect/codec.rs).
            json!({ "type": "object", "title": full, "description": "No fields: `{}`. Unknown members are ignored.", "properties": {} })
        }
        "google.protobuf.Timestamp" => {
            json!({ "type": "string", "format": "date-time", "title": full })
        }
        "google.protobuf.Duration" => {
            json!({ "type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$", "title": full })
        }
        "google.protobuf.FieldMask" => json!({ "type": "string", "title": full }),
        "google.protobuf.Struct" => json!({ "type": "object", "title": full }),
        "google.protobuf.Value" => json!({ "title": full }),
        "google.protobuf.ListValue" => json!({ "type": "array", "title": full }),
        "google.protobuf.Any" => {
            json!({ "type": "object", "title": full, "required": ["@type"], "properties": { "@type": { "type": "string" } } })
        }
        "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => wrapper(Type::Double)?,
        "google.protobuf.Int64Value" => wrapper(Type::Int64)?,
        "google.protobuf.UInt64Value" => wrapper(Type::Uint64)?,
        "google.protobuf.Int32Value" => wrapper(Type::Int32)?,
        "google.protobuf.UInt32Value" => wrapper(Type::Uint32)?,
        "google.protobuf.BoolValue" => wrapper(Type::Bool)?,
        "google.protobuf.StringValue" => wrapper(Type::String)?,
        "google.protobuf.BytesValue" => wrapper(Type::Bytes)?,
        _ => return None,
    })
}

fn schema_name(full: &str, dir: Dir) -> String {
    match dir {
        Dir::Out => full.to_string(),
        Dir::In => format!("{full}{INPUT_SUFFIX}"),
    }
}

/// The field's JSON name: `json_name` from the descriptor (protox always sets
/// it), else protoc's lowerCamelCase of the field name.
fn json_name(f: &FieldDescriptorProto) -> String {
    if let Some(j) = &f.json_name {
        return j.clone();
    }
    let mut out = String::new();
    let mut upper = false;
    for c in f.name().chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

const CONNECT_CODES: [&str; 16] = [
    "canceled",
    "unknown",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal",
    "unavailable",
    "data_loss",
    "unauthenticated",
];

fn connect_error_schema() -> Value {
    json!({
        "type": "object",
        "title": "Connect error",
        "description": "The body of every unary error (and the `error` of a stream's end-of-stream message).",
        "required": ["code"],
        "properties": {
            "code": { "type": "string", "enum": CONNECT_CODES, "description": "The Connect error code; the HTTP status follows from it." },
            "message": { "type": "string", "description": "What went wrong, for people. Omitted when empty." },
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "type": { "type": "string", "description": "Fully-qualified protobuf message name." },
                        "value": { "type": "string", "description": "The binary message, base64 without padding." },
                        "debug": { "description": "The message as JSON, for people." },
                    },
                },
            },
        },
    })
}

fn connect_error_response() -> Value {
    let statuses: BTreeSet<&str> = [
        "400", "401", "403", "404", "405", "409", "415", "429", "499", "500", "501", "503", "504",
    ]
    .into();
    json!({
        "description": format!(
            "A Connect error. The HTTP status follows the code ({}): e.g. `invalid_argument` 400, `not_found` 404, `unimplemented` 501. \
             A wrong HTTP method answers 405, an unsupported `Content-Type` 415.",
            statuses.into_iter().collect::<Vec<_>>().join(", ")
        ),
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/connect.error" } } },
    })
}
