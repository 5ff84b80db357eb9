// Type declarations for herald.js, the browser client of Herald.
// Guide: docs/herald-js.md.

/** How the client picks its transport. */
export type TransportMode = 'auto' | 'websocket' | 'sse';

/** A transport in use. */
export type Transport = 'websocket' | 'sse';

export interface HeraldOptions {
  /** Topics to follow (at least one). */
  topics: string[] | string;
  /** 'auto' (default) probes the network and picks; 'websocket' or 'sse' forces one. */
  transport?: TransportMode;
  /** Median round-trip time (ms) above which the network is weak. Default 300. */
  rttThreshold?: number;
  /** Fraction of failed probe samples above which the network is weak. Default 0.2. */
  lossThreshold?: number;
  /** Milliseconds between network probes in 'auto' mode. Default 30000. */
  probeInterval?: number;
  /** GET /ping samples per probe (fewer when the network is clearly weak early). Default 5. */
  probeSamples?: number;
  /** A sample slower than this (ms) counts as lost. Default 2000. */
  probeTimeout?: number;
  /**
   * Milliseconds between light checks: a ping frame on a WebSocket and, in 'auto' mode, one GET /ping sample
   * (or, with no connection, whether the server answers again). A check that disagrees with the last probe starts
   * a probe at once. 0 turns checks off. Default 3000.
   */
  checkInterval?: number;
  /** An SSE stream that receives nothing (not even a keep-alive comment) for this long (ms) is reconnected. 0: never. Default 45000. */
  heartbeatTimeout?: number;
  /** Failed WebSocket attempts in a row before falling back to SSE. Default 2. */
  wsFailuresBeforeFallback?: number;
  /** After a fallback, milliseconds before WebSocket is tried again. Default 60000. */
  wsRetryInterval?: number;
  /** A WebSocket that closes sooner than this (ms) after opening counts as failed. Default 10000. */
  wsStableTime?: number;
  /** First reconnection delay (ms); doubles up to maxReconnectDelay, with jitter. Default 1000. */
  reconnectDelay?: number;
  /** Longest reconnection delay (ms). Default 30000. */
  maxReconnectDelay?: number;
  /** A connection that delivers nothing in this time (ms) counts as failed. Default 10000. */
  connectTimeout?: number;
  /** Milliseconds to wait for the ack of a sent message before retrying it. Default 10000. */
  ackTimeout?: number;
  /** Topic that send() publishes to when its options name none. */
  sendTopic?: string;
  /** Resume from this event id (e.g. saved from an earlier page). */
  lastEventId?: string;
  /** This client's id for message deduplication. Default: a random UUID. */
  clientId?: string;
  /** A token sent as the `authorization` query parameter. */
  token?: string;
  /** Called before each connection and send for a fresh token (wins over `token`). */
  getToken?: () => string | Promise<string>;
  /** How many recent event ids are remembered to drop duplicates. Default 10000. */
  dedupeSize?: number;
  /** Milliseconds added to every probe sample: pretend the network is slow (demos). Default 0. */
  simulatedLatency?: number;
}

/** A published event. */
export interface HeraldMessage {
  /** The event id (opaque; resume position). */
  id: string;
  /** The event type; 'message' when the publisher gave none. */
  event: string;
  /** The event data as published (a string; JSON.parse it if it is JSON). */
  data: string;
  /** The transport it came over. */
  transport: Transport;
}

/** The server said the client may have missed events (herald.reset). */
export interface HeraldReset {
  reason: 'history-truncated' | 'epoch-changed' | 'invalid-id' | string;
  lastEventId: string;
  transport: Transport;
}

