// SPDX-License-Identifier: Apache-2.0
/**
 * changecast browser client: one dependency-free ES module (browsers, and
 * Node 20+ with `EventSource`/`WebSocket` constructors passed in options).
 * It speaks docs/push-protocol.md: change events over Server-Sent Events or
 * WebSocket, watermarks, resets, live queries (snapshot, format=docs),
 * transactions, and resumption by token.
 *
 *   import * as changecast from '/v1/client.js';
 *   const conn = changecast.connect('http://127.0.0.1:8080');
 *   const off = conn.subscribe({ ns: 'shop.orders' }, (event) => console.log(event));
 *   const orders = conn.collection('shop.orders');          // live Map by _id
 *   orders.subscribe(({ inserted, updated, deleted }) => render(...));
 *   await conn.waitFor(session.operationTime);               // read-your-writes
 *
 * Layers, each usable alone (and unit-tested alone):
 *   - applyUpdate(): a change event's updateDescription applied to a document
 *     (copy-on-write, so untouched subtrees keep their identity);
 *   - Stream: one subscription's protocol state, fed protocol messages (the
 *     WebSocket shapes; fromSse() turns SSE events into them), no I/O;
 *   - LiveCollection: a normalized store on a snapshot-then-changes stream;
 *   - Connection + transports: sockets, backoff, resumption, tokens.
 * @module changecast
 */

export const VERSION = '1';

// ------------------------------------------------------------- timestamps

/**
 * A cluster time as `{t, i}` from any of the forms an application holds:
 * `{t, i}`, a BSON Timestamp (npm `bson`: `.t`/`.i`, or high/low bits), the
 * Extended JSON `{$timestamp: {t, i}}`, or an int64 as a bigint.
 */
export function toTimestamp(value) {
    if (value == null) throw new TypeError('changecast: no timestamp given');
    if (typeof value === 'bigint') {
        return { t: Number(value >> 32n), i: Number(value & 0xffffffffn) };
    }
    if (typeof value === 'object') {
        if (value.$timestamp) return toTimestamp(value.$timestamp);
        if (typeof value.t === 'number' && typeof value.i === 'number') {
            return { t: value.t, i: value.i };
        }
        if (typeof value.getHighBits === 'function' && typeof value.getLowBits === 'function') {
            return { t: value.getHighBits() >>> 0, i: value.getLowBits() >>> 0 };
        }
        if (typeof value.high === 'number' && typeof value.low === 'number') {
            return { t: value.high >>> 0, i: value.low >>> 0 };
        }
    }
    throw new TypeError(`changecast: not a timestamp: ${safeJson(value)}`);
}

/** Negative, zero or positive as a is before, at or after b (both `{t, i}`). */
export function compareTimestamps(a, b) {
    return a.t - b.t || a.i - b.i;
}

function laterTimestamp(a, b) {
    if (!a) return b;
    if (!b) return a;
    return compareTimestamps(a, b) >= 0 ? a : b;
}

function safeJson(value) {
    try {
        return JSON.stringify(value);
    } catch {
        return String(value);
    }
}

// ---------------------------------------------------------------- backoff

/**
 * Delay before reconnect attempt `attempt` (0 for the first): exponential
 * backoff with full jitter, uniform in [0, min(capMs, baseMs * 2^attempt)).
 */
export function backoffDelay(attempt, { baseMs = 500, capMs = 30000 } = {}, random = Math.random) {
    const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(Math.max(attempt, 0), 40));
    return Math.floor(random() * ceiling);
}

// -------------------------------------------------------------------- ids

/**
 * The key of a document in a LiveCollection: its `_id` in (relaxed)
 * Extended JSON, as the push port writes it: `"order-1"`, `7`,
 * `{"$oid":"65f2..."}`.
 */
export function idKey(id) {
    return JSON.stringify(id);
}

// ----------------------------------------------------- applying an update

const INDEX = /^(0|[1-9][0-9]*)$/;

function isContainer(value) {
    return value !== null && typeof value === 'object';
}

// Paths: "a.b.3.c". A numeric segment indexes an array and names a field of
// a document (as MongoDB reads it). Field names holding dots or digits are
// told apart by the server in updateDescription.disambiguatedPaths
// (MongoDB 6.1+): there a number is an array index and a string a field.
function segmentsOf(path, disambiguated) {
    const exact = disambiguated && disambiguated[path];
    return Array.isArray(exact) ? exact : path.split('.');
}

function childKey(container, segment) {
    if (Array.isArray(container) && (typeof segment === 'number' || INDEX.test(segment))) {
        return Number(segment);
    }
    return String(segment);
}

// Copy-on-write walker: containers copied once per applyUpdate() call.
class Writer {
    constructor(doc) {
        this.fresh = new WeakSet();
        this.root = this.own(doc);
    }

    own(container) {
        if (this.fresh.has(container)) return container;
        const copy = Array.isArray(container) ? container.slice() : { ...container };
        this.fresh.add(copy);
        return copy;
    }

    // The (owned) container holding the last segment, or null when the path
    // does not exist and create is false. $set creates missing documents.
    parentOf(segments, create) {
        let node = this.root;
        for (let k = 0; k < segments.length - 1; k++) {
            const key = childKey(node, segments[k]);
            let child = node[key];
            if (!isContainer(child)) {
                if (!create) return null;
                child = {};
                this.fresh.add(child);
            } else {
                child = this.own(child);
            }
            put(node, key, child);
            node = child;
        }
        return node;
    }
}

// Setting past the end of an array pads it with nulls, as MongoDB does.
function put(container, key, value) {
    if (Array.isArray(container) && typeof key === 'number') {
        while (container.length < key) container.push(null);
    }
    container[key] = value;
}

/**
 * A copy of `doc` with a change event's `updateDescription` applied:
 * `truncatedArrays` first, then `updatedFields` (dotted paths, array
 * indexes), then `removedFields`. Untouched parts are shared with `doc`.
 */
