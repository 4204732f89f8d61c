// SPDX-License-Identifier: Apache-2.0
// The demo's writer: an ordinary application using the official Node.js
// driver, pointed at changecast. Every second it inserts or updates an order.
'use strict';
const { MongoClient } = require('mongodb');

async function main() {
  const uri = process.argv[2] || 'mongodb://127.0.0.1:27018/';
  const client = new MongoClient(uri, { appName: 'changecast-demo-writer' });
  await client.connect();
  const orders = client.db('shop').collection('orders');
  const statuses = ['new', 'paid', 'packed', 'shipped', 'delivered'];
  let tick = 0;
  const timer = setInterval(async () => {
    tick += 1;
    const id = `order-${(tick % 10) + 1}`;
    try {
      const status = statuses[tick % statuses.length];
      await orders.updateOne(
        { _id: id },
        { $set: { status, updatedAt: new Date() }, $inc: { revision: 1 } },
        { upsert: true },
      );
      console.log(`wrote ${id} status=${status}`);
    } catch (err) {
      console.error(`write failed: ${err.message}`);
    }
  }, 1000);
  const stop = async () => {
    clearInterval(timer);
    await client.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
