// SPDX-License-Identifier: Apache-2.0
// mongosh script of docker/compose.yaml's rs-init service, run against mongo1:
// initiates replica set rs0 once (a second run finds it initiated), waits for
// a primary, and turns on pre-images for shop.orders (MongoDB 6.0+) so
// changecast can decide deletes for row-filtered subscribers (docs/security.md).
const members = ['mongo1:27017', 'mongo2:27017', 'mongo3:27017'];

try {
  rs.status();
  print('rs-init: rs0 already initiated');
} catch (err) {
  if (err.codeName !== 'NotYetInitialized') throw err;
  rs.initiate({ _id: 'rs0', members: members.map((host, i) => ({ _id: i, host })) });
  print('rs-init: rs0 initiated');
}

const deadline = Date.now() + 60000;
while (!rs.status().members.some((m) => m.stateStr === 'PRIMARY')) {
  if (Date.now() > deadline) throw new Error('rs-init: no primary after 60 s');
  sleep(500);
}

const primary = new Mongo(`mongodb://${members.join(',')}/?replicaSet=rs0`);
const shop = primary.getDB('shop');
const preImages = { changeStreamPreAndPostImages: { enabled: true } };
if (shop.getCollectionNames().includes('orders')) {
  shop.runCommand({ collMod: 'orders', ...preImages });
} else {
  shop.createCollection('orders', preImages);
}
print('rs-init: primary elected, pre-images on for shop.orders');