export function applyUpdate(doc, description) {
    const desc = description || {};
    const writer = new Writer(doc);
    const paths = desc.disambiguatedPaths;
    for (const { field, newSize } of desc.truncatedArrays || []) {
        const segments = segmentsOf(field, paths);
        const parent = writer.parentOf(segments, false);
        if (!parent) continue;
        const key = childKey(parent, segments[segments.length - 1]);
        if (Array.isArray(parent[key])) {
            const array = writer.own(parent[key]);
            array.length = Math.min(array.length, newSize);
            parent[key] = array;
        }
    }
    for (const [field, value] of Object.entries(desc.updatedFields || {})) {
        const segments = segmentsOf(field, paths);
        const parent = writer.parentOf(segments, true);
        put(parent, childKey(parent, segments[segments.length - 1]), value);
    }
    for (const field of desc.removedFields || []) {
        const segments = segmentsOf(field, paths);
        const parent = writer.parentOf(segments, false);
        if (!parent) continue;
        const key = childKey(parent, segments[segments.length - 1]);
        // $unset of an array element leaves null in its place.
        if (Array.isArray(parent)) {
            if (typeof key === 'number' && key < parent.length) parent[key] = null;
        } else {
            delete parent[key];
        }
    }
    return writer.root;
}

/** Structural equality of two JSON values (key order of documents ignored). */
export function deepEqual(a, b) {
    if (a === b) return true;
    if (!isContainer(a) || !isContainer(b)) return false;
    if (Array.isArray(a) !== Array.isArray(b)) return false;
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    if (ka.length !== kb.length) return false;
    for (const k of ka) {
        if (!Object.prototype.hasOwnProperty.call(b, k) || !deepEqual(a[k], b[k])) return false;
    }
    return true;
}

// ------------------------------------------------------------------ Stream

// SSE event names of the protocol; every one becomes a message shaped as
// its WebSocket counterpart.
export const SSE_EVENTS = ['change', 'watermark', 'reset', 'snapshot-begin', 'doc', 'snapshot-end', 'upsert', 'delete', 'txn'];

/**
 * One SSE event as the WebSocket message it stands for. `id` is the SSE
 * `id:` field when this event carried one (else null): the only source of
 * the token of `upsert`/`delete` messages, whose data holds none.
 */
export function fromSse(name, data, id = null) {
    const body = typeof data === 'string' ? JSON.parse(data) : data;
    switch (name) {
        case 'change':
            return { type: 'change', token: body?._id?._data ?? id, event: body };
        case 'doc':
            return { type: 'doc', doc: body };
        case 'upsert':
        case 'delete':
            return { ...body, type: name, ...(id ? { token: id } : {}) };
        case 'watermark':
        case 'snapshot-end':
            return { ...body, type: name, token: body.token ?? id };
        default:
            return { ...body, type: name };
    }
}

let streamCounter = 0;

// {txnNumber, lsid} of a transaction message: top-level as the protocol
// document writes it, or under "txn" as the server sends it today.
function txnOf(msg) {
    const txn = msg.txn && typeof msg.txn === 'object' ? msg.txn : msg;
    return { txnNumber: txn.txnNumber, lsid: txn.lsid };
}

function withoutUndefined(object) {
    const out = {};
    for (const [key, value] of Object.entries(object)) if (value !== undefined) out[key] = value;
    return out;
}

/**
 * One subscription's protocol state, without I/O: fed messages in the
 * WebSocket shapes, it drops duplicates (tokens compare as strings in stream
 * order), assembles snapshots and transactions, remembers the token to
 * resume from and the cluster time reached, and calls its sink:
 *   sink.changes(items, txn) items: {type:'change', token, event} |
 *                                   {type:'upsert', _id, doc, token} |
 *                                   {type:'delete', _id, token}
 *   sink.snapshot({docs, atClusterTime, token})
 *   sink.reset({reason, message}) ; sink.error({code, message})
 *   sink.advanced() after the position moved (waitFor)
 */
export class Stream {
    constructor(selection, sink = {}) {
        this.id = `s${++streamCounter}`;
        this.selection = withoutUndefined(selection);
        this.sink = sink;
        this.token = selection.after ?? null;
        this.position = null;
        this.failed = null;
        this.active = false; // the server has taken the subscription (and not lost it since)
        this.duplicates = 0;
        this.snapshotting = null;
        this.txn = null;
    }

    /** The selection to (re)subscribe with: a snapshot only while no token. */
    request() {
        const { after, ...rest } = this.selection;
        return this.token ? { ...rest, after: this.token } : rest;
    }

    /** The transport lost the connection: partial snapshots and transactions go. */
    interrupted() {
        this.active = false;
        this.snapshotting = null;
        this.txn = null;
    }

