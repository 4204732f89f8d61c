// SPDX-License-Identifier: Apache-2.0
// A change to one document re-renders only that document's row. The store
// is changecast's real LiveCollection; its Stream is fed protocol messages
// as the push port writes them (docs/push-protocol.md), the same way the
// library's own unit tests do, so no server is needed here.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { act, StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { LiveCollection, Stream } from '../../../clients/js/changecast.js';
import { ChangecastContext } from '../src/useLiveCollection.js';
import { OrderList } from '../src/OrderList.jsx';

globalThis.IS_REACT_ACT_ENVIRONMENT = true;

// What a Connection offers the hook (collection()), with each live query's
// Stream kept so the test can feed it.
function feedConnection() {
    const streams = [];
    const source = {
        open(selection, sink) {
            const stream = new Stream(selection, sink);
            streams.push(stream);
            return { stream, close: () => (stream.closed = true) };
        },
    };
    return {
        streams,
        collection: (ns, options) => new LiveCollection(source, ns, options),
        feed: (...messages) => act(() => messages.forEach((m) => streams[streams.length - 1].feed(m))),
    };
}

const tok = (n) => `82${String(n).padStart(10, '0')}`;
const ts = (n) => ({ $timestamp: { t: 1000 + n, i: 1 } });
const change = (n, operationType, id, more) => ({
    type: 'change',
    token: tok(n),
    event: { _id: { _data: tok(n) }, operationType, clusterTime: ts(n), ns: { db: 'shop', coll: 'orders' }, documentKey: { _id: id }, ...more },
});

describe('useLiveCollection', () => {
    let container;
    let root;
    let conn;
    let renders;
    const onRender = (id) => renders.set(id, (renders.get(id) || 0) + 1);

    beforeEach(() => {
        container = document.createElement('div');
        document.body.append(container);
        root = createRoot(container);
        conn = feedConnection();
        renders = new Map();
    });
    afterEach(() => {
        act(() => root.unmount());
        container.remove();
    });

    const render = () =>
        act(() =>
            root.render(
                <StrictMode>
                    <ChangecastContext.Provider value={conn}>
                        <OrderList ns="shop.orders" onRender={onRender} />
                    </ChangecastContext.Provider>
                </StrictMode>,
            ),
        );
    const cells = () => [...container.querySelectorAll('tr')].map((tr) => [...tr.children].map((td) => td.textContent).join('|'));
    const counts = () => Object.fromEntries(renders);

    it('renders the snapshot, then re-renders only the row whose document changed', async () => {
        render();
        expect(conn.streams).toHaveLength(1); // StrictMode's double mount opened one live query
        expect(conn.streams[0].request()).toEqual({ ns: 'shop.orders', snapshot: true });
        conn.feed(
            { type: 'snapshot-begin', atClusterTime: ts(0), count: 3 },
            { type: 'doc', doc: { _id: 1, status: 'new', total: 10 } },
            { type: 'doc', doc: { _id: 2, status: 'new', total: 20 } },
            { type: 'doc', doc: { _id: 3, status: 'new', total: 30 } },
            { type: 'snapshot-end', atClusterTime: ts(0), token: tok(0) },
        );
        expect(cells()).toEqual(['1|new|10', '2|new|20', '3|new|30']);
        renders.clear();

        conn.feed(change(1, 'update', 2, { updateDescription: { updatedFields: { status: 'paid' }, removedFields: [] } }));
        expect(cells()).toEqual(['1|new|10', '2|paid|20', '3|new|30']);
        expect(counts()).toEqual({ 2: 2 }); // StrictMode renders twice; rows 1 and 3 not at all
        renders.clear();

        conn.feed(change(2, 'insert', 4, { fullDocument: { _id: 4, status: 'new', total: 40 } }));
        expect(cells()).toHaveLength(4);
        expect(counts()).toEqual({ 4: 2 });
        renders.clear();

        conn.feed(change(3, 'delete', 1));
        expect(cells()).toEqual(['2|paid|20', '3|new|30', '4|new|40']);
        expect(counts()).toEqual({});
    });

    it('closes the live query once the last component using it unmounts', async () => {
        render();
        const stream = conn.streams[0];
        act(() => root.render(<div />));
        await new Promise((resolve) => setTimeout(resolve, 10));
        expect(stream.closed).toBe(true);
    });
});
