"""Connect-specific checks for schemathesis (loaded by scripts/schemathesis/fuzz.py).

The built-in checks see HTTP; these know what backrest-rs means by its answers:

* decoder_accepts_valid_bodies: a body that the OpenAPI document calls valid
  must get past the server's JSON decoder. Business rules may still answer 400
  (`failed_precondition`, a bcrypt password longer than 72 bytes, an OpSelector
  with `ids` and other fields...), which is why positive_data_acceptance lists
  400 as acceptable in schemathesis.toml; but an "invalid JSON body" answer to
  schema-valid data means the document and the decoder disagree.
* connect_error_body: every error is a Connect error whose HTTP status is the
  one its code maps to (or a documented protocol-level exception).

KNOWN_DEVIATIONS are server bugs this run has found and tolerates until they
are fixed; each is narrow, printed by fuzz.py, and to be deleted with its fix.
"""

import json

import schemathesis

# Connect code -> HTTP status (connectrpc.com/docs/protocol, "Error Codes").
CODE_STATUS = {
    "canceled": 499,
    "unknown": 500,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
    "unauthenticated": 401,
}

# Protocol-level answers whose status is not the code's (src/connect):
# an unknown procedure is 404 `unimplemented`, an unsupported Content-Type 415.
PROTOCOL_EXCEPTIONS = {(404, "unimplemented"), (415, "unknown")}


# Server deviations this run tolerates until they are fixed; each narrow,
# printed by fuzz.py, and deleted with its fix. None at the moment.
KNOWN_DEVIATIONS = {}


def _connect_error(response):
    content_type = ",".join(response.headers.get("content-type", []))
    if not content_type.startswith("application/json"):
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@schemathesis.check
def decoder_accepts_valid_bodies(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    body = _connect_error(response)
    if body and str(body.get("message", "")).startswith("invalid JSON body"):
        raise AssertionError(
            "The OpenAPI document says this request body is valid, but the server's JSON decoder "
            f"rejected it: {body.get('message')}"
        )
    return None


@schemathesis.check
def connect_error_body(ctx, response, case):
    status = response.status_code
    if status < 400 or status == 405:
        # 405 (wrong HTTP method) comes from the router, with an Allow header and no body.
        return None
    body = _connect_error(response)
    if body is None:
        raise AssertionError(f"HTTP {status} without a Connect error body (application/json)")
    code = body.get("code")
    if code not in CODE_STATUS:
        raise AssertionError(f"HTTP {status} with an invalid Connect error code {code!r}")
    if CODE_STATUS[code] != status and (status, code) not in PROTOCOL_EXCEPTIONS:
        raise AssertionError(f"Connect code {code!r} must be HTTP {CODE_STATUS[code]}, got {status}")
    return None