    feed(msg) {
        switch (msg.type) {
            case 'change':
            case 'upsert':
            case 'delete':
                if (this.txn) {
                    this.txn.items.push(msg);
                    if (this.txn.items.length >= this.txn.count) {
                        const { items, meta } = this.txn;
                        this.txn = null;
                        this.deliver(items, meta);
                    }
                } else {
                    this.deliver([msg], null);
                }
                break;
            case 'txn':
                if (msg.count > 0) this.txn = { count: msg.count, items: [], meta: txnOf(msg) };
                break;
            case 'transaction':
                this.deliver(msg.changes || [], txnOf(msg));
                break;
            case 'watermark':
                this.advance(msg.token, msg.clusterTime ? toTimestamp(msg.clusterTime) : null);
                break;
            case 'snapshot-begin':
                this.snapshotting = { atClusterTime: msg.atClusterTime, count: msg.count, docs: [] };
                break;
            case 'doc':
                if (this.snapshotting) this.snapshotting.docs.push(msg.doc);
                break;
            case 'snapshot-end': {
                const docs = this.snapshotting ? this.snapshotting.docs : [];
                this.snapshotting = null;
                const atClusterTime = msg.atClusterTime ? toTimestamp(msg.atClusterTime) : null;
                this.sink.snapshot?.({ docs, atClusterTime, token: msg.token ?? null });
                this.advance(msg.token, atClusterTime);
                break;
            }
            case 'reset':
                // The old position cannot be served any more: the stream goes
                // on from now, and so does the next reconnect.
                this.snapshotting = null;
                this.txn = null;
                this.token = null;
                this.sink.reset?.({ reason: msg.reason, message: msg.message });
                break;
            case 'error':
                this.failed = { code: msg.code, message: msg.message };
                this.sink.error?.(this.failed);
                this.sink.advanced?.();
                break;
            case 'subscribed':
                this.active = true;
                this.sink.subscribed?.();
                break;
            default:
                break; // unsubscribed, pong, and anything newer
        }
    }

    deliver(items, txn) {
        const fresh = [];
        let token = null;
        let time = null;
        for (const item of items) {
            const tok = item.token ?? (item.type === 'change' ? item.event?._id?._data : null) ?? null;
            if (tok && this.token && tok <= this.token) {
                this.duplicates += 1;
                continue;
            }
            if (tok && (!token || tok > token)) token = tok;
            if (item.type === 'change') {
                if (item.event?.clusterTime) time = laterTimestamp(time, toTimestamp(item.event.clusterTime));
                fresh.push({ type: 'change', token: tok, event: item.event });
            } else {
                fresh.push({ type: item.type, _id: item._id, doc: item.doc, token: tok });
            }
        }
        if (fresh.length) this.sink.changes?.(fresh, txn);
        this.advance(token, time);
    }

    advance(token, time) {
        if (token && (!this.token || token > this.token)) this.token = token;
        if (time) this.position = laterTimestamp(this.position, time);
        if (token || time) this.sink.advanced?.();
    }
}

// ---------------------------------------------------------- LiveCollection

// BSON comparison order, enough to sort rows on the client.
function sortable(value) {
    if (value === undefined || value === null) return [1, 0];
    if (typeof value === 'number') return [2, value];
    if (typeof value === 'string') return [3, value];
    if (typeof value === 'boolean') return [8, value ? 1 : 0];
    if (Array.isArray(value)) return [5, value.length];
    if (typeof value === 'object') {
        if ('$numberLong' in value || '$numberDouble' in value || '$numberDecimal' in value || '$numberInt' in value) {
            return [2, Number(value.$numberLong ?? value.$numberDouble ?? value.$numberDecimal ?? value.$numberInt)];
        }
        if ('$oid' in value) return [7, value.$oid];
        if ('$date' in value) {
            const d = value.$date;
            return [9, typeof d === 'object' ? Number(d.$numberLong) : Date.parse(d)];
        }
        if ('$timestamp' in value) return [10, value.$timestamp.t * 4294967296 + value.$timestamp.i];
        return [4, JSON.stringify(value)];
    }
    return [11, String(value)];
}

function pathValue(doc, path) {
    let node = doc;
    for (const seg of path.split('.')) {
        if (!isContainer(node)) return undefined;
        node = node[childKey(node, seg)];
    }
    return node;
}

function comparatorFor(sort) {
    const fields = Object.entries(sort || {});
    if (!fields.length) return null;
    return (a, b) => {
        for (const [path, direction] of fields) {
            const [ra, va] = sortable(pathValue(a, path));
            const [rb, vb] = sortable(pathValue(b, path));
            const c = ra - rb || (va < vb ? -1 : va > vb ? 1 : 0);
            if (c) return direction < 0 ? -c : c;
        }
        return 0;
    };
}

const NS_EVENTS = new Set(['drop', 'rename', 'dropDatabase']);

/**
 * A live, normalized copy of a query's documents: `docs` is a Map from the
 * Extended JSON of `_id` (see idKey) to the document. Each change is applied
 * in place, copy-on-write (an unchanged document keeps its identity, so a
 * UI can skip it), and listeners hear exactly which keys changed:
 * `{inserted, updated, deleted, reset, snapshot}` (arrays of keys; snapshot
 * true when a snapshot was swapped in, the first or, with reset true, a new
 * one after a reset).
 */
export class LiveCollection {
    /**
     * @param source `{open(selection, sink) -> close()}`: a Connection, or
     *        anything that feeds a Stream (tests).
     */
    constructor(source, ns, { filter, sort, limit, format, fullDocument } = {}) {
        if (typeof ns !== 'string' || !/^[^.*]+\.[^*]+$/.test(ns)) {
            throw new TypeError(`changecast: a live collection needs one namespace "db.coll", not ${safeJson(ns)}`);
        }
        const hasFilter = filter && Object.keys(filter).length > 0;
        // With a filter (or a limit) only the server knows whether a changed
        // document still belongs: state sync (format=docs) says it with a
        // delete. Without one, change events carry less and are applied here.
        this.format = format || (hasFilter || limit ? 'docs' : 'changes');
        this.selection = { ns, snapshot: true, filter: hasFilter ? filter : undefined, sort, limit, fullDocument };
        if (this.format === 'docs') this.selection.format = 'docs';
        this.ns = ns;
        this.source = source;
        this.status = 'loading';
        this.error = null;
        this._docs = new Map();
        this._rows = null;
        this._compare = comparatorFor(sort);
        this._listeners = new Set();
        this._stream = null;
        this._close = null;
        this.ready = new Promise((resolve, reject) => {
            this._ready = resolve;
            this._failed = reject;
        });
        this.ready.catch(() => {});
        this.getSnapshot = this.getSnapshot.bind(this);
        this.subscribe = this.subscribe.bind(this);
        this._open();
    }

