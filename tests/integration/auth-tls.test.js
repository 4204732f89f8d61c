// SPDX-License-Identifier: Apache-2.0
// The application's own SCRAM authentication passes through changecast
// untouched; TLS (and mutual TLS) between clients and changecast; SIGHUP
// reloads the certificate.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { MongoClient } = require('mongodb');
const { ROOT, startStandin, startChangecast, makeCerts } = require('./support');

test('SCRAM through changecast: right password accepted, wrong one rejected, no auth refused', async () => {
  const standin = await startStandin(['--auth', 'appuser:s3cret']);
  const changecast = await startChangecast(standin.port);
  try {
    for (const mechanism of ['SCRAM-SHA-256', 'SCRAM-SHA-1']) {
      const good = new MongoClient(`mongodb://appuser:s3cret@127.0.0.1:${changecast.port}/?authMechanism=${mechanism}`);
      await good.connect();
      await good.db('it_auth').collection('c').insertOne({ mechanism });
      await good.close();
    }
    const defaulted = new MongoClient(`mongodb://appuser:s3cret@127.0.0.1:${changecast.port}/`);
    assert.equal(await defaulted.db('it_auth').collection('c').countDocuments(), 2);
    await defaulted.close();

    const wrong = new MongoClient(`mongodb://appuser:nope@127.0.0.1:${changecast.port}/`, { serverSelectionTimeoutMS: 5000 });
    await assert.rejects(wrong.connect(), (err) => {
      assert.equal(err.code, 18);
      assert.equal(err.codeName, 'AuthenticationFailed');
      return true;
    });
    await wrong.close();

    const anonymous = new MongoClient(changecast.uri);
    await assert.rejects(anonymous.db('it_auth').collection('c').findOne({}), (err) => err.code === 13);
    await anonymous.close();
  } finally {
    await changecast.stop();
    await standin.stop();
  }
});

test('TLS between client and changecast, and mutual TLS with a client certificate', async () => {
  const certs = makeCerts();
  const standin = await startStandin();
  const tlsFlags = ['--wire.tls_cert_file', path.join(certs, 'server.pem'), '--wire.tls_key_file', path.join(certs, 'server.key')];
  const changecast = await startChangecast(standin.port, tlsFlags);
  const mutual = await startChangecast(standin.port, [...tlsFlags, '--wire.tls_client_ca_file', path.join(certs, 'ca.pem')]);
  const ca = path.join(certs, 'ca.pem');
  try {
    const secure = new MongoClient(`${changecast.uri}?tls=true&tlsCAFile=${ca}`);
    await secure.db('it_tls').collection('c').insertOne({ over: 'tls' });
    assert.equal((await secure.db('admin').command({ hello: 1 })).msg, 'isdbgrid');
    await secure.close();

    const plain = new MongoClient(changecast.uri, { serverSelectionTimeoutMS: 2000 });
    await assert.rejects(plain.connect());
    await plain.close();

    const untrusted = new MongoClient(`${changecast.uri}?tls=true`, { serverSelectionTimeoutMS: 2000 });
    await assert.rejects(untrusted.connect(), /certificate/);
    await untrusted.close();

    const withCert = new MongoClient(`${mutual.uri}?tls=true&tlsCAFile=${ca}&tlsCertificateKeyFile=${path.join(certs, 'client-combined.pem')}`);
    assert.equal(await withCert.db('it_tls').collection('c').countDocuments(), 1);
    await withCert.close();

    const withoutCert = new MongoClient(`${mutual.uri}?tls=true&tlsCAFile=${ca}`, { serverSelectionTimeoutMS: 2000 });
    await assert.rejects(withoutCert.connect());
    await withoutCert.close();
    await mutual.waitFor(/reason=client_tls_error/);
  } finally {
    await changecast.stop();
    await mutual.stop();
    await standin.stop();
  }
});

