/**
 * The TypeScript client against a live `bet` server (BET_REST_URL, started by
 * tests/clients/test_typescript.py), and against tiny local servers that answer 503 or
 * never answer, for retries and timeouts.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";

import {
  BetClient,
  DeadlineExceededError,
  InvalidArgumentError,
  LowConfidenceError,
  UnavailableError,
  type PredictResponse,
} from "../src/index.js";

const baseUrl = process.env.BET_REST_URL;

describe("against bet serve", { skip: baseUrl ? false : "BET_REST_URL is not set" }, () => {
  const client = new BetClient({ baseUrl: baseUrl ?? "", timeoutMs: 20_000 });

  test("predicts with probabilities and uncertainty", async () => {
    const answer = await client.predict("What a wonderful film!", { return_cot: true });
    const labels = (await client.modelInfo()).labels;
    assert.ok(labels.includes(answer.prediction));
    assert.equal(answer.label_id, labels.indexOf(answer.prediction));
    const total = Object.values(answer.probabilities).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(total - 1) < 1e-6);
    assert.ok(answer.uncertainty && answer.uncertainty.epistemic >= 0);
    assert.ok(typeof answer.cot_length === "number" && (answer.reasoning ?? []).length > 0);
  });

  test("batches in order, each as its single prediction", async () => {
    const texts = ["Loved it.", "Dull and far too long.", "It was fine, I guess."];
    const batch = await client.predictBatch(texts);
    assert.equal(batch.predictions.length, texts.length);
    for (const [i, text] of texts.entries()) {
      const single: PredictResponse = await client.predict(text);
      assert.equal(batch.predictions[i].prediction, single.prediction);
      assert.ok(Math.abs(batch.predictions[i].confidence - single.confidence) < 1e-6);
    }
  });

  test("reports health and model info", async () => {
    assert.deepEqual(await client.health(), { live: true, ready: true });
    const info = await client.modelInfo();
    assert.ok(info.version.length > 0 && info.n_views > 0);
  });

  test("invalid input is an InvalidArgumentError, not retried", async () => {
    await assert.rejects(client.predict("   "), (error: unknown) => {
      assert.ok(error instanceof InvalidArgumentError);
      assert.equal(error.status, 422);
      assert.match(error.detail, /text/);
      return true;
    });
    await assert.rejects(client.predictBatch([]), InvalidArgumentError);
  });

  test("low confidence is a LowConfidenceError carrying the prediction", async () => {
    await assert.rejects(client.predict("It was a film.", { confidence_threshold: 1 }), (error: unknown) => {
      assert.ok(error instanceof LowConfidenceError);
      const prediction = error.prediction as PredictResponse;
      assert.ok(prediction.confidence < 1 && prediction.prediction.length > 0);
      return true;
    });
    await assert.rejects(client.predictBatch(["a", "b"], { confidence_threshold: 1 }), (error: unknown) => {
      assert.ok(error instanceof LowConfidenceError);
      assert.equal((error.prediction as { predictions: unknown[] }).predictions.length, 2);
      return true;
    });
  });
});

describe("retries and timeouts", () => {
  let server: Server;
  let url = "";
  let hits = 0;
  let mode: "busy" | "slow" = "busy";

  before(async () => {
    server = createServer((request, response) => {
      hits++;
      if (mode === "slow") return; // never answers
      response.writeHead(503, { "content-type": "application/json", "retry-after": "0" });
      response.end(JSON.stringify({ detail: "overloaded" }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  test("503 is retried up to maxAttempts, then an UnavailableError", async () => {
    hits = 0;
    mode = "busy";
    const client = new BetClient({ baseUrl: url, retry: { maxAttempts: 3, initialBackoff: 0.01 } });
    await assert.rejects(client.predict("x"), (error: unknown) => {
      assert.ok(error instanceof UnavailableError);
      assert.equal(error.status, 503);
      assert.equal(error.retryAfter, 0);
      return true;
    });
    assert.equal(hits, 3);
  });

  test("a call past its timeout is a DeadlineExceededError", async () => {
    mode = "slow";
    const client = new BetClient({ baseUrl: url, timeoutMs: 200 });
    const started = Date.now();
    await assert.rejects(client.predict("x"), DeadlineExceededError);
    assert.ok(Date.now() - started < 2_000);
  });
});