    /** The current Map (a reset swaps in a new one). */
    get docs() {
        return this._docs;
    }

    get size() {
        return this._docs.size;
    }

    /** The document whose `_id` is `id` (not a key). */
    get(id) {
        return this._docs.get(idKey(id));
    }

    has(id) {
        return this._docs.has(idKey(id));
    }

    keys() {
        return this._docs.keys();
    }

    /** The documents in `sort` order (else arrival order); the same array until a change. */
    rows() {
        if (!this._rows) {
            const rows = [...this._docs.values()];
            if (this._compare) rows.sort(this._compare);
            this._rows = Object.freeze(rows);
        }
        return this._rows;
    }

    /** For React's useSyncExternalStore: the rows, stable between changes. */
    getSnapshot() {
        return this.rows();
    }

    /** listener(changed) on every change; returns the function that stops it. */
    subscribe(listener) {
        this._listeners.add(listener);
        return () => this._listeners.delete(listener);
    }

    /** Resolves once this collection has applied everything up to `operationTime`. */
    waitFor(operationTime, options) {
        return this.source.waitFor(operationTime, { ...options, streams: () => (this._stream ? [this._stream] : []) });
    }

    close() {
        this.status = 'closed';
        this._close?.();
        this._close = null;
        this._stream = null;
        this._listeners.clear();
    }

    _open() {
        const sink = {
            snapshot: (snap) => this._swap(snap.docs),
            changes: (items) => this._apply(items),
            reset: (r) => this._resync(r),
            error: (e) => {
                this.status = 'failed';
                this.error = e;
                this._failed(Object.assign(new Error(`${e.code}: ${e.message}`), { code: e.code }));
                this._notify({ inserted: [], updated: [], deleted: [], reset: false, error: e });
            },
        };
        const opened = this.source.open(this.selection, sink);
        this._stream = opened.stream;
        this._close = opened.close;
    }

    // A reset: the store keeps showing its rows while a new live query reads
    // them again; its snapshot then replaces them in one step.
    _resync(reason) {
        if (this.status === 'closed') return;
        this.status = 'resyncing';
        this.lastReset = reason;
        const close = this._close;
        this._close = null;
        close?.();
        this._open();
    }

    _swap(docs) {
        const next = new Map();
        for (const doc of docs) next.set(idKey(doc._id), doc);
        const changed = { inserted: [], updated: [], deleted: [], reset: this.status !== 'loading', snapshot: true };
        for (const [key, doc] of next) {
            const old = this._docs.get(key);
            if (old === undefined) changed.inserted.push(key);
            else if (deepEqual(old, doc)) next.set(key, old);
            else changed.updated.push(key);
        }
        for (const key of this._docs.keys()) if (!next.has(key)) changed.deleted.push(key);
        this._docs = next;
        this._rows = null;
        this.status = 'live';
        this._ready(this);
        this._notify(changed);
    }

    _apply(items) {
        // The net effect per key over the batch (a transaction may touch a
        // document twice): present before? present after?
        const before = new Map();
        const after = new Map();
        const mark = (key, existed, exists) => {
            if (!before.has(key)) before.set(key, existed);
            after.set(key, exists);
        };
        for (const item of items) {
            if (item.type === 'upsert') {
                const key = idKey(item._id);
                mark(key, this._docs.has(key), true);
                this._docs.set(key, item.doc);
            } else if (item.type === 'delete') {
                const key = idKey(item._id);
                mark(key, this._docs.has(key), false);
                this._docs.delete(key);
            } else {
                this._applyEvent(item.event, mark);
            }
        }
        const changed = { inserted: [], updated: [], deleted: [], reset: false };
        for (const [key, existed] of before) {
            const exists = after.get(key);
            if (!existed && exists) changed.inserted.push(key);
            else if (existed && exists) changed.updated.push(key);
            else if (existed && !exists) changed.deleted.push(key);
        }
        if (changed.inserted.length || changed.updated.length || changed.deleted.length) {
            this._rows = null;
            this._notify(changed);
        }
    }

    _applyEvent(event, mark) {
        const op = event.operationType;
        if (NS_EVENTS.has(op)) {
            for (const key of [...this._docs.keys()]) {
                mark(key, true, false);
                this._docs.delete(key);
            }
            return;
        }
        const id = event.documentKey ? event.documentKey._id : event.fullDocument?._id;
        if (id === undefined) return;
        const key = idKey(id);
        const old = this._docs.get(key);
        let next;
        if ((op === 'update' || op === 'replace' || op === 'insert') && event.fullDocument == null && !event.updateDescription) {
            // Neither contents nor a description: the document left what this
            // subscriber may see (an authorization row filter), so it goes.
            if (old !== undefined) mark(key, true, false);
            this._docs.delete(key);
            return;
        }
        if (op === 'insert' || op === 'replace') {
            next = event.fullDocument;
        } else if (op === 'update') {
            if (old !== undefined) next = applyUpdate(old, event.updateDescription);
            else next = event.fullDocument ?? undefined; // post-image, when the stream has one
        } else if (op === 'delete') {
            mark(key, old !== undefined, false);
            this._docs.delete(key);
            return;
        } else {
            return;
        }
        if (next === undefined || next === null) return;
        mark(key, old !== undefined, true);
        this._docs.set(key, next);
    }

    _notify(changed) {
        for (const listener of [...this._listeners]) {
            try {
                listener(changed);
            } catch (err) {
                reportError(err);
            }
        }
    }
}

function reportError(err) {
    if (typeof globalThis.reportError === 'function') globalThis.reportError(err);
    else setTimeout(() => {
        throw err;
    }, 0);
}

// ------------------------------------------------------------------ tokens

