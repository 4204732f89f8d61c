// SPDX-License-Identifier: Apache-2.0
// The demo page: a live table of one exposed namespace, through the client
// library the push port serves at /v1/client.js. Only the rows a change
// names are touched in the DOM. Query parameters (all optional):
//   ns=db.coll  transport=ws|sse|auto  writer=http://127.0.0.1:8081
//   push=http://host:port (a push port other than this page's origin)
import * as changecast from '/v1/client.js';

const params = new URLSearchParams(location.search);
const pushUrl = params.get('push') || location.origin;
const writerUrl = params.get('writer') || `${location.protocol}//${location.hostname}:8081`;
const $ = (id) => document.getElementById(id);

const conn = changecast.connect(pushUrl, { transport: params.get('transport') || 'auto' });
let coll = null;
let offColl = null;
window.demo = { conn, get coll() { return coll; } };

// ------------------------------------------------------------ connection

const indicator = $('connection');
let resetTimer = null;
function showState(state, text) {
    indicator.dataset.state = state;
    $('state-text').textContent = text || state;
    $('transport').textContent = conn.transportName ? `(${conn.transportName})` : '';
}
conn.on('state', ({ state, reason }) => {
    if (state === 'reset') {
        showState('reset', `reset: ${reason || 'resync'}`);
        clearTimeout(resetTimer);
        resetTimer = setTimeout(() => showState(conn.state), 2000);
        return;
    }
    clearTimeout(resetTimer);
    showState(state);
});
showState(conn.state);

// --------------------------------------------------------------- latency

const latencies = [];
function recordLatency(doc) {
    const at = typeof doc?.writtenAt === 'number' ? doc.writtenAt : Number(doc?.writtenAt?.$numberLong ?? doc?.writtenAt?.$numberDouble ?? NaN);
    if (!Number.isFinite(at)) return;
    const ms = Date.now() - at;
    latencies.push(ms);
    if (latencies.length > 50) latencies.shift();
    const sorted = [...latencies].sort((a, b) => a - b);
    $('latency-last').textContent = `${ms} ms`;
    $('latency-median').textContent = `${sorted[Math.floor(sorted.length / 2)]} ms`;
    $('latency-n').textContent = String(latencies.length);
}

// ----------------------------------------------------------------- table

const PREFERRED = ['status', 'total', 'note', 'revision', 'writtenAt', 'updatedAt'];
let columns = [];
const rowsByKey = new Map();
const pendingRemoval = new Map();

function formatValue(field, value) {
    if (value === undefined) return '';
    if (value === null) return 'null';
    if (field === 'writtenAt' && typeof value === 'number') return new Date(value).toLocaleTimeString(undefined, { hour12: false }) + `.${String(value % 1000).padStart(3, '0')}`;
    if (typeof value === 'object') {
        if ('$date' in value) return new Date(typeof value.$date === 'string' ? value.$date : Number(value.$date.$numberLong)).toLocaleTimeString(undefined, { hour12: false });
        if ('$oid' in value) return value.$oid;
        return JSON.stringify(value);
    }
    return String(value);
}

function columnsFor(docs) {
    const seen = new Set();
    for (const doc of docs) for (const k of Object.keys(doc)) if (k !== '_id') seen.add(k);
    const rest = [...seen].filter((k) => !PREFERRED.includes(k)).sort();
    return ['_id', ...PREFERRED.filter((k) => seen.has(k)), ...rest];
}

function renderHeader() {
    const tr = document.querySelector('#docs thead tr');
    tr.replaceChildren(...columns.map((c) => Object.assign(document.createElement('th'), { textContent: c })));
}

function fillRow(tr, doc, previous) {
    const cells = columns.map((field) => {
        const td = document.createElement('td');
        td.dataset.field = field;
        td.textContent = formatValue(field, field === '_id' ? doc._id : doc[field]);
        if (previous && field !== '_id' && JSON.stringify(previous[field]) !== JSON.stringify(doc[field])) td.classList.add('changed');
        return td;
    });
    tr.replaceChildren(...cells);
}

function flash(tr, kind) {
    tr.classList.remove('flash-insert', 'flash-update', 'flash-delete');
    void tr.offsetWidth; // restart the fade
    tr.classList.add(`flash-${kind}`);
    if (kind !== 'delete') {
        setTimeout(() => tr.classList.remove(`flash-${kind}`), 50);
        setTimeout(() => tr.querySelectorAll('td.changed').forEach((td) => td.classList.remove('changed')), 1500);
    }
}

function upsertRow(key, kind) {
    const doc = coll.docs.get(key);
    let tr = rowsByKey.get(key);
    const previous = tr?._doc;
    if (pendingRemoval.has(key)) {
        clearTimeout(pendingRemoval.get(key));
        pendingRemoval.delete(key);
    }
    if (!tr) {
        tr = document.createElement('tr');
        tr.dataset.key = key;
        tr.addEventListener('click', () => {
            const id = tr._doc?._id;
            document.querySelector('#write-form [name=_id]').value = typeof id === 'string' ? id : JSON.stringify(id);
        });
        rowsByKey.set(key, tr);
        document.querySelector('#docs tbody').append(tr);
    }
    tr._doc = doc;
    tr.dataset.revision = String(doc.revision ?? '');
    delete tr.dataset.deleted;
    fillRow(tr, doc, kind === 'update' ? previous : null);
    if (kind) flash(tr, kind);
}

