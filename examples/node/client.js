#!/usr/bin/env node
'use strict';
// A gymwire.v1 client in Node.js, from the .proto files alone: plays one full episode against ANY
// gymwire server (Python, Node, ...) with the server's own expert, printing every observation.
//
//   node client.js [ADDRESS] [--task ID] [--split S] [--difficulty D] [--category C] [--seed N]
//                  [--max-turns N] [--stream] [--token T] [--tls] [--quiet]
//
// ADDRESS defaults to $GYMWIRE_ADDRESS or 127.0.0.1:50090. Without --task it plays the first listed
// task matching the filters, or, with --seed, a task sampled by the server from that seed.
// --stream plays over the Session stream instead of unary calls.
// Exit status: 0 the episode ended in success, 2 it ended without success, 1 an error.

const grpc = require('@grpc/grpc-js');
const { loadEnvironmentProto, fromStruct } = require('./lib/protos');

function parseArgs(argv) {
  const opts = { address: process.env.GYMWIRE_ADDRESS || '127.0.0.1:50090', token: process.env.GYMWIRE_TOKEN || '',
    task: '', split: '', difficulty: '', category: '', seed: null, maxTurns: 0, stream: false, tls: false,
    quiet: false };
  const values = { '--task': 'task', '--split': 'split', '--difficulty': 'difficulty', '--category': 'category',
    '--seed': 'seed', '--max-turns': 'maxTurns', '--token': 'token' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') {
      process.stdout.write('usage: node client.js [ADDRESS] [--task ID] [--split S] [--difficulty D] ' +
        '[--category C] [--seed N] [--max-turns N] [--stream] [--token T] [--tls] [--quiet]\n');
      process.exit(0);
    } else if (values[arg]) {
      if (argv[i + 1] === undefined) throw new Error(`${arg} needs a value`);
      opts[values[arg]] = argv[++i];
    } else if (arg === '--stream' || arg === '--tls' || arg === '--quiet') {
      opts[arg.slice(2)] = true;
    } else if (!arg.startsWith('-')) {
      opts.address = arg;
    } else {
      throw new Error(`unknown option ${arg}`);
    }
  }
  opts.maxTurns = Number(opts.maxTurns) || 0;
  return opts;
}

const indent = (text, prefix = '    ') => String(text).split('\n').map((l) => prefix + l).join('\n');
const statusName = (code) => Object.keys(grpc.status).find((k) => grpc.status[k] === code) || String(code);

function describeObservation(o) {
  const flags = [`turn ${o.turn}`, `reward ${o.reward}`, o.action_valid ? 'valid' : 'INVALID'];
  if (o.parsed_action) flags.push(`parsed ${JSON.stringify(o.parsed_action)}`);
  if (o.terminated) flags.push('terminated');
  if (o.truncated) flags.push('truncated');
  if (o.success) flags.push('success');
  const info = fromStruct(o.info);
  return `  [${flags.join(', ')}]` + (Object.keys(info).length ? ` info=${JSON.stringify(info)}` : '') +
    `\n${indent(o.text)}`;
}

// Unary calls as promises, with a deadline and the bearer token.
function unaryCaller(stub, metadata) {
  return (method, request, seconds = 30) => new Promise((resolve, reject) => {
    stub[method](request, metadata, { deadline: Date.now() + seconds * 1000 }, (err, reply) => {
      if (err) {
        err.message = `${method}: ${statusName(err.code)}: ${err.details}`;
        reject(err);
      } else {
        resolve(reply);
      }
    });
  });
}