test('SIGHUP reloads the TLS certificate for new connections', async () => {
  const first = makeCerts();
  const live = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'cc-live-'));
  for (const name of ['server.pem', 'server.key']) fs.copyFileSync(path.join(first, name), path.join(live, name));
  const standin = await startStandin();
  const changecast = await startChangecast(standin.port, [
    '--wire.tls_cert_file', path.join(live, 'server.pem'), '--wire.tls_key_file', path.join(live, 'server.key'),
  ]);
  try {
    const second = makeCerts(); // a new CA: only the reloaded certificate verifies against it
    const client = (dir) => new MongoClient(`${changecast.uri}?tls=true&tlsCAFile=${path.join(dir, 'ca.pem')}`, { serverSelectionTimeoutMS: 2000 });
    const old = client(first);
    await old.db('admin').command({ ping: 1 });
    await old.close();
    for (const name of ['server.pem', 'server.key']) fs.copyFileSync(path.join(second, name), path.join(live, name));
    changecast.proc.kill('SIGHUP');
    await changecast.waitFor(/event=reloaded/);
    const fresh = client(second);
    await fresh.db('admin').command({ ping: 1 });
    await fresh.close();
    const stale = client(first);
    await assert.rejects(stale.connect());
    await stale.close();
  } finally {
    await changecast.stop();
    await standin.stop();
  }
});

test('--check-config accepts the shipped config and rejects a bad key with exit 2', () => {
  const bin = require('./support').CHANGECAST;
  const ok = execFileSync(bin, ['--check-config', '--config', path.join(ROOT, 'conf/changecast.conf')], { encoding: 'utf8' });
  assert.match(ok, /configuration is valid/);
  for (const args of [['--wire.lisen', 'x'], ['--wire.listen', 'nowhere'], ['--wire.max_connections', '-1']]) {
    try {
      execFileSync(bin, ['--check-config', ...args], { stdio: 'pipe' });
      assert.fail(`accepted ${args}`);
    } catch (err) {
      assert.equal(err.status, 2);
      assert.match(err.stderr.toString(), new RegExp(args[0].slice(2).replace('.', '\\.')));
    }
  }
});

test('TLS to the upstream when the connection string says tls=true, verified against tlsCAFile', async () => {
  const certs = makeCerts();
  const standin = await startStandin(['--tls-cert-file', path.join(certs, 'server.pem'), '--tls-key-file', path.join(certs, 'server.key')]);
  const upstreamUri = `mongodb://127.0.0.1:${standin.port}/?replicaSet=rs0&tls=true&tlsCAFile=${path.join(certs, 'ca.pem')}`;
  const changecast = await startChangecast(standin.port, [], { upstreamUri });
  const client = new MongoClient(changecast.uri);
  try {
    assert.match(changecast.output, /upstream_tls=true/);
    await client.db('it_tls').collection('upstream').insertOne({ _id: 1 });
    assert.deepEqual(await client.db('it_tls').collection('upstream').findOne({}), { _id: 1 });
  } finally {
    await client.close();
    await changecast.stop();
    await standin.stop();
  }
  // A plain-TCP upstream connection to a TLS-only server never gets far.
  assert.doesNotMatch(standin.output || '', /tls_handshake_failed/);
});

test('an upstream certificate that does not verify is refused', async () => {
  const certs = makeCerts();
  const otherCa = makeCerts();
  const standin = await startStandin(['--tls-cert-file', path.join(certs, 'server.pem'), '--tls-key-file', path.join(certs, 'server.key')]);
  const upstreamUri = `mongodb://127.0.0.1:${standin.port}/?replicaSet=rs0&tls=true&tlsCAFile=${path.join(otherCa, 'ca.pem')}`;
  const changecast = await startChangecast(standin.port, ['--wire.primary_wait_ms', '300'], { upstreamUri, waitForPrimary: false });
  const client = new MongoClient(changecast.uri, { serverSelectionTimeoutMS: 2000 });
  try {
    await assert.rejects(client.connect());
    await changecast.waitFor(/certificate verify failed|TLS handshake failed|no_primary/);
  } finally {
    await client.close();
    await changecast.stop();
    await standin.stop();
  }
});