/** Milliseconds since the epoch at which a JWT expires (`exp`), or null. */
export function jwtExpiry(token) {
    if (typeof token !== 'string') return null;
    const part = token.split('.')[1];
    if (!part) return null;
    try {
        const base64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
        const claims = JSON.parse(atob(base64));
        return typeof claims.exp === 'number' ? claims.exp * 1000 : null;
    } catch {
        return null;
    }
}

// The token a (re)connect presents. With getToken it is fetched before
// first use and again refreshMarginMs before its `exp`, so reconnects never
// present an expired one, and an open WebSocket is handed the new one
// (docs/security.md: `{"type": "auth", "token"}` replaces the token of a
// socket before it expires; SSE streams end at `exp` and reconnect with the
// fresh token). This is the only place that knows how a token is obtained;
// authParams() and WsTransport.reauth() the only ones that know how it is sent.
class TokenSource {
    constructor({ token, getToken, refreshMarginMs = 30000, now = Date.now }, onRefresh = null) {
        this.onRefresh = onRefresh;
        this.token = token ?? null;
        this.getToken = getToken || null;
        this.margin = refreshMarginMs;
        this.now = now;
        this.pending = null;
        this.timer = null;
    }

    async get() {
        if (!this.getToken) return this.token;
        const exp = jwtExpiry(this.token);
        if (this.token && (exp === null || exp - this.margin > this.now())) return this.token;
        return this.refresh();
    }

    refresh() {
        if (!this.pending) {
            this.pending = Promise.resolve()
                .then(() => this.getToken())
                .then((token) => {
                    const changed = (token ?? null) !== this.token;
                    this.token = token ?? null;
                    this.schedule();
                    if (changed && this.token) this.onRefresh?.(this.token);
                    return this.token;
                })
                .finally(() => {
                    this.pending = null;
                });
        }
        return this.pending;
    }

    schedule() {
        clearTimeout(this.timer);
        const exp = jwtExpiry(this.token);
        if (exp === null) return;
        const delay = Math.max(exp - this.margin - this.now(), 1000);
        this.timer = setTimeout(() => this.refresh().catch(() => {}), Math.min(delay, 2 ** 31 - 1));
        this.timer?.unref?.();
    }

    stop() {
        clearTimeout(this.timer);
    }
}

function authParams(query, token) {
    if (token) query.set('access_token', token);
}

// --------------------------------------------------------------- endpoints

function endpoint(base, path, websocket) {
    const url = new URL(base, globalThis.location?.href);
    url.pathname = url.pathname.replace(/\/v1\/(events|ws)\/?$/, '').replace(/\/+$/, '') + path;
    url.search = '';
    url.hash = '';
    if (websocket) url.protocol = url.protocol === 'https:' || url.protocol === 'wss:' ? 'wss:' : 'ws:';
    return url;
}

function sseUrl(base, request, token) {
    const url = endpoint(base, '/v1/events', false);
    const q = url.searchParams;
    for (const ns of [].concat(request.ns)) q.append('ns', ns);
    if (request.filter !== undefined) q.set('filter', JSON.stringify(request.filter));
    if (request.ops !== undefined) q.set('ops', [].concat(request.ops).join(','));
    if (request.fullDocument !== undefined) q.set('fullDocument', request.fullDocument);
    if (request.snapshot) q.set('snapshot', '1');
    if (request.format !== undefined) q.set('format', request.format);
    if (request.sort !== undefined) q.set('sort', JSON.stringify(request.sort));
    if (request.limit !== undefined) q.set('limit', String(request.limit));
    if (request.after) q.set('lastEventId', request.after);
    authParams(q, token);
    return url.href;
}

function subscribeMessage(id, request) {
    const msg = { type: 'subscribe', id, ns: [].concat(request.ns) };
    for (const key of ['filter', 'ops', 'fullDocument', 'snapshot', 'format', 'sort', 'limit', 'after']) {
        if (request[key] !== undefined) msg[key] = request[key];
    }
    return msg;
}

function normalizeSelection(selection) {
    if (!selection || selection.ns === undefined) throw new TypeError('changecast: subscribe needs ns');
    return withoutUndefined(selection);
}

// -------------------------------------------------------------- transports

const WS_OPEN = 1;

// Error codes that mean "not now" rather than "not this": retried.
const TRANSIENT = new Set(['capture_unavailable']);

// One WebSocket (subprotocol changecast.v1) carrying every subscription.
class WsTransport {
    constructor(conn, WebSocketCtor) {
        this.conn = conn;
        this.WebSocket = WebSocketCtor;
        this.socket = null;
        this.attempt = 0;
        this.timer = null;
        this.pinger = null;
        this.retryTimers = new Set();
        this.everOpen = false;
        this.closed = false;
    }

    start() {
        this.connect();
    }

    async connect() {
        this.timer = null;
        let token;
        try {
            token = await this.conn.tokens.get();
        } catch (err) {
            this.conn.emit('error', { message: `getToken failed: ${err.message || err}` });
            return this.retry();
        }
        if (this.closed) return;
        const url = endpoint(this.conn.url, '/v1/ws', true);
        authParams(url.searchParams, token);
        let ws;
        try {
            ws = new this.WebSocket(url.href, 'changecast.v1');
        } catch (err) {
            this.conn.emit('error', { message: err.message });
            return this.retry();
        }
        this.socket = ws;
        let openedAt = 0;
        ws.onopen = () => {
            if (this.socket !== ws) return;
            openedAt = Date.now();
            this.everOpen = true;
            this.heard = Date.now();
            this.conn.setState('open');
            for (const stream of this.conn.streams.values()) this.send(subscribeMessage(stream.id, stream.request()));
            this.startPing(ws);
        };
        ws.onmessage = (e) => {
            if (this.socket !== ws) return;
            this.heard = Date.now();
            let msg;
            try {
                msg = JSON.parse(typeof e.data === 'string' ? e.data : String(e.data));
            } catch {
                return;
            }
            if (msg.type === 'pong') return;
            const stream = msg.id != null ? this.conn.streams.get(msg.id) : undefined;
            if (stream && msg.type === 'error' && TRANSIENT.has(msg.code)) {
                this.resubscribeLater(stream);
            } else if (stream) {
                if (msg.type === 'subscribed') stream.retries = 0;
                if (msg.type === 'error') this.conn.streams.delete(stream.id);
                stream.feed(msg);
                if (msg.type === 'reset') this.conn.emit('reset', { subscription: stream.id, reason: msg.reason, message: msg.message });
            } else if (msg.type === 'error') {
                this.conn.emit('error', { code: msg.code, message: msg.message });
            } else if (msg.type === 'authenticated') {
                this.conn.emit('authenticated', { expiresAt: msg.expiresAt });
            }
        };
        ws.onerror = () => {};
        ws.onclose = (e) => this.lost(ws, openedAt, e && e.code);
    }

