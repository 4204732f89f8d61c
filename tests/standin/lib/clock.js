// SPDX-License-Identifier: Apache-2.0
// The stand-in's cluster clock: one strictly increasing Timestamp per write,
// as a replica-set primary's oplog assigns them. Replies report the last one
// as $clusterTime.clusterTime and operationTime.
'use strict';
const { Timestamp, Binary, Long } = require('bson');

class ClusterClock {
  constructor() {
    this.seconds = Math.floor(Date.now() / 1000);
    this.increment = 0;
  }

  // Advance for a new write (or a whole transaction): seconds follow the wall
  // clock, the increment orders writes within one second.
  tick() {
    const wallSeconds = Math.floor(Date.now() / 1000);
    if (wallSeconds > this.seconds) {
      this.seconds = wallSeconds;
      this.increment = 1;
    } else {
      this.increment += 1;
    }
    return this.now();
  }

  now() {
    return new Timestamp({ t: this.seconds, i: this.increment });
  }

  // $clusterTime as a mongod without keyFile auth signs it: a zero key id and
  // an all-zero hash (drivers only echo it back).
  clusterTimeDocument() {
    return {
      clusterTime: this.now(),
      signature: { hash: new Binary(Buffer.alloc(20), 0), keyId: Long.fromNumber(0) },
    };
  }
}

module.exports = { ClusterClock };
