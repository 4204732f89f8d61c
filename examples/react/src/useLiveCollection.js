// SPDX-License-Identifier: Apache-2.0
// useLiveCollection(ns, filter): the rows of a changecast live collection as
// React state, through useSyncExternalStore. The store applies each change
// copy-on-write, so a document that did not change keeps its identity: rows
// rendered by a memo() component re-render only when their own document
// changed (see OrderList.jsx).
import { createContext, useContext, useEffect, useSyncExternalStore } from 'react';

/** Provide a changecast Connection (changecast.connect(...)) to the tree. */
export const ChangecastContext = createContext(null);

// One LiveCollection per (connection, ns, filter, options), shared by the
// components that ask for it and closed a tick after the last one leaves
// (StrictMode mounts, unmounts and mounts again: that must not reopen it).
const collections = new WeakMap();

function acquire(conn, ns, filter, options) {
    const key = JSON.stringify([ns, filter ?? null, options ?? null]);
    let byKey = collections.get(conn);
    if (!byKey) collections.set(conn, (byKey = new Map()));
    let entry = byKey.get(key);
    if (!entry) {
        entry = { key, byKey, refs: 0, timer: null, coll: conn.collection(ns, { ...options, filter }) };
        byKey.set(key, entry);
    }
    return entry;
}

function retain(entry) {
    entry.refs += 1;
    clearTimeout(entry.timer);
    return () => {
        entry.refs -= 1;
        if (entry.refs > 0) return;
        entry.timer = setTimeout(() => {
            if (entry.refs > 0) return;
            entry.coll.close();
            entry.byKey.delete(entry.key);
        }, 0);
    };
}

/** The LiveCollection itself (status, waitFor, get), for components that need more than rows. */
export function useLiveCollectionStore(ns, filter, options) {
    const conn = useContext(ChangecastContext);
    if (!conn) throw new Error('useLiveCollection needs a <ChangecastContext.Provider value={connection}>');
    const entry = acquire(conn, ns, filter, options);
    useEffect(() => retain(entry), [entry]);
    return entry.coll;
}

/** The documents of `ns` matching `filter`, kept live; the same array until something changes. */
export function useLiveCollection(ns, filter, options) {
    const coll = useLiveCollectionStore(ns, filter, options);
    return useSyncExternalStore(coll.subscribe, coll.getSnapshot, coll.getSnapshot);
}