/** The result of a network probe. */
export interface NetworkReport {
  /** Median round-trip time of the successful samples (ms); Infinity if none. */
  rtt: number;
  /** Fraction of samples that failed or timed out. */
  loss: number;
  /** rtt > rttThreshold or loss > lossThreshold (never when offline). */
  weak: boolean;
  /**
   * No sample got an answer: the server is unreachable (down, restarting, or the network is gone). This says
   * nothing about the network's quality, so the transport choice stays as the last probe that reached the server
   * made it, and the client reconnects as soon as the server answers again.
   */
  offline: boolean;
  /** Samples taken. */
  samples: number;
  /** Date.now() of the probe. */
  at: number;
}

/** Why the client moved to a transport. */
export type TransportReason =
  /** setTransport() or options.transport forced it. */
  | 'forced'
  /** The last probe found the network good (WebSocket). */
  | 'good'
  /** The last probe found the network weak (SSE). */
  | 'weak'
  /** WebSocket kept failing while the server answered HTTP: SSE for wsRetryInterval. */
  | 'fallback'
  /** No WebSocket in this environment. */
  | 'unsupported';

export interface TransportChange {
  transport: Transport;
  previous: Transport | null;
  reason: TransportReason;
}

export interface OpenInfo {
  transport: Transport;
}

export interface CloseInfo {
  /** Every topic ended (final events delivered): the client stops. */
  finished: boolean;
  /** The connection dropped and the client is reconnecting. */
  reconnecting: boolean;
  transport?: Transport;
  code?: number;
  reason?: string;
}

export interface ErrorInfo {
  message: string;
  status?: number;
  transport?: Transport;
  code?: number;
}

/** The server's acknowledgement of a sent message. */
export interface Ack {
  msgId: string;
  /** The event id of the message when published to a topic. */
  id: string;
  /** The server had delivered this message before (this answered a retry). */
  duplicate: boolean;
}

export interface SendOptions {
  /** Topic to publish to (default: options.sendTopic). */
  topic?: string;
  /** Event type to publish with. */
  event?: string;
}

export interface HeraldEventMap {
  message: HeraldMessage;
  open: OpenInfo;
  close: CloseInfo;
  transport: TransportChange;
  reset: HeraldReset;
  network: NetworkReport;
  error: ErrorInfo;
}

/** A message the server refused (status 4xx), or a closed client (status 0). */
export class HeraldError extends Error {
  /** The HTTP-like status (0 for a closed client). */
  readonly status: number;
  /** The server's machine-readable reason, if it gave one (e.g. "token_expired"). */
  readonly code: string;
}

export class Herald extends EventTarget {
  /**
   * @param baseUrl the server, e.g. "https://push.example.com"; "" for this page's origin
   */
  constructor(baseUrl: string, options: HeraldOptions);

  /** The transport in use, or null while not connected. */
  readonly transport: Transport | null;
  readonly mode: TransportMode;
  /** Where a new connection resumes. Save it to resume after a reload. */
  readonly lastEventId: string;
  readonly network: NetworkReport | null;
  readonly clientId: string;
  readonly state: 'connecting' | 'open' | 'finished' | 'closed';
  /** Sent messages not acknowledged yet. */
  readonly pendingSends: number;
  simulatedLatency: number;

  /** Listens with the event's detail; returns a function that stops listening. */
  on<K extends keyof HeraldEventMap>(type: K, fn: (detail: HeraldEventMap[K]) => void): () => void;
  /** Events of one type: 'event:<type>' ('event:message' for untyped events). */
  on(type: `event:${string}`, fn: (detail: HeraldMessage) => void): () => void;

  addEventListener<K extends keyof HeraldEventMap>(type: K, listener: (ev: CustomEvent<HeraldEventMap[K]>) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: `event:${string}`, listener: (ev: CustomEvent<HeraldMessage>) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;

  /** Sends a message; resolves on the server's ack, rejects with HeraldError on a 4xx or close(). */
  send(data: unknown, options?: SendOptions): Promise<Ack>;
  /** Measures the network now. */
  probe(): Promise<NetworkReport>;
  /** Changes the transport mode at run time. */
  setTransport(mode: TransportMode): void;
  /** Closes for good; pending sends are rejected. */
  close(): void;
}

export default Herald;