    // The socket is gone (closed, or silent past the ping deadline).
    // (Close 4001 token_expired / 4003 token refused: the reconnect asks
    // getToken again when the token is at or near its exp.)
    lost(ws, openedAt, code) {
        if (this.socket !== ws) return;
        this.socket = null;
        clearInterval(this.pinger);
        for (const stream of this.conn.streams.values()) stream.interrupted();
        if (this.closed) return;
        if (openedAt && Date.now() - openedAt >= this.conn.options.stableMs) this.attempt = 0;
        if (!this.everOpen && this.conn.fallback()) return;
        this.conn.emit('disconnect', { code });
        this.retry();
    }

    retry() {
        if (this.closed) return;
        const delayMs = backoffDelay(this.attempt, this.conn.options.backoff, this.conn.options.random);
        this.attempt += 1;
        this.conn.setState(this.everOpen ? 'reconnecting' : 'connecting', { delayMs, attempt: this.attempt });
        this.conn.emit('retry', { delayMs, attempt: this.attempt });
        this.timer = setTimeout(() => this.connect(), delayMs);
    }

    // The server could not take the subscription for now (capture not
    // reading yet): ask again after a backoff delay, on this socket.
    resubscribeLater(stream) {
        stream.interrupted();
        const delayMs = backoffDelay(stream.retries || 0, this.conn.options.backoff, this.conn.options.random);
        stream.retries = (stream.retries || 0) + 1;
        const ws = this.socket;
        const timer = setTimeout(() => {
            this.retryTimers.delete(timer);
            if (this.socket === ws && this.conn.streams.get(stream.id) === stream) this.attach(stream);
        }, delayMs);
        this.retryTimers.add(timer);
        this.conn.emit('retry', { subscription: stream.id, delayMs, attempt: stream.retries });
    }

    // Browsers hide WebSocket pings: an application ping tells a dead
    // socket from a quiet one.
    startPing(ws) {
        const every = this.conn.options.pingIntervalMs;
        if (!every) return;
        this.pinger = setInterval(() => {
            if (Date.now() - this.heard > 2 * every) {
                try {
                    ws.close();
                } catch {
                    // already closing
                }
                this.lost(ws, 0, 'ping_timeout');
            } else {
                this.send({ type: 'ping' });
            }
        }, every);
        this.pinger?.unref?.();
    }

    send(msg) {
        if (this.socket && this.socket.readyState === WS_OPEN) this.socket.send(JSON.stringify(msg));
    }

    attach(stream) {
        this.send(subscribeMessage(stream.id, stream.request()));
    }

    // A fresh token for the open socket, so it outlives the old token's exp.
    reauth(token) {
        this.send({ type: 'auth', token });
    }

    detach(stream) {
        this.send({ type: 'unsubscribe', id: stream.id });
    }

    stop() {
        this.closed = true;
        clearTimeout(this.timer);
        clearInterval(this.pinger);
        for (const timer of this.retryTimers) clearTimeout(timer);
        const ws = this.socket;
        this.socket = null;
        if (ws) {
            try {
                ws.close(1000);
            } catch {
                // not open yet
            }
        }
    }
}

// One EventSource per subscription (a request carries one selection).
// Reconnection is ours, not EventSource's: backoff with jitter, a fresh
// token, and the last token as lastEventId.
class SseTransport {
    constructor(conn, EventSourceCtor) {
        this.conn = conn;
        this.EventSource = EventSourceCtor;
        this.entries = new Map();
        this.everOpen = false;
        this.closed = false;
    }

    start() {
        for (const stream of this.conn.streams.values()) this.attach(stream);
        this.updateState();
    }

    attach(stream) {
        const entry = { stream, es: null, attempt: 0, timer: null, open: false };
        this.entries.set(stream, entry);
        this.connect(entry);
    }

    detach(stream) {
        const entry = this.entries.get(stream);
        if (!entry) return;
        this.entries.delete(stream);
        clearTimeout(entry.timer);
        entry.es?.close();
        entry.es = null;
        this.updateState();
    }

