/**
 * A thin fetch wrapper over the bet REST API. The types come from src/schema.ts, generated
 * from the service's OpenAPI document by `make clients`; nothing here restates a field.
 */
import type { components, paths } from "./schema.js";

type Schemas = components["schemas"];
export type PredictRequest = Schemas["PredictRequest"];
export type PredictBatchRequest = Schemas["PredictBatchRequest"];
export type PredictResponse = Schemas["PredictResponse"];
export type PredictBatchResponse = Schemas["PredictBatchResponse"];
export type ModelInfo = Schemas["ModelInfo"];
export type Uncertainty = Schemas["Uncertainty"];
/** The options of a prediction; the server's defaults hold for those left out. */
export type PredictOptions = Partial<Omit<PredictRequest, "text">>;
export interface Health {
  live: boolean;
  ready: boolean;
}

/** An answer that is not the result asked for: one class per row of the error table. */
export class BetError extends Error {
  constructor(
    readonly detail: string,
    /** The HTTP status, or 0 when no answer came. */
    readonly status: number,
    /** Seconds the server asked to wait (Retry-After), if it did. */
    readonly retryAfter?: number,
  ) {
    super(detail);
    this.name = new.target.name;
  }
}
export class InvalidArgumentError extends BetError {}
/** Confidence below the request's threshold; `prediction` is the answer anyway. */
export class LowConfidenceError extends BetError {
  constructor(
    detail: string,
    readonly prediction: PredictResponse | PredictBatchResponse,
  ) {
    super(detail, 422);
  }
}
export class UnauthenticatedError extends BetError {}
export class PermissionDeniedError extends BetError {}
export class NotFoundError extends BetError {}
/** The server cannot do it in its present state (409), e.g. load a broken model version. */
export class ConflictError extends BetError {}
export class RateLimitedError extends BetError {}
export class UnavailableError extends BetError {}
export class DeadlineExceededError extends BetError {}
export class InternalError extends BetError {}

const BY_STATUS: Record<number, typeof BetError> = {
  400: InvalidArgumentError,
  401: UnauthenticatedError,
  403: PermissionDeniedError,
  404: NotFoundError,
  408: DeadlineExceededError,
  409: ConflictError,
  413: InvalidArgumentError,
  415: InvalidArgumentError,
  422: InvalidArgumentError,
  429: RateLimitedError,
  500: InternalError,
  502: UnavailableError,
  503: UnavailableError,
  504: DeadlineExceededError,
};

/** The typed error for a non-2xx answer and its JSON body. */
export function errorFrom(status: number, body: unknown, retryAfter?: number): BetError {
  const b = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
  const detail = typeof b.detail === "string" ? b.detail : `HTTP ${status}`;
  if (status === 422 && b.prediction) {
    return new LowConfidenceError(detail, b.prediction as PredictResponse);
  }
  if (status === 422 && Array.isArray(b.predictions)) {
    return new LowConfidenceError(detail, { predictions: b.predictions as PredictResponse[] });
  }
  return new (BY_STATUS[status] ?? BetError)(detail, status, retryAfter);
}

export interface RetryPolicy {
  /** Tries in all, the first included; 1 turns retrying off. */
  maxAttempts: number;
  /** Seconds: the cap of the first wait, doubling after each try up to maxBackoff. */
  initialBackoff: number;
  maxBackoff: number;
}

export interface ClientOptions {
  /** e.g. "http://127.0.0.1:8000" */
  baseUrl: string;
  /** Sent as `authorization: Bearer <token>`. */
  token?: string;
  /** Sent as `x-api-key`. */
  apiKey?: string;
  /** Per call, retries included (milliseconds). Default 30 s. */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
}

export interface CallOptions {
  timeoutMs?: number;
}

type JsonPath = keyof paths;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class BetClient {
  private readonly baseUrl: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;

  constructor(options: ClientOptions | string) {
    const o = typeof options === "string" ? { baseUrl: options } : options;
    this.baseUrl = o.baseUrl.replace(/\/+$/, "");
    this.headers = { "content-type": "application/json" };
    if (o.token) this.headers.authorization = `Bearer ${o.token}`;
    if (o.apiKey) this.headers["x-api-key"] = o.apiKey;
    this.timeoutMs = o.timeoutMs ?? 30_000;
    this.retry = { maxAttempts: 4, initialBackoff: 0.1, maxBackoff: 5, ...o.retry };
  }

  predict(text: string, options: PredictOptions & CallOptions = {}): Promise<PredictResponse> {
    const { timeoutMs, ...opts } = options;
    return this.call<PredictResponse>("POST", "/v1/predict", { text, ...opts }, timeoutMs);
  }

  predictBatch(texts: string[], options: PredictOptions & CallOptions = {}): Promise<PredictBatchResponse> {
    const { timeoutMs, ...opts } = options;
    return this.call<PredictBatchResponse>("POST", "/v1/predict/batch", { texts, ...opts }, timeoutMs);
  }

  modelInfo(options: CallOptions = {}): Promise<ModelInfo> {
    return this.call<ModelInfo>("GET", "/v1/model", undefined, options.timeoutMs);
  }

  /** Readiness; a 503 from a live server is an answer (`ready: false`), not an error. */
  async health(options: CallOptions = {}): Promise<Health> {
    try {
      await this.call<unknown>("GET", "/health/ready", undefined, options.timeoutMs, false);
      return { live: true, ready: true };
    } catch (error) {
      if (error instanceof UnavailableError && error.status === 503) return { live: true, ready: false };
      throw error;
    }
  }

  /** One request with retries on 503 / 429 / no connection, within one deadline. */
  private async call<T>(method: string, path: JsonPath, body: unknown, timeoutMs?: number, retry = true): Promise<T> {
    const deadline = Date.now() + (timeoutMs ?? this.timeoutMs);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once<T>(method, path, body, deadline);
      } catch (error) {
        const wait = retry ? this.delay(attempt, error, deadline - Date.now()) : undefined;
        if (wait === undefined) throw error;
        await sleep(wait);
      }
    }
  }

  /** Milliseconds to wait before the next try, or undefined to give up. */
  private delay(attempt: number, error: unknown, remainingMs: number): number | undefined {
    const retryable = error instanceof UnavailableError || error instanceof RateLimitedError;
    if (!retryable || attempt >= this.retry.maxAttempts) return undefined;
    const cap = Math.min(this.retry.maxBackoff, this.retry.initialBackoff * 2 ** (attempt - 1));
    const wait = 1000 * Math.max(Math.random() * cap, error.retryAfter ?? 0);
    return wait < remainingMs ? wait : undefined;
  }

  private async once<T>(method: string, path: JsonPath, body: unknown, deadline: number): Promise<T> {
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new DeadlineExceededError("the call's timeout passed before it was answered", 0);
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.baseUrl + path, {
        method,
        headers: this.headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(remaining),
      });
      text = await response.text();
    } catch (error) {
      if (error instanceof DOMException && (error.name === "TimeoutError" || error.name === "AbortError")) {
        throw new DeadlineExceededError("no answer within the call's timeout", 0);
      }
      throw new UnavailableError(`cannot reach ${this.baseUrl}: ${(error as Error).message}`, 0);
    }
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (response.ok) return json as T;
    const header = response.headers.get("retry-after");
    const retryAfter = header !== null && Number.isFinite(Number(header)) ? Number(header) : undefined;
    throw errorFrom(response.status, json, retryAfter);
  }
}
