// SPDX-License-Identifier: Apache-2.0
// Types for changecast.js (the push port serves it at /v1/client.js).
// The protocol is docs/push-protocol.md.

/** A cluster time. */
export interface Timestamp {
    t: number;
    i: number;
}

/** Any form an application holds a cluster time in. */
export type TimestampLike =
    | Timestamp
    | { $timestamp: Timestamp }
    | { getHighBits(): number; getLowBits(): number }
    | { high: number; low: number }
    | bigint;

/** A relaxed Extended JSON value as the push port writes it. */
export type EJson = null | boolean | number | string | EJson[] | { [key: string]: EJson };
export type Doc = { _id: EJson; [field: string]: EJson };

export interface UpdateDescription {
    updatedFields?: Record<string, EJson>;
    removedFields?: string[];
    truncatedArrays?: { field: string; newSize: number }[];
    disambiguatedPaths?: Record<string, (string | number)[]>;
}

/** A MongoDB change event (relaxed Extended JSON). */
export interface ChangeEvent {
    _id: { _data: string };
    operationType: 'insert' | 'update' | 'replace' | 'delete' | 'drop' | 'rename' | 'dropDatabase' | 'invalidate';
    clusterTime: { $timestamp: Timestamp };
    wallTime?: { $date: string };
    ns: { db: string; coll?: string };
    documentKey?: { _id: EJson };
    fullDocument?: Doc | null;
    updateDescription?: UpdateDescription;
    [field: string]: unknown;
}

export type Op = ChangeEvent['operationType'];

export interface Selection {
    /** `db.coll` or `db.*`; one namespace for a live query. */
    ns: string | string[];
    /** On change events, or (with snapshot / format 'docs') on documents. */
    filter?: Record<string, unknown>;
    ops?: Op[];
    fullDocument?: string;
    snapshot?: boolean;
    format?: 'changes' | 'docs';
    sort?: Record<string, 1 | -1>;
    limit?: number;
    /** A token to resume after. */
    after?: string;
}

export type DocMessage =
    | { type: 'upsert'; _id: EJson; doc: Doc; token: string | null }
    | { type: 'delete'; _id: EJson; token: string | null };

export type Item = { type: 'change'; token: string | null; event: ChangeEvent } | DocMessage;

export interface TxnInfo {
    txnNumber: number;
    lsid: unknown;
}

export interface ChangeInfo {
    token: string | null;
    subscription: string;
    txn: TxnInfo | null;
}

export interface Snapshot {
    docs: Doc[];
    atClusterTime: Timestamp | null;
    token: string | null;
}

export interface ResetInfo {
    reason: 'history_lost' | 'slow_consumer' | 'capture_restarted' | 'too_many_pending' | string;
    message?: string;
}

export interface SubscriptionError {
    code: string;
    message: string;
}

export interface Handlers {
    /** The server took the subscription (again after each reconnect). */
    onSubscribed?: () => void;
    onChange?: (change: ChangeEvent | DocMessage, info: ChangeInfo) => void;
    onSnapshot?: (snapshot: Snapshot) => void;
    onReset?: (reset: ResetInfo) => void;
    onError?: (error: SubscriptionError) => void;
    onTransaction?: (items: Item[], txn: TxnInfo) => void;
}

export type State = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface ConnectOptions {
    /** A bearer token (JWT), sent as the `access_token` query parameter. */
    token?: string;
    /** Called before the first connect and again `refreshMarginMs` before the JWT's `exp`; an open WebSocket gets the new token as `{"type": "auth"}`. */
    getToken?: () => string | Promise<string>;
    refreshMarginMs?: number;
    /** Default 'auto': WebSocket, or SSE when a WebSocket cannot be opened at first. */
    transport?: 'sse' | 'ws' | 'auto';
    /** Constructors for Node (npm `ws`, npm `eventsource`); browsers have their own. */
    WebSocket?: unknown;
    EventSource?: unknown;
    fetch?: typeof fetch;
    /** Reconnect delay: uniform in [0, min(capMs, baseMs * 2^attempt)). Defaults 500 / 30000. */
    backoff?: { baseMs?: number; capMs?: number };
    /** A connection open this long resets the attempt count (default 5000). */
    stableMs?: number;
    /** WebSocket application pings; a socket silent for two intervals is replaced (default 15000, 0 = off). */
    pingIntervalMs?: number;
    random?: () => number;
}

export interface WaitForOptions {
    timeoutMs?: number;
}