function deleteRow(key) {
    const tr = rowsByKey.get(key);
    if (!tr) return;
    tr.dataset.deleted = 'true';
    flash(tr, 'delete');
    pendingRemoval.set(key, setTimeout(() => {
        pendingRemoval.delete(key);
        if (tr.dataset.deleted) {
            tr.remove();
            rowsByKey.delete(key);
            updateCount();
        }
    }, 1500));
}

function renderAll() {
    for (const t of pendingRemoval.values()) clearTimeout(t);
    pendingRemoval.clear();
    rowsByKey.clear();
    document.querySelector('#docs tbody').replaceChildren();
    columns = columnsFor(coll.docs.values());
    renderHeader();
    for (const key of coll.docs.keys()) upsertRow(key, null);
    updateCount();
}

function updateCount() {
    $('count').textContent = `${coll.size} document${coll.size === 1 ? '' : 's'}`;
    $('empty').hidden = coll.size > 0;
    $('store-status').textContent = coll.status;
    $('store-status').dataset.status = coll.status;
}

function onChanged(changed) {
    if (changed.error) {
        $('store-status').textContent = `failed: ${changed.error.code}`;
        $('store-status').dataset.status = 'failed';
        return;
    }
    const touched = [...changed.inserted, ...changed.updated].map((k) => coll.docs.get(k));
    const wanted = columnsFor([...touched, ...(columns.length ? [] : coll.docs.values())]);
    if (wanted.some((c) => !columns.includes(c)) || changed.reset) {
        // New fields (or a whole new state): rebuild once, then flash.
        columns = columnsFor([...coll.docs.values()]);
        renderHeader();
        for (const [key, tr] of rowsByKey) if (tr._doc && coll.docs.has(key)) fillRow(tr, coll.docs.get(key), null);
    }
    for (const key of changed.inserted) upsertRow(key, 'insert');
    for (const key of changed.updated) upsertRow(key, 'update');
    for (const key of changed.deleted) deleteRow(key);
    if (!changed.snapshot) for (const doc of touched) recordLatency(doc); // snapshot rows were written long ago
    updateCount();
}

function show(ns) {
    offColl?.();
    coll?.close();
    coll = conn.collection(ns);
    renderAll();
    offColl = coll.subscribe(onChanged);
    coll.ready.then(updateCount, () => {});
    history.replaceState(null, '', `?${new URLSearchParams({ ...Object.fromEntries(params), ns })}`);
}

// ------------------------------------------------------------ namespaces

async function namespaces() {
    try {
        const res = await fetch(new URL('/v1/namespaces', pushUrl));
        if (!res.ok) return [];
        const body = await res.json();
        return Array.isArray(body.namespaces) ? body.namespaces : [];
    } catch {
        return [];
    }
}

// The picker lists the exposed collections; `db.*` exposes collections the
// page cannot list, so a text field takes any name (also without a list).
async function start() {
    const list = await namespaces();
    const concrete = list.filter((n) => !n.endsWith('.*'));
    const wildcards = list.filter((n) => n.endsWith('.*')).map((n) => n.slice(0, -2));
    const initial =
        params.get('ns') ||
        (concrete.includes('shop.orders') || wildcards.includes('shop') ? 'shop.orders' : concrete[0] || (wildcards.length ? `${wildcards[0]}.orders` : 'shop.orders'));
    const select = $('ns-select');
    const input = $('ns-input');
    const names = concrete.includes(initial) ? concrete : [initial, ...concrete];
    select.replaceChildren(...names.map((n) => Object.assign(document.createElement('option'), { value: n, textContent: n })));
    select.value = initial;
    select.hidden = names.length < 2 && (wildcards.length > 0 || !list.length);
    input.hidden = list.length > 0 && wildcards.length === 0;
    input.value = initial;
    input.placeholder = wildcards.length ? `${wildcards[0]}.<collection>` : 'db.collection';
    select.addEventListener('change', () => {
        input.value = select.value;
        show(select.value);
    });
    input.addEventListener('change', () => {
        const ns = input.value.trim();
        if (!/^[^.\s]+\.[^\s]+$/.test(ns)) return;
        if (![...select.options].some((o) => o.value === ns)) select.append(Object.assign(document.createElement('option'), { value: ns, textContent: ns }));
        select.value = ns;
        show(ns);
    });
    show(initial);
}

// ----------------------------------------------------------------- write

$('writer-url').value = writerUrl;
$('write-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    const out = $('write-result');
    const fields = { status: form.get('status') };
    if (form.get('note')) fields.note = form.get('note');
    const body = { ns: coll.ns, fields };
    const id = String(form.get('_id') || '').trim();
    if (id) {
        try {
            body._id = JSON.parse(id);
        } catch {
            body._id = id;
        }
    }
    const started = performance.now();
    out.className = 'muted';
    out.textContent = 'writing…';
    try {
        const res = await fetch(new URL('/write', $('writer-url').value), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
        const reply = await res.json();
        if (!res.ok) throw new Error(reply.message || `HTTP ${res.status}`);
        const acked = performance.now();
        const t = reply.operationTime;
        out.textContent = `written (operationTime ${t.t}.${t.i}), waiting for it to reach the page…`;
        await coll.waitFor(t, { timeoutMs: 15000 });
        const shown = performance.now();
        out.className = 'ok';
        out.dataset.id = JSON.stringify(reply._id);
        out.textContent = `${JSON.stringify(reply._id)} on screen ${Math.round(shown - started)} ms after the click (write acknowledged after ${Math.round(acked - started)} ms).`;
        const tr = rowsByKey.get(changecast.idKey(reply._id));
        tr?.scrollIntoView({ block: 'nearest' });
    } catch (err) {
        out.className = 'bad';
        out.textContent = `write failed: ${err.message}`;
    }
});

start();
