#!/usr/bin/env node
'use strict';
// A gymwire.v1 environment server in Node.js: Lights Out, from the .proto files alone.
//
//   node server.js [HOST:PORT] [--host H] [--port P] [--max-sessions N] [--session-ttl S]
//                  [--max-action-bytes B] [--auth-token T] [--tls-cert F --tls-key F] [--grace S]
//
// Every flag has an environment variable: GYMWIRE_ADDRESS, GYMWIRE_HOST, GYMWIRE_PORT,
// GYMWIRE_MAX_SESSIONS, GYMWIRE_SESSION_TTL, GYMWIRE_MAX_ACTION_BYTES, GYMWIRE_AUTH_TOKEN,
// GYMWIRE_TLS_CERT, GYMWIRE_TLS_KEY, GYMWIRE_GRACE. Default address: 127.0.0.1:50090.

const crypto = require('crypto');
const fs = require('fs');
const grpc = require('@grpc/grpc-js');
const { ReflectionService } = require('@grpc/reflection');
const { HealthImplementation } = require('grpc-health-check');
const { loadEnvironmentProto, PROTO_ROOT } = require('./lib/protos');
const { EnvService, GymError, handlers, DEFAULT_LIMITS } = require('./lib/service');
const { LightsOut } = require('./lib/lightsout');

const SERVICE_NAME = 'gymwire.v1.EnvironmentService';

function log(msg) {
  process.stderr.write(`${new Date().toISOString()} lightsout-node ${msg}\n`);
}

function usage(code) {
  process.stdout.write(`usage: node server.js [HOST:PORT] [--host H] [--port P] [--max-sessions N]
       [--session-ttl SECONDS] [--max-action-bytes B] [--auth-token T] [--tls-cert F --tls-key F] [--grace S]
Defaults: 127.0.0.1:50090, ${DEFAULT_LIMITS.maxSessions} sessions, TTL ${DEFAULT_LIMITS.sessionTtlSeconds} s, \
${DEFAULT_LIMITS.maxActionBytes} action bytes. Environment variables: GYMWIRE_HOST, GYMWIRE_PORT, ... (see server.js).
`);
  process.exit(code);
}

