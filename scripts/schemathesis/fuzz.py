"""Fuzzes the API against its own OpenAPI document (run by scripts/fuzz-api).

1. Starts the backrest-rs binary on 127.0.0.1:0 in a throwaway directory
   (config, data and HOME all inside it), with authentication configured.
2. Fetches /openapi.json and validates it as OpenAPI 3.1
   (openapi-spec-validator), and checks that it covers every RPC.
3. Runs schemathesis against it with a fixed seed and a bounded number of
   examples per operation, over every unary RPC except those in EXCLUDED and
   those that answer `unimplemented` (not built yet; listed in the output).
   Failing checks: any 5xx, a status or content type the document doesn't
   list, a response that doesn't match its schema, schema-invalid data that
   is accepted, and the Connect checks in hooks.py.
4. Fails if the server crashed, panicked or did not shut down cleanly.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))

# RPCs that change state or reach outside the sandbox: never fuzzed.
EXCLUDED = {
    "v1.Backrest.AddRepo": "initializes repositories at arbitrary URIs (sftp:, s3:, rest: reach the network)",
    "v1.Backrest.CheckRepoExists": "runs restic against arbitrary repository URIs (may reach the network)",
    "v1.Backrest.Backup": "runs backups",
    "v1.Backrest.Restore": "writes restored files",
    "v1.Backrest.RunCommand": "runs restic commands",
    "v1.Backrest.SetConfig": "replaces the config (and with it the credentials of this run)",
    "v1.Backrest.RemoveRepo": "changes the config",
    "v1.Backrest.ClearHistory": "deletes history",
    "v1.Backrest.Forget": "forgets snapshots",
    "v1.Backrest.DoRepoTask": "runs repository maintenance",
    "v1.Backrest.Cancel": "cancels operations",
    "v1.Backrest.SetupSftp": "writes SSH keys and contacts SFTP hosts",
    "v1.Backrest.GeneratePairingToken": "changes the config",
    "v1sync.BackrestSyncStateService.SetRemoteClientConfig": "changes peers' config",
}

# Credentials of this run: a throwaway user written into the sandbox config.
# The password hash is `v1.Authentication/HashPassword` of FUZZ_PASSWORD.
# When the server enforces authentication, the run logs in once and passes
# the bearer token to every request; on a server without authentication,
# Login answers `unimplemented` and the run goes without credentials.
FUZZ_USER = "fuzz"
FUZZ_PASSWORD = "fuzz-password"
FUZZ_PASSWORD_BCRYPT = "JDJhJDEwJE1keWx5UjJGa3BOZ3NwZXd6Tkwxb082S2RZSlBkdjgwRnBIOGFhTlNDakpDSGtLRkF6V2VL"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the backrest-rs binary")
    ap.add_argument("--max-examples", type=int, default=100, help="test cases per operation and phase (default 100)")
    ap.add_argument("--seed", default="20261128", help="schemathesis seed (default fixed; 'random' for a new one)")
    ap.add_argument("--max-time", type=int, default=None, help="time budget in seconds for the whole run")
    ap.add_argument("--keep", action="store_true", help="keep the sandbox directory and its server log")
    args, extra = ap.parse_known_args()

    sandbox = tempfile.mkdtemp(prefix="backrest-fuzz-")
    server = Server(args.bin, sandbox)
    ok = False
    try:
        server.start()
        ok = run(server, args, extra)
    finally:
        clean = server.stop()
        log = server.log()
        if "panicked" in log:
            print("fuzz: the server panicked:\n" + tail(log), file=sys.stderr)
            ok = False
        if not clean:
            print("fuzz: the server did not shut down cleanly:\n" + tail(log), file=sys.stderr)
            ok = False
        if args.keep or not ok:
            print(f"fuzz: sandbox kept at {sandbox} (server log: {server.log_path})")
        else:
            shutil.rmtree(sandbox, ignore_errors=True)
    return 0 if ok else 1


def run(server, args, extra):
    spec = json.loads(server.get("/openapi.json"))

    from openapi_spec_validator import validate

    validate(spec)
    print(f"fuzz: /openapi.json is valid OpenAPI {spec['openapi']}: {len(spec['paths'])} RPCs, "
          f"{len(spec['components']['schemas'])} schemas")

    # Every operation's example request (the body of its curl command) is
    # valid input, excluded and streaming RPCs included.
    import jsonschema

    ops = {}
    bad_examples = []
    for path, item in spec["paths"].items():
        op = item["post"]
        ops[op["operationId"]] = (path, op)
        for media in op["requestBody"]["content"].values():
            root = dict(spec, **{"$ref": media["schema"]["$ref"]})
            errors = list(jsonschema.Draft202012Validator(root).iter_errors(media["example"]))
            if errors:
                bad_examples.append(f"{path}: {errors[0].message}")
    if bad_examples:
        print("fuzz: example requests that their own schema refuses:\n  " + "\n  ".join(bad_examples), file=sys.stderr)
        return False
    print(f"fuzz: the example request of each of the {len(ops)} RPCs matches its schema")
    stale = sorted(set(EXCLUDED) - set(ops))
    if stale:
        print(f"fuzz: EXCLUDED names RPCs that are not in the document: {stale}", file=sys.stderr)
        return False

    headers = {}
    status, body = server.call("/v1.Authentication/Login", {"username": FUZZ_USER, "password": FUZZ_PASSWORD})
    if status == 200:
        headers["Authorization"] = "Bearer " + body["token"]
        unauth, _ = server.call("/v1.Backrest/GetConfig", {})
        print(f"fuzz: authentication is on; logged in as {FUZZ_USER!r} "
              f"(GetConfig without credentials: HTTP {unauth})")
        if unauth != 401:
            print("fuzz: authentication is configured but a call without credentials was not refused", file=sys.stderr)
            return False
    else:
        print(f"fuzz: Login answered HTTP {status} ({body.get('code') if isinstance(body, dict) else body}): "
              "running without credentials")

    selected, skipped = [], []
    for op_id, (path, op) in sorted(ops.items()):
        if op_id in EXCLUDED:
            skipped.append(f"{op_id} (excluded: {EXCLUDED[op_id]})")
        elif "x-connect-streaming" in op:
            skipped.append(f"{op_id} ({op['x-connect-streaming']} stream: not fuzzable over plain HTTP)")
        else:
            status, body = server.call(path, {}, headers)
            if status == 501 and isinstance(body, dict) and body.get("code") == "unimplemented":
                skipped.append(f"{op_id} (answers unimplemented: not built yet)")
            else:
                selected.append(op_id)
    print("fuzz: not fuzzed:\n  " + "\n  ".join(skipped))
    print("fuzz: fuzzing:\n  " + "\n  ".join(selected))
    if not selected:
        print("fuzz: nothing to fuzz", file=sys.stderr)
        return False

    cmd = [
        os.path.join(os.path.dirname(sys.executable), "schemathesis"),
        "--config-file", os.path.join(HERE, "schemathesis.toml"),
        "run", server.base + "/openapi.json",
        "--checks", "all",
        "--max-examples", str(args.max_examples),
        "--workers", "2",
        "--request-timeout", "30",
        "--generation-database", "none",
        "--no-color",
    ]
    if args.seed != "random":
        cmd += ["--seed", str(args.seed)]
    if args.max_time:
        cmd += ["--max-time", str(args.max_time)]
    for name, value in headers.items():
        cmd += ["--header", f"{name}: {value}"]
    cmd += ["--include-operation-id-regex", "^(" + "|".join(s.replace(".", r"\.") for s in selected) + ")$"]
    cmd += extra
    env = dict(os.environ, SCHEMATHESIS_HOOKS=os.path.join(HERE, "hooks.py"))
    sys.path.insert(0, HERE)
    import hooks

    for name, what in hooks.KNOWN_DEVIATIONS.items():
        print(f"fuzz: tolerating a known server deviation ({name}): {what}")
    printable = [c if not c.startswith("Authorization:") else "Authorization: Bearer ..." for c in cmd]
    print("fuzz: " + " ".join(printable), flush=True)
    # In the sandbox: schemathesis keeps a cache directory in its working directory.
    proc = subprocess.Popen(cmd, env=env, cwd=server.sandbox, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")
    counts = {}
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        m = re.search(r"^\s*(\d+) generated, .*?(?:found (\d+) unique failures?|$)", line)
        if m:
            counts = {"generated": int(m[1]), "failed": int(m[2] or 0)}
    rc = proc.wait()
    if counts:
        # The closing line: test cases that passed, unique failures found.
        print(f"fuzz: {counts['generated'] - counts['failed']} passed, {counts['failed']} failed")
    if not server.alive():
        print("fuzz: the server died during the run", file=sys.stderr)
        return False
    return rc == 0


class Server:
    def __init__(self, binary, sandbox):
        self.binary = binary
        self.sandbox = sandbox
        self.log_path = os.path.join(sandbox, "server.log")
        self.proc = None
        self.base = None

    def start(self):
        config_dir = os.path.join(self.sandbox, "config")
        os.makedirs(config_dir)
        config = {
            "instance": "fuzz",
            "auth": {"users": [{"name": FUZZ_USER, "passwordBcrypt": FUZZ_PASSWORD_BCRYPT}]},
        }
        with open(os.path.join(config_dir, "config.json"), "w") as f:
            json.dump(config, f)
        env = dict(os.environ, HOME=self.sandbox, RUST_LOG="info", XDG_CONFIG_HOME=config_dir,
                   XDG_DATA_HOME=os.path.join(self.sandbox, "data"))
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [self.binary, "-bind-address", "127.0.0.1:0",
             "-config-file", os.path.join(config_dir, "config.json"),
             "-data-dir", os.path.join(self.sandbox, "data")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log_file, env=env, text=True,
        )
        found = threading.Event()

        def read_stdout():
            for line in self.proc.stdout:
                if line.startswith("backrest-rs listening on ") and not found.is_set():
                    self.base = line.split(" on ", 1)[1].strip()
                    found.set()

        threading.Thread(target=read_stdout, daemon=True).start()
        if not found.wait(60):
            raise RuntimeError("the server did not start:\n" + tail(self.log()))
        print(f"fuzz: server pid {self.proc.pid} at {self.base}, sandbox {self.sandbox}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM and wait; True when it exited 0 in time."""
        if self.proc is None:
            return True
        if self.proc.poll() is not None:
            return False
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30) == 0
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return False

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def get(self, path):
        with urllib.request.urlopen(self.base + path, timeout=30) as r:
            return r.read()

    def call(self, path, body, headers=None):
        req = urllib.request.Request(
            self.base + path, data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"fuzz: {'passed' if code == 0 else 'FAILED'} in {time.monotonic() - started:.0f}s")
    sys.exit(code)
