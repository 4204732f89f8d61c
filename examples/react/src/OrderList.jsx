// SPDX-License-Identifier: Apache-2.0
// A table of live orders. The list re-renders when the rows array changes;
// each <OrderRow> is memo()'d on its document, which the store keeps the
// same object unless that document changed, so only changed rows re-render.
import { memo } from 'react';
import { idKey } from '../../../clients/js/changecast.js';
import { useLiveCollection } from './useLiveCollection.js';

export const OrderRow = memo(function OrderRow({ doc, onRender }) {
    onRender?.(doc._id);
    return (
        <tr data-key={idKey(doc._id)}>
            <td>{String(doc._id)}</td>
            <td>{doc.status}</td>
            <td>{doc.total}</td>
        </tr>
    );
});

export function OrderList({ ns = 'shop.orders', filter, onRender }) {
    const rows = useLiveCollection(ns, filter);
    return (
        <table>
            <tbody>
                {rows.map((doc) => (
                    <OrderRow key={idKey(doc._id)} doc={doc} onRender={onRender} />
                ))}
            </tbody>
        </table>
    );
}
