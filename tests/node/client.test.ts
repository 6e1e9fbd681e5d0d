// Drives a running backrest-rs with the real Connect-ES client, over both the
// binary (application/proto) and JSON Connect transports on HTTP/1.1.
//
// Usage: BACKREST_URL=http://127.0.0.1:PORT npm test
//    or: npx tsx client.test.ts http://127.0.0.1:PORT
//
// The server must be started with `-keepalive-interval 200ms` and an oplog
// seeded (by tests/connect_es.rs) with:
//   - operations of plan "plan-a" (PLAN_A_COUNT of them, display messages
//     "seed-a-<n>"), which GetOperations must return;
//   - one operation of plan "clear-<mode>" per mode ("binary", "json"), which
//     that mode deletes with ClearHistory and must then see in a
//     deletedOperations event (CLEAR_ID_BINARY / CLEAR_ID_JSON, when set,
//     give their ids as the Rust side saw them).
// Exits non-zero when any check fails (node:test sets the exit code).

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";

import { PlanSchema, type Config } from "./gen/v1/config_pb.js";
import type { OperationEvent } from "./gen/v1/operations_pb.js";
import { Backrest } from "./gen/v1/service_pb.js";

const baseUrl = process.env.BACKREST_URL ?? process.argv[2];
if (!baseUrl) {
  console.error("usage: BACKREST_URL=http://127.0.0.1:PORT npm test   (or pass the URL as the first argument)");
  process.exit(2);
}
const PLAN_A_COUNT = Number(process.env.PLAN_A_COUNT ?? "2");

// A hard stop so a hung stream can never hang the Rust test forever.
const watchdog = setTimeout(() => {
  console.error("client.test.ts: watchdog: still running after 90s, giving up");
  process.exit(3);
}, 90_000);
watchdog.unref();

type Mode = "binary" | "json";