// The Session stream as request -> promise of reply (replies come back in order).
function streamCaller(stub, metadata) {
  const call = stub.Session(metadata);
  const waiting = [];
  call.on('data', (reply) => waiting.shift().resolve(reply));
  call.on('error', (err) => {
    while (waiting.length) waiting.shift().reject(err);
  });
  call.on('end', () => {
    while (waiting.length) waiting.shift().reject(new Error('the server ended the Session stream'));
  });
  return {
    send(request) {
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        call.write(request);
      }).then((reply) => {
        if (reply.result === 'error') {
          const err = new Error(`stream: ${statusName(reply.error.code)}: ${reply.error.message}`);
          err.code = reply.error.code;
          throw err;
        }
        return reply[reply.result];
      });
    },
    end() {
      call.end();
    },
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const say = (msg) => process.stdout.write(`${msg}\n`);
  const { gymwire } = loadEnvironmentProto();
  const credentials = opts.tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure();
  const stub = new gymwire.EnvironmentService(opts.address, credentials,
    { 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  const metadata = new grpc.Metadata();
  if (opts.token) metadata.set('authorization', `Bearer ${opts.token}`);
  const call = unaryCaller(stub, metadata);

  await new Promise((resolve, reject) => stub.waitForReady(Date.now() + 10_000,
    (err) => (err ? reject(new Error(`cannot reach ${opts.address}: ${err.message}`)) : resolve())));

  // 1. What is this server?
  const info = await call('GetInfo', {});
  const f = info.features;
  say(`== ${info.name} ${info.env_version} (protocol ${info.protocol_version}) at ${opts.address}`);
  say(indent(info.description, '  '));
  say(`  action grammar: ${info.action_grammar}`);
  say(`  features: valid_actions=${f.provides_valid_actions} expert=${f.provides_expert} ` +
    `turns=${f.default_max_turns}/${f.max_turns_limit} reward=[${f.reward_min}, ${f.reward_max}] ` +
    `max_sessions=${f.max_sessions} ttl=${f.session_ttl_seconds}s`);
  const c = info.catalogue;
  const total = c.counts.reduce((n, x) => n + Number(x.count), 0);
  say(`  catalogue: ${total} tasks; splits [${c.splits}], difficulties [${c.difficulties}], ` +
    `categories [${c.categories.slice(0, 8)}${c.categories.length > 8 ? ', ...' : ''}]`);
  if (!opts.quiet) say(`  instruction:\n${indent(info.instruction)}`);

  // 2. Which tasks are there?
  const filters = { split: opts.split, difficulty: opts.difficulty, category: opts.category };
  const page = await call('ListTasks', { ...filters, page_size: 3 });
  say(`== ListTasks ${JSON.stringify(filters)}: ${page.total_size} match; first page:`);
  for (const t of page.tasks) say(`  ${t.id}  (${t.split}/${t.difficulty}/${t.category}) ${JSON.stringify(t.metadata)}`);
  if (page.next_page_token) say(`  ... next_page_token ${JSON.stringify(page.next_page_token.slice(0, 40))}`);

  // 3. Start an episode.
  const reset = { options: { max_turns: opts.maxTurns } };
  if (opts.task) reset.task_id = opts.task;
  else if (opts.seed !== null) reset.sample = { ...filters, seed: String(opts.seed) };
  else if (page.tasks.length) reset.task_id = page.tasks[0].id;
  else throw new Error('no task matches the filters');

  const stream = opts.stream ? streamCaller(stub, metadata) : null;
  let sessionId = '';
  // Every operation goes either over the stream (session_id empty: the stream's own) or unary.
  const op = (name, streamField, request) => (stream
    ? stream.send({ [streamField]: request })
    : call(name, { ...request, session_id: sessionId }));

  const started = stream ? await stream.send({ reset }) : await call('Reset', reset);
  sessionId = started.session_id;
  const maxTurns = opts.maxTurns || f.max_turns_limit;
  say(`== Reset ${started.task.id} (${started.task.difficulty}) -> session ${sessionId}` +
    `${stream ? ' over the Session stream' : ''}`);
  say(describeObservation(started.observation));

  // 4. Play with the server's expert until the episode ends.
  let last = started.observation;
  let turn = 0;
  try {
    while (!last.terminated && !last.truncated && turn < maxTurns) {
      let action;
      const expert = f.provides_expert ? await op('ExpertAction', 'expert_action', {}) : { provided: false };
      if (expert.provided) {
        action = expert.action;
      } else {
        const valid = await op('ValidActions', 'valid_actions', {});
        if (!valid.provided || !valid.actions.length) {
          say('== the server offers neither an expert move nor valid actions here; stopping');
          break;
        }
        action = valid.actions[0];
      }
      say(`-- turn ${turn + 1}: ${JSON.stringify(action)}`);
      // step_index makes a retry safe: after a lost reply the server returns the stored one.
      let reply;
      for (let attempt = 1; ; attempt++) {
        try {
          reply = await op('Step', 'step', { action, step_index: turn });
          break;
        } catch (err) {
          const retriable = err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED;
          if (!retriable || attempt >= 3 || stream) throw err;
          say(`   (${err.message}; retrying step_index ${turn})`);
        }
      }
      last = reply.observation;
      turn++;
      say(describeObservation(last));
    }
  } finally {
    if (stream) stream.end();
    else await call('Close', { session_id: sessionId }).catch(() => {});
  }
  const outcome = last.success ? 'SUCCESS' : last.terminated ? 'terminated without success'
    : last.truncated ? 'truncated by the turn limit' : 'stopped';
  say(`== episode over after ${last.turn} turns: ${outcome}`);
  // Not stub.close() nor grpc.closeClient(stub): the generated client maps its RPC Close to close() too.
  grpc.Client.prototype.close.call(stub);
  return last.success ? 0 : 2;
}

main().then((code) => process.exit(code), (err) => {
  process.stderr.write(`client.js: ${err.message}\n`);
  process.exit(1);
});