    async connect(entry) {
        entry.timer = null;
        let token;
        try {
            token = await this.conn.tokens.get();
        } catch (err) {
            this.conn.emit('error', { message: `getToken failed: ${err.message || err}` });
            return this.retry(entry);
        }
        if (this.closed || this.entries.get(entry.stream) !== entry) return;
        const url = sseUrl(this.conn.url, entry.stream.request(), token);
        const es = new this.EventSource(url);
        entry.es = es;
        entry.open = false;
        let openedAt = 0;
        let seenId = '';
        es.onopen = () => {
            if (entry.es !== es) return;
            openedAt = Date.now();
            entry.open = true;
            entry.wasOpen = true;
            this.everOpen = true;
            entry.stream.feed({ type: 'subscribed' });
            this.updateState();
        };
        for (const name of SSE_EVENTS) {
            es.addEventListener(name, (e) => {
                if (entry.es !== es) return;
                // lastEventId persists across events: a new value means this
                // event carried an id.
                const id = e.lastEventId && e.lastEventId !== seenId ? e.lastEventId : null;
                if (e.lastEventId) seenId = e.lastEventId;
                let msg;
                try {
                    msg = fromSse(name, e.data, id);
                } catch {
                    return;
                }
                entry.stream.feed(msg);
                if (name === 'reset') this.conn.emit('reset', { subscription: entry.stream.id, reason: msg.reason, message: msg.message });
            });
        }
        es.onerror = (e) => {
            if (entry.es !== es) return;
            // A server-sent `event: error` (e.g. token_expired at exp) also
            // lands here, with data; the stream ends either way.
            if (typeof e?.data === 'string' && e.data) {
                let detail = null;
                try {
                    detail = JSON.parse(e.data);
                } catch {
                    detail = { message: e.data };
                }
                this.conn.emit('error', { subscription: entry.stream.id, ...detail });
            }
            es.close();
            entry.es = null;
            entry.open = false;
            entry.stream.interrupted();
            if (openedAt && Date.now() - openedAt >= this.conn.options.stableMs) entry.attempt = 0;
            if (openedAt) return this.retry(entry);
            this.refused(entry, url, e).then((failed) => {
                if (!failed) this.retry(entry);
            });
        };
    }

    // An EventSource that never opened hides the status: ask once more
    // with fetch, and give up on the subscription for a 4xx with an error body
    // (bad_filter, not_exposed, ...). Returns true when it was refused.
    async refused(entry, url, e) {
        let status = typeof e?.code === 'number' ? e.code : null;
        let body = null;
        const fetchFn = this.conn.options.fetch || globalThis.fetch;
        if (fetchFn) {
            const abort = typeof AbortController === 'function' ? new AbortController() : null;
            try {
                const res = await fetchFn(url, { headers: { Accept: 'text/event-stream' }, signal: abort?.signal });
                status = res.status;
                if (status !== 200) body = await res.json().catch(() => null);
            } catch {
                status = null; // unreachable: retry
            } finally {
                abort?.abort();
            }
        }
        if (status === null || status < 400 || status >= 500 || status === 408 || status === 429) return false;
        if (this.entries.get(entry.stream) !== entry) return true;
        this.entries.delete(entry.stream);
        this.conn.streams.delete(entry.stream.id);
        entry.stream.feed({ type: 'error', code: body?.error || `http_${status}`, message: body?.message || `HTTP ${status}` });
        this.conn.emit('error', { subscription: entry.stream.id, status, code: body?.error, message: body?.message });
        this.updateState();
        return true;
    }

    retry(entry) {
        if (this.closed || this.entries.get(entry.stream) !== entry) return;
        if (!this.everOpen && this.conn.fallback()) return;
        const delayMs = backoffDelay(entry.attempt, this.conn.options.backoff, this.conn.options.random);
        entry.attempt += 1;
        this.updateState({ delayMs, attempt: entry.attempt });
        this.conn.emit('retry', { subscription: entry.stream.id, delayMs, attempt: entry.attempt });
        entry.timer = setTimeout(() => this.connect(entry), delayMs);
    }

    updateState(detail) {
        if (this.closed) return;
        // Reconnecting while a stream that was open is not; open while the
        // others are (a new subscription joining does not count against it).
        const entries = [...this.entries.values()];
        if (entries.some((e) => e.wasOpen && !e.open)) this.conn.setState('reconnecting', detail);
        else if (entries.some((e) => e.open) || (!entries.length && this.everOpen)) this.conn.setState('open');
        else this.conn.setState(this.everOpen ? 'reconnecting' : 'connecting', detail);
    }

    stop() {
        this.closed = true;
        for (const entry of this.entries.values()) {
            clearTimeout(entry.timer);
            entry.es?.close();
        }
        this.entries.clear();
    }
}

// ----------------------------------------------------------------- waitFor

/**
 * Pending waitFor() calls over a set of Streams: each resolves once every
 * stream it watches (not failed) has reached its cluster time through a
 * watermark, a change or a snapshot's atClusterTime.
 */
export class Waiters {
    constructor(streams) {
        this.streams = streams;
        this.pending = new Set();
    }

    waitFor(operationTime, { timeoutMs, streams } = {}) {
        const target = toTimestamp(operationTime);
        return new Promise((resolve, reject) => {
            const waiter = { target, resolve, reject, streams: streams || this.streams, timer: null };
            if (timeoutMs !== undefined) {
                waiter.timer = setTimeout(() => {
                    this.pending.delete(waiter);
                    reject(new Error(`changecast: waitFor timed out after ${timeoutMs} ms`));
                }, timeoutMs);
            }
            this.pending.add(waiter);
            this.check();
        });
    }

    check() {
        for (const waiter of [...this.pending]) {
            const streams = waiter.streams().filter((s) => !s.failed);
            if (streams.length && streams.every((s) => s.position && compareTimestamps(s.position, waiter.target) >= 0)) {
                this.pending.delete(waiter);
                clearTimeout(waiter.timer);
                waiter.resolve();
            }
        }
    }

    rejectAll(err) {
        for (const waiter of this.pending) {
            clearTimeout(waiter.timer);
            waiter.reject(err);
        }
        this.pending.clear();
    }
}

// -------------------------------------------------------------- Connection

const STATES = ['connecting', 'open', 'reconnecting', 'reset', 'closed'];

/**
 * A connection to a changecast push port: subscriptions, live collections,
 * waitFor, and state events (see connect()).
 */