export interface ChangedKeys {
    inserted: string[];
    updated: string[];
    deleted: string[];
    /** True when a new snapshot replaced the whole state (after a reset). */
    reset: boolean;
    /** True when this is a snapshot swapped in (the first load, or after a reset). */
    snapshot?: boolean;
    error?: SubscriptionError;
}

export interface CollectionOptions {
    /** A query on documents, as in find. */
    filter?: Record<string, unknown>;
    sort?: Record<string, 1 | -1>;
    limit?: number;
    /** Default: 'changes' without a filter or limit, 'docs' with one. */
    format?: 'changes' | 'docs';
    fullDocument?: string;
}

export declare class LiveCollection<T extends Doc = Doc> {
    readonly ns: string;
    readonly format: 'changes' | 'docs';
    status: 'loading' | 'live' | 'resyncing' | 'failed' | 'closed';
    error: SubscriptionError | null;
    lastReset?: ResetInfo;
    /** Resolves after the first snapshot is applied. */
    readonly ready: Promise<LiveCollection<T>>;
    /** Keyed by idKey(_id); a reset swaps in a new Map. */
    readonly docs: Map<string, T>;
    readonly size: number;
    get(id: EJson): T | undefined;
    has(id: EJson): boolean;
    keys(): IterableIterator<string>;
    /** In `sort` order (else arrival order); the same frozen array until a change. */
    rows(): readonly T[];
    getSnapshot(): readonly T[];
    subscribe(listener: (changed: ChangedKeys) => void): () => void;
    waitFor(operationTime: TimestampLike, options?: WaitForOptions): Promise<void>;
    close(): void;
}

export declare class Connection {
    readonly url: string;
    state: State;
    transportName: 'ws' | 'sse';
    on(name: State | 'reset' | 'state' | 'retry' | 'disconnect' | 'authenticated' | 'error', listener: (detail: any) => void): () => void;
    subscribe(selection: Selection, onChange?: Handlers['onChange'], handlers?: Handlers): () => void;
    subscribe(selection: Selection, handlers: Handlers): () => void;
    collection<T extends Doc = Doc>(ns: string, options?: CollectionOptions): LiveCollection<T>;
    /** Resolves once every open subscription has reached `operationTime`. */
    waitFor(operationTime: TimestampLike, options?: WaitForOptions): Promise<void>;
    close(): void;
}

export declare function connect(url: string, options?: ConnectOptions): Connection;

export declare function applyUpdate<T>(doc: T, description: UpdateDescription): T;
export declare function idKey(id: EJson): string;
export declare function toTimestamp(value: TimestampLike): Timestamp;
export declare function compareTimestamps(a: Timestamp, b: Timestamp): number;
export declare function backoffDelay(attempt: number, bounds?: { baseMs?: number; capMs?: number }, random?: () => number): number;
export declare function jwtExpiry(token: string): number | null;
export declare function deepEqual(a: unknown, b: unknown): boolean;
export declare function fromSse(name: string, data: string, id?: string | null): { type: string; [key: string]: unknown };
export declare const SSE_EVENTS: string[];
export declare const VERSION: string;

/** One subscription's protocol state, fed protocol messages (no I/O). */
export declare class Stream {
    constructor(selection: Selection, sink?: object);
    readonly id: string;
    token: string | null;
    position: Timestamp | null;
    failed: SubscriptionError | null;
    /** The server has taken the subscription and it has not been lost since. */
    active: boolean;
    duplicates: number;
    request(): Selection;
    feed(message: { type: string; [key: string]: unknown }): void;
    interrupted(): void;
}

export declare class Waiters {
    constructor(streams: () => Stream[]);
    waitFor(operationTime: TimestampLike, options?: WaitForOptions & { streams?: () => Stream[] }): Promise<void>;
    check(): void;
    rejectAll(error: Error): void;
}

declare const changecast: {
    connect: typeof connect;
    Connection: typeof Connection;
    LiveCollection: typeof LiveCollection;
    Stream: typeof Stream;
    Waiters: typeof Waiters;
    applyUpdate: typeof applyUpdate;
    idKey: typeof idKey;
    toTimestamp: typeof toTimestamp;
    compareTimestamps: typeof compareTimestamps;
    backoffDelay: typeof backoffDelay;
    fromSse: typeof fromSse;
    jwtExpiry: typeof jwtExpiry;
    deepEqual: typeof deepEqual;
    VERSION: string;
};
export default changecast;
