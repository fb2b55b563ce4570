'use strict';
// The server over real gRPC, for what `gymwire check` does not cover: session TTL, bearer-token auth,
// stream Reset restarts and stream cancellation. `npm test`.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { spawn } = require('child_process');
const grpc = require('@grpc/grpc-js');
const health = require('grpc-health-check');
const { loadEnvironmentProto } = require('../lib/protos');

const { gymwire } = loadEnvironmentProto();

// Start server.js on a free port; resolves with {address, stop}.
function startServer(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, '..', 'server.js'), '--port', '0', ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /serving gymwire\.v1 on (\S+)/.exec(out);
      if (m) resolve({ address: m[1], stop: () => new Promise((r) => { child.on('exit', r); child.kill('SIGTERM'); }) });
    });
    child.stderr.on('data', () => {});
    child.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
}

function client(address) {
  const stub = new gymwire.EnvironmentService(address, grpc.credentials.createInsecure());
  const call = (method, request, metadata = new grpc.Metadata()) => new Promise((resolve, reject) => {
    stub[method](request, metadata, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
  return { stub, call, close: () => grpc.Client.prototype.close.call(stub) };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('an idle session expires after its TTL (NOT_FOUND that says so)', async () => {
  const server = await startServer(['--session-ttl', '1']);
  const c = client(server.address);
  try {
    const info = await c.call('GetInfo', {});
    assert.equal(info.features.session_ttl_seconds, 1);
    const { session_id: sid } = await c.call('Reset', { task_id: 'train-easy-plus-0000' });
    await c.call('Step', { session_id: sid, action: 'press 1 1' });
    await sleep(1300);
    await assert.rejects(c.call('Step', { session_id: sid, action: 'press 1 1' }),
      (err) => err.code === grpc.status.NOT_FOUND && /expired/.test(err.details));
  } finally {
    c.close();
    await server.stop();
  }
});

test('a bearer token is required when configured; health needs none', async () => {
  const server = await startServer(['--auth-token', 's3cret']);
  const c = client(server.address);
  try {
    await assert.rejects(c.call('GetInfo', {}), (err) => err.code === grpc.status.UNAUTHENTICATED);
    const md = new grpc.Metadata();
    md.set('authorization', 'Bearer s3cret');
    assert.equal((await c.call('GetInfo', {}, md)).name, 'lightsout');
    const Health = grpc.makeGenericClientConstructor(health.service, 'Health');
    const h = new Health(server.address, grpc.credentials.createInsecure());
    const reply = await new Promise((resolve, reject) => h.Check({ service: '' }, (e, r) => (e ? reject(e) : resolve(r))));
    assert.equal(reply.status, 'SERVING');
    h.close();
  } finally {
    c.close();
    await server.stop();
  }
});

test('a stream Reset replaces the episode; a cancelled stream frees its session', async () => {
  const server = await startServer(['--max-sessions', '2']);
  const c = client(server.address);
  try {
    const stream = c.stub.Session();
    const replies = [];
    const next = () => new Promise((resolve) => {
      const poll = () => (replies.length ? resolve(replies.shift()) : setTimeout(poll, 5));
      poll();
    });
    stream.on('data', (r) => replies.push(r));
    stream.on('error', () => {});
    stream.write({ reset: { task_id: 'train-easy-plus-0000' } });
    const first = (await next()).reset.session_id;
    stream.write({ reset: { task_id: 'train-easy-plus-0001' } });
    const second = (await next()).reset.session_id;
    assert.notEqual(first, second);
    await assert.rejects(c.call('Step', { session_id: first, action: 'x' }), (e) => e.code === grpc.status.NOT_FOUND);
    stream.write({ expert_action: {} });
    assert.equal((await next()).expert_action.provided, true);
    stream.write({});
    assert.equal((await next()).error.code, grpc.status.INVALID_ARGUMENT);
    // capacity 2: the stream holds one, so one more unary session fits and a third does not
    const other = await c.call('Reset', { task_id: 'train-easy-plus-0002' });
    await assert.rejects(c.call('Reset', { task_id: 'train-easy-plus-0002' }),
      (e) => e.code === grpc.status.RESOURCE_EXHAUSTED && /2 sessions/.test(e.details));
    stream.cancel();
    for (let i = 0; i < 100; i++) {
      try {
        await c.call('Step', { session_id: second, action: 'x' });
      } catch (err) {
        assert.equal(err.code, grpc.status.NOT_FOUND);
        break;
      }
      await sleep(20);
    }
    await c.call('Reset', { task_id: 'train-easy-plus-0002' }); // capacity came back
    assert.equal((await c.call('Close', { session_id: other.session_id })).was_open, true);
  } finally {
    c.close();
    await server.stop();
  }
});
