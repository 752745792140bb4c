// Create a Recall.ai bot through retryd; wait out a 202 for the final answer. Node 18+:
// RETRYD_URL=http://127.0.0.1:8080 RECALL_API_KEY=... node create-bot.mjs MEETING_URL
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

const BASE = process.env.RETRYD_URL ?? "http://127.0.0.1:8080"; // retryd, not the API itself
const WAIT = 60; // seconds retryd may hold one long-poll (capped by its --max-wait, 120 s)
const auth = { Authorization: `Token ${process.env.RECALL_API_KEY}` };
if (process.env.RETRYD_TOKEN) auth["X-Retryd-Token"] = process.env.RETRYD_TOKEN; // never sent upstream

// Lost connections, timeouts and retryd's 503 (not stored, Retry-After) are
// tried again: safe for the POST too, which resends its Idempotency-Key.
async function call(url, { headers, ...init }, timeoutS) {
  for (let tries = 1; ; tries++) {
    try {
      const r = await fetch(url, { ...init, headers: { ...auth, ...headers },
                                   signal: AbortSignal.timeout(timeoutS * 1000) });
      if (r.status !== 503 || tries === 5) return r;
      await r.body?.cancel();
      await sleep(1000 * (Number(r.headers.get("retry-after")) || 1));
    } catch (e) { if (tries === 5) throw e; await sleep(1000 * tries); }
  }
}

async function createBot(payload, idempotencyKey) {
  const r = await call(`${BASE}/api/v1/bot/`, { method: "POST", body: JSON.stringify(payload),
    headers: { "Content-Type": "application/json", "Idempotency-Key": idempotencyKey } },
    75); // above retryd's --upstream-timeout (60 s)
  if (r.status !== 202) return r; // the upstream's own answer: 201, 400, ...
  const statusUrl = new URL(r.headers.get("location"), BASE).href;
  for (;;) { // each long-poll returns when the request ends, or after WAIT s
    const st = await call(statusUrl, { headers: { Prefer: `wait=${WAIT}` } }, WAIT + 15);
    if (!st.ok) throw new Error(`status ${st.status}: ${await st.text()}`);
    const rq = await st.json();
    if (rq.state === "completed") return call(`${statusUrl}/response`, {}, 30); // verbatim
    if (rq.state === "dead" || rq.state === "cancelled")
      throw new Error(`${rq.id} ${rq.state} after ${rq.attempts} attempts ` +
                      `(last_status ${rq.last_status}, last_error ${rq.last_error})`);
  }
}

try { // better: a key derived from your own record, reused if this call is repeated
  const r = await createBot({ meeting_url: process.argv[2], bot_name: "Notetaker" }, randomUUID());
  console.log(r.status, await r.text());
  if (!r.ok) process.exitCode = 1;
} catch (e) { console.error(`not created: ${e.message}`); process.exitCode = 1; }