export class Connection {
    constructor(url, options = {}) {
        this.url = url;
        this.options = {
            transport: 'auto',
            backoff: { baseMs: 500, capMs: 30000 },
            stableMs: 5000,
            pingIntervalMs: 15000,
            random: Math.random,
            ...options,
        };
        this.options.backoff = { baseMs: 500, capMs: 30000, ...(options.backoff || {}) };
        this.state = 'connecting';
        this.streams = new Map();
        this.listeners = new Map();
        this.waiters = new Waiters(() => [...this.streams.values()]);
        this.tokens = new TokenSource(this.options, (token) => this.transport?.reauth?.(token));
        const WS = this.options.WebSocket || globalThis.WebSocket;
        const ES = this.options.EventSource || globalThis.EventSource;
        let kind = this.options.transport;
        if (kind === 'auto') kind = WS ? 'ws' : 'sse';
        if (kind === 'ws' && !WS) throw new Error('changecast: no WebSocket constructor (pass options.WebSocket)');
        if (kind === 'sse' && !ES) throw new Error('changecast: no EventSource constructor (pass options.EventSource)');
        this.canFallback = this.options.transport === 'auto' && kind === 'ws' && !!ES;
        this.transportName = kind;
        this.transport = kind === 'ws' ? new WsTransport(this, WS) : new SseTransport(this, ES);
        this.transport.start();
    }

    /**
     * listener(detail) for the states 'connecting' | 'open' | 'reconnecting'
     * | 'closed', for 'reset' (a subscription was reset), 'state' (all of
     * these, detail.state), 'retry' ({delayMs, attempt} before each
     * reconnect), 'disconnect', 'authenticated' and 'error'.
     */
    on(name, listener) {
        if (!this.listeners.has(name)) this.listeners.set(name, new Set());
        this.listeners.get(name).add(listener);
        return () => this.listeners.get(name)?.delete(listener);
    }

    emit(name, detail = {}) {
        const call = (set, arg) => {
            for (const fn of [...(set || [])]) {
                try {
                    fn(arg);
                } catch (err) {
                    reportError(err);
                }
            }
        };
        call(this.listeners.get(name), detail);
        if (STATES.includes(name)) call(this.listeners.get('state'), { state: name, ...detail });
    }

    setState(state, detail = {}) {
        if (this.state === state || this.state === 'closed') return;
        this.state = state;
        this.emit(state, detail);
    }

    // 'auto' starts with WebSocket; a socket that never opened gives way to SSE once.
    fallback() {
        if (!this.canFallback) return false;
        this.canFallback = false;
        this.transport.stop();
        this.transportName = 'sse';
        this.transport = new SseTransport(this, this.options.EventSource || globalThis.EventSource);
        this.transport.start();
        return true;
    }

    /**
     * The low-level subscription both subscribe() and LiveCollection use:
     * a Stream fed by this connection's transport; close() ends it.
     */
    open(selection, sink) {
        if (this.state === 'closed') throw new Error('changecast: connection closed');
        const stream = new Stream(normalizeSelection(selection), { ...sink, advanced: () => this.check() });
        this.streams.set(stream.id, stream);
        this.transport.attach(stream);
        const close = () => {
            if (!this.streams.has(stream.id)) return;
            this.streams.delete(stream.id);
            this.transport.detach(stream);
            this.check();
        };
        return { stream, close };
    }

    /**
     * Change events of a selection `{ns, filter, ops, fullDocument}` (live
     * queries: also snapshot, format, sort, limit). onChange(event, info)
     * gets each change event once, in order (with format 'docs' an
     * `{type: 'upsert'|'delete', _id, doc}`); handlers: onSubscribed (the
     * server took it, again after each reconnect), onSnapshot, onReset,
     * onError, onTransaction(items, txn). Returns the unsubscribe function.
     */
    subscribe(selection, onChange, handlers = {}) {
        if (onChange && typeof onChange === 'object') {
            handlers = onChange;
            onChange = handlers.onChange;
        }
        const { close, stream } = this.open(selection, {
            changes: (items, txn) => {
                if (txn) handlers.onTransaction?.(items, txn);
                for (const item of items) {
                    const info = { token: item.token, subscription: stream.id, txn };
                    onChange?.(item.type === 'change' ? item.event : item, info);
                }
            },
            snapshot: (snap) => handlers.onSnapshot?.(snap),
            subscribed: () => handlers.onSubscribed?.(),
            reset: (r) => handlers.onReset?.(r),
            error: (e) => handlers.onError?.(e),
        });
        return close;
    }

    /** A LiveCollection of `ns` (one `db.coll`), `{filter, sort, limit, format}`. */
    collection(ns, options) {
        return new LiveCollection(this, ns, options);
    }

    /**
     * Resolves once every open subscription (or `options.streams()`) has
     * received a watermark or change with clusterTime at or past
     * `operationTime` ({t,i}, a BSON Timestamp, or {$timestamp}); rejects
     * after `options.timeoutMs` if given, or when the connection closes.
     */
    waitFor(operationTime, options) {
        return this.waiters.waitFor(operationTime, options);
    }

    check() {
        this.waiters.check();
    }

    close() {
        if (this.state === 'closed') return;
        this.transport.stop();
        this.tokens.stop();
        this.streams.clear();
        this.state = 'closed';
        this.emit('closed', {});
        this.waiters.rejectAll(new Error('changecast: connection closed'));
    }
}

/**
 * Opens a connection to a changecast push port (`http://host:8080`).
 * options: token | getToken (async, called again before the JWT's exp),
 * transport 'ws' | 'sse' | 'auto' (default: WebSocket, SSE if it cannot
 * open), WebSocket / EventSource / fetch constructors (Node), backoff
 * {baseMs, capMs}, pingIntervalMs, stableMs, refreshMarginMs.
 */
export function connect(url, options) {
    return new Connection(url, options);
}

export default { connect, Connection, LiveCollection, Stream, Waiters, applyUpdate, idKey, toTimestamp, compareTimestamps, backoffDelay, fromSse, jwtExpiry, deepEqual, VERSION };