/** The next stream item, or a failure after `ms`. */
async function nextWithin<T>(it: AsyncIterator<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms);
  });
  try {
    const r = await Promise.race([it.next(), timeout]);
    if (r.done) throw new Error(`stream ended while waiting for ${what}`);
    return r.value;
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `fn`, which must reject with a ConnectError of `code`; returns it. */
async function expectConnectError(code: Code, fn: () => Promise<unknown>, what: string): Promise<ConnectError> {
  try {
    await fn();
  } catch (e) {
    const err = ConnectError.from(e);
    assert.equal(
      err.code,
      code,
      `${what}: expected code ${Code[code]}, got ${Code[err.code]}: ${err.rawMessage}`,
    );
    return err;
  }
  assert.fail(`${what}: expected a ConnectError with code ${Code[code]}, but the call succeeded`);
}

function describeEvent(ev: OperationEvent): string {
  const e = ev.event;
  switch (e.case) {
    case "deletedOperations":
      return `deletedOperations[${e.value.values.join(",")}]`;
    case "createdOperations":
    case "updatedOperations":
      return `${e.case}[${e.value.operations.map((o) => o.id).join(",")}]`;
    default:
      return String(e.case);
  }
}

for (const mode of ["binary", "json"] as Mode[]) {
  describe(`Connect-ES client, ${mode} format`, () => {
    const transport = createConnectTransport({
      baseUrl,
      httpVersion: "1.1",
      useBinaryFormat: mode === "binary",
    });
    const client: Client<typeof Backrest> = createClient(Backrest, transport);

    test("GetConfig returns a sanitized config", async () => {
      const cfg = await client.getConfig({});
      assert.equal(typeof cfg.modno, "number", "modno is a number");
      assert.equal(cfg.version, 6, "config version");
      const id = cfg.multihost?.identity;
      assert.ok(id, "config.sync.identity is present");
      assert.ok(id.keyid.startsWith("ed25519."), `identity keyId starts with "ed25519.": ${JSON.stringify(id.keyid)}`);
      assert.equal(id.ed25519priv, "", "the private key is not sent to clients");
    });

    test("SetConfig: modno bump, stale modno, invalid plan", async () => {
      const before: Config = await client.getConfig({});
      const instance = `node-${mode}`;
      const saved = await client.setConfig({ ...before, instance });
      assert.equal(saved.modno, before.modno + 1, "SetConfig bumps modno by one");
      assert.equal(saved.instance, instance, "SetConfig echoes the instance");
      const reread = await client.getConfig({});
      assert.equal(reread.modno, saved.modno, "GetConfig sees the new modno");
      assert.equal(reread.instance, instance, "GetConfig sees the new instance");

      // The modno we read first is stale now.
      await expectConnectError(
        Code.FailedPrecondition,
        () => client.setConfig({ ...before, instance: `${instance}-stale` }),
        "SetConfig with a stale modno",
      );

      const planId = `bad-plan-${mode}`;
      const badPlan = create(PlanSchema, { id: planId, repo: `no-such-repo-${mode}`, paths: ["/tmp"] });
      const err = await expectConnectError(
        Code.InvalidArgument,
        () => client.setConfig({ ...reread, plans: [...reread.plans, badPlan] }),
        "SetConfig with a plan on a missing repo",
      );
      assert.ok(err.rawMessage.includes(planId), `the error names the plan ${planId}: ${err.rawMessage}`);

      // Nothing was saved by the rejected calls.
      const after = await client.getConfig({});
      assert.equal(after.modno, saved.modno, "rejected SetConfig calls leave modno alone");
      assert.ok(!after.plans.some((p) => p.id === planId), "the invalid plan was not saved");
    });

    test("GetOperations by plan returns the seeded operations", async () => {
      const list = await client.getOperations({ selector: { planId: "plan-a" } });
      const ops = list.operations;
      assert.equal(ops.length, PLAN_A_COUNT, `plan-a operations: ${ops.map((o) => o.displayMessage).join(", ")}`);
      const ids = new Set<bigint>();
      for (const op of ops) {
        assert.equal(typeof op.id, "bigint", "operation ids are bigint");
        assert.ok(op.id > 0n, "operation ids are positive");
        assert.ok(op.modno > 0n, "operation modno is set");
        assert.equal(op.planId, "plan-a");
        assert.equal(op.repoId, "repo-a");
        assert.ok(op.unixTimeStartMs > 0n);
        assert.match(op.displayMessage, /^seed-a-\d+$/);
        ids.add(op.id);
      }
      assert.equal(ids.size, ops.length, "ids are distinct");
      const msgs = ops.map((o) => o.displayMessage).sort();
      assert.deepEqual(msgs, Array.from({ length: PLAN_A_COUNT }, (_, i) => `seed-a-${i + 1}`).sort());
    });

    test("GetOperationEvents: keep-alives, then ClearHistory shows up as deletedOperations", async () => {
      const seeded = await client.getOperations({ selector: { planId: `clear-${mode}` } });
      assert.equal(seeded.operations.length, 1, `exactly one seeded operation of plan clear-${mode}`);
      const targetId = seeded.operations[0].id;
      const expected = process.env[`CLEAR_ID_${mode.toUpperCase()}`];
      if (expected) assert.equal(targetId, BigInt(expected), `the id the oplog gave the clear-${mode} operation`);

      const abort = new AbortController();
      const stream = client.getOperationEvents({}, { signal: abort.signal })[Symbol.asyncIterator]();
      try {
        // A keep-alive comes every 200ms; skip (but report) anything else.
        const seen: string[] = [];
        const keepAliveBy = Date.now() + 5000;
        for (;;) {
          const left = keepAliveBy - Date.now();
          if (left <= 0) assert.fail(`no keepAlive event within 5s; saw: ${seen.join(" ")}`);
          const ev = await nextWithin(stream, left, `a keepAlive event (saw: ${seen.join(" ")})`);
          seen.push(describeEvent(ev));
          if (ev.event.case === "keepAlive") break;
        }

        await client.clearHistory({ selector: { ids: [targetId] } });

        const deadline = Date.now() + 5000;
        for (;;) {
          const left = deadline - Date.now();
          if (left <= 0) assert.fail(`no deletedOperations event with id ${targetId} within 5s; saw: ${seen.join(" ")}`);
          const ev = await nextWithin(stream, left, `a deletedOperations event with id ${targetId} (saw: ${seen.join(" ")})`);
          seen.push(describeEvent(ev));
          if (ev.event.case === "deletedOperations" && ev.event.value.values.includes(targetId)) break;
        }

        const remaining = await client.getOperations({ selector: { ids: [targetId] } });
        assert.equal(remaining.operations.length, 0, "the cleared operation is gone");
      } finally {
        abort.abort();
        // The aborted stream ends with a Canceled error (or just ends).
        try {
          await stream.next();
        } catch (e) {
          const err = ConnectError.from(e);
          assert.equal(err.code, Code.Canceled, `aborted stream: ${err.message}`);
        }
      }
    });
  });
}

after(() => clearTimeout(watchdog));