function parseArgs(argv, env) {
  const opts = {
    host: env.GYMWIRE_HOST || '127.0.0.1',
    port: env.GYMWIRE_PORT || '50090',
    maxSessions: env.GYMWIRE_MAX_SESSIONS || String(DEFAULT_LIMITS.maxSessions),
    sessionTtl: env.GYMWIRE_SESSION_TTL || String(DEFAULT_LIMITS.sessionTtlSeconds),
    maxActionBytes: env.GYMWIRE_MAX_ACTION_BYTES || String(DEFAULT_LIMITS.maxActionBytes),
    authToken: env.GYMWIRE_AUTH_TOKEN || '',
    tlsCert: env.GYMWIRE_TLS_CERT || '',
    tlsKey: env.GYMWIRE_TLS_KEY || '',
    grace: env.GYMWIRE_GRACE || '5',
  };
  const setAddress = (address) => {
    const at = address.lastIndexOf(':');
    if (at <= 0) throw new Error(`address ${address} is not HOST:PORT`);
    opts.host = address.slice(0, at).replace(/^\[|\]$/g, '');
    opts.port = address.slice(at + 1);
  };
  if (env.GYMWIRE_ADDRESS) setAddress(env.GYMWIRE_ADDRESS);
  const flags = { '--host': 'host', '--port': 'port', '--max-sessions': 'maxSessions', '--session-ttl': 'sessionTtl',
    '--max-action-bytes': 'maxActionBytes', '--auth-token': 'authToken', '--tls-cert': 'tlsCert',
    '--tls-key': 'tlsKey', '--grace': 'grace' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') usage(0);
    const [flag, inline] = arg.split(/=(.*)/s, 2);
    if (flags[flag]) {
      const value = inline !== undefined ? inline : argv[++i];
      if (value === undefined) throw new Error(`${flag} needs a value`);
      opts[flags[flag]] = value;
    } else if (!arg.startsWith('-')) {
      setAddress(arg);
    } else {
      throw new Error(`unknown option ${arg}`);
    }
  }
  const int = (name, min) => {
    const v = Number(opts[name]);
    if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be an integer >= ${min}, not ${opts[name]}`);
    return v;
  };
  return { ...opts, port: int('port', 0), maxSessions: int('maxSessions', 1), sessionTtl: int('sessionTtl', 0),
    maxActionBytes: int('maxActionBytes', 1), grace: Number(opts.grace) || 0 };
}

// A bearer-token check that does not leak the token's length or content through timing.
function authorizer(token) {
  if (!token) return () => {};
  const want = crypto.createHash('sha256').update(`Bearer ${token}`).digest();
  return (metadata) => {
    const got = (metadata.get('authorization')[0] || '').toString();
    if (!crypto.timingSafeEqual(crypto.createHash('sha256').update(got).digest(), want)) {
      throw new GymError(grpc.status.UNAUTHENTICATED, 'this server requires "authorization: Bearer <token>"');
    }
  };
}

function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`server.js: ${err.message}\n`);
    usage(2);
  }
  const { packageDefinition, gymwire } = loadEnvironmentProto();

  const server = new grpc.Server({
    'grpc.max_receive_message_length': 4 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    'grpc.keepalive_time_ms': 60_000,
    'grpc.keepalive_timeout_ms': 20_000,
    'grpc.keepalive_permit_without_calls': 1,
  });

  // Health: NOT_SERVING until the catalogue is built, NOT_SERVING again while draining.
  const health = new HealthImplementation({ '': 'NOT_SERVING', [SERVICE_NAME]: 'NOT_SERVING' });
  health.addToServer(server);
  new ReflectionService(packageDefinition).addToServer(server);

  let service = null;
  let draining = false;
  const ready = (isReset) => {
    if (draining && isReset) throw new GymError(grpc.status.UNAVAILABLE, 'the server is shutting down; retry elsewhere');
    if (!service) throw new GymError(grpc.status.UNAVAILABLE, 'the server is still loading its tasks; retry');
    return service;
  };
  server.addService(gymwire.EnvironmentService.service, handlers(ready, authorizer(opts.authToken), log));

  let credentials = grpc.ServerCredentials.createInsecure();
  if (opts.tlsCert || opts.tlsKey) {
    credentials = grpc.ServerCredentials.createSsl(null, [{
      cert_chain: fs.readFileSync(opts.tlsCert), private_key: fs.readFileSync(opts.tlsKey) }], false);
  }
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  server.bindAsync(`${host}:${opts.port}`, credentials, (err, port) => {
    if (err) {
      log(`cannot listen on ${host}:${opts.port}: ${err.message}`);
      process.exit(1);
    }
    // Listening already (health answers NOT_SERVING, env calls UNAVAILABLE); now load the tasks.
    setImmediate(() => {
      const started = Date.now();
      service = new EnvService(new LightsOut(), {
        maxSessions: opts.maxSessions, sessionTtlSeconds: opts.sessionTtl, maxActionBytes: opts.maxActionBytes,
      }, log);
      setInterval(() => service.sessions.expire(), 5000).unref();
      health.setStatus('', 'SERVING');
      health.setStatus(SERVICE_NAME, 'SERVING');
      // Scripts wait for this line (or poll health); it names the real port when --port 0 was given.
      process.stdout.write(`lightsout-node serving gymwire.v1 on ${host}:${port}\n`);
      log(`${service.env.tasks.length} tasks ready in ${Date.now() - started} ms; protos from ${PROTO_ROOT}; ` +
        `max_sessions=${opts.maxSessions} ttl=${opts.sessionTtl}s tls=${Boolean(opts.tlsCert)} ` +
        `auth=${Boolean(opts.authToken)}`);
    });
  });

  let stopping = false;
  const stop = (signal) => {
    if (stopping) {
      server.forceShutdown();
      process.exit(1);
    }
    stopping = true;
    draining = true;
    health.setStatus('', 'NOT_SERVING');
    health.setStatus(SERVICE_NAME, 'NOT_SERVING');
    log(`${signal}: draining for up to ${opts.grace} s`);
    const force = setTimeout(() => {
      server.forceShutdown();
      process.exit(0);
    }, opts.grace * 1000);
    force.unref();
    server.tryShutdown(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (require.main === module) main();

module.exports = { parseArgs };
