'use strict';
// The gymwire.v1 protocol over any environment object (see lib/lightsout.js for the interface).
//
// EnvService holds the sessions and implements every rule of protos/gymwire/v1/environment.proto;
// it throws GymError(code, message) for each failure the contract names. The unary handlers turn a
// GymError into a gRPC status, the Session stream into an in-band SessionResponse.error, so both
// transports report identical codes and messages.

const crypto = require('crypto');
const grpc = require('@grpc/grpc-js');
const { toStruct } = require('./protos');
const { splitmix64 } = require('./lightsout');

const PROTOCOL_VERSION = '1.0';
const { status: Code } = grpc;

class GymError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const invalid = (msg) => new GymError(Code.INVALID_ARGUMENT, msg);
const notFound = (msg) => new GymError(Code.NOT_FOUND, msg);
const precondition = (msg) => new GymError(Code.FAILED_PRECONDITION, msg);
// Client input quoted in an error, cut short: a status message travels in gRPC metadata, whose size is
// limited, so an echoed 30 KB id would turn NOT_FOUND into a transport error.
const ECHO_CHARS = 120;
const echo = (value) => {
  const text = String(value);
  return JSON.stringify(text.length > ECHO_CHARS ? `${text.slice(0, ECHO_CHARS)}...` : text);
};

const DEFAULT_LIMITS = {
  maxSessions: 256,
  sessionTtlSeconds: 600,
  maxActionBytes: 8192,
  maxPageSize: 1000,
};

// --- sessions -----------------------------------------------------------------------------------

class SessionStore {
  constructor(maxSessions, ttlSeconds, log) {
    this.max = maxSessions;
    this.ttlMs = ttlSeconds * 1000;
    this.log = log;
    this.open = new Map(); // id -> session
    this.gone = new Map(); // id -> why it ended ("closed", "expired", ...), the last 4096, for messages
  }

  get size() {
    return this.open.size;
  }

  ensureCapacity() {
    this.expire();
    if (this.open.size >= this.max) {
      throw new GymError(Code.RESOURCE_EXHAUSTED,
        `the server holds its maximum of ${this.max} sessions; close some or retry later`);
    }
  }

  add(session) {
    this.open.set(session.id, session);
  }

  get(id) {
    if (!id) throw invalid('session_id is required');
    const session = this.open.get(id);
    if (!session) {
      const why = this.gone.get(id);
      throw notFound(why ? `session ${echo(id)} was ${why}` : `unknown session ${echo(id)}`);
    }
    if (this.ttlMs > 0 && Date.now() - session.touched > this.ttlMs) {
      this.remove(id, 'expired (idle too long)');
      throw notFound(`session ${echo(id)} was expired (idle too long)`);
    }
    session.touched = Date.now();
    return session;
  }

  remove(id, why = 'closed') {
    const session = this.open.get(id);
    if (!session) return false;
    this.open.delete(id);
    this.gone.set(id, why);
    if (this.gone.size > 4096) this.gone.delete(this.gone.keys().next().value);
    return true;
  }

  expire() {
    if (this.ttlMs <= 0) return 0;
    const now = Date.now();
    let count = 0;
    for (const [id, s] of this.open) {
      if (now - s.touched > this.ttlMs) {
        this.remove(id, 'expired (idle too long)');
        count++;
      }
    }
    if (count) this.log(`expired ${count} idle session(s); ${this.open.size} open`);
    return count;
  }
}

// --- page tokens --------------------------------------------------------------------------------
// Opaque to clients: the offset and the filters it was issued for, so a token only continues the
// listing it came from.

function encodeToken(offset, filters) {
  return 'p1.' + Buffer.from(JSON.stringify({ o: offset, f: filters }), 'utf8').toString('base64url');
}

function decodeToken(token, filters, total) {
  const bad = () => invalid(`page_token ${echo(token)} was not issued by this server ` +
    'for these filters; start again with an empty page_token');
  if (!token.startsWith('p1.')) throw bad();
  let parsed;
  try {
    parsed = JSON.parse(Buffer.from(token.slice(3), 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (!parsed || !Number.isInteger(parsed.o) || parsed.o < 0 || parsed.o > total ||
      JSON.stringify(parsed.f) !== JSON.stringify(filters)) throw bad();
  return parsed.o;
}

// --- the service --------------------------------------------------------------------------------

class EnvService {
  constructor(env, limits = {}, log = (msg) => console.error(msg)) {
    this.env = env;
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.log = log;
    this.description = env.describe();
    this.sessions = new SessionStore(this.limits.maxSessions, this.limits.sessionTtlSeconds, log);
    this.info = this.buildInfo();
  }

  buildInfo() {
    const d = this.description;
    const counts = new Map();
    for (const t of this.env.tasks) {
      const key = JSON.stringify([t.split, t.difficulty, t.category]);
      counts.set(key, (counts.get(key) || 0) + 1);
    }
    return {
      name: d.name,
      env_version: d.version,
      protocol_version: PROTOCOL_VERSION,
      description: d.description,
      instruction: d.instruction,
      action_grammar: d.actionGrammar,
      features: {
        provides_valid_actions: d.providesValidActions,
        provides_expert: d.providesExpert,
        default_max_turns: d.defaultMaxTurns,
        max_turns_limit: d.maxTurnsLimit,
        reward_min: d.rewardMin,
        reward_max: d.rewardMax,
        max_action_bytes: this.limits.maxActionBytes,
        max_sessions: this.limits.maxSessions,
        session_ttl_seconds: this.limits.sessionTtlSeconds,
      },
      catalogue: {
        splits: d.splits,
        difficulties: d.difficulties,
        categories: d.categories,
        counts: [...counts].map(([key, count]) => {
          const [split, difficulty, category] = JSON.parse(key);
          return { split, difficulty, category, count: String(count) };
        }),
      },
    };
  }

  getInfo() {
    return this.info;
  }

  filter(split, difficulty, category) {
    return this.env.tasks.filter((t) => (!split || t.split === split) &&
      (!difficulty || t.difficulty === difficulty) && (!category || t.category === category));
  }

  listTasks(req) {
    const filters = [req.split, req.difficulty, req.category];
    const tasks = this.filter(...filters);
    const size = Math.min(req.page_size || this.limits.maxPageSize, this.limits.maxPageSize);
    const start = req.page_token ? decodeToken(req.page_token, filters, tasks.length) : 0;
    const end = Math.min(start + size, tasks.length);
    return {
      tasks: tasks.slice(start, end),
      next_page_token: end < tasks.length ? encodeToken(end, filters) : '',
      total_size: String(tasks.length),
    };
  }

  resolveTask(req) {
    if (req.target === 'task_id') {
      const task = this.env.task(req.task_id);
      if (!task) throw invalid(`unknown task id ${echo(req.task_id)}; see ListTasks`);
      return task;
    }
    if (req.target === 'sample') {
      const s = req.sample;
      const matching = this.filter(s.split, s.difficulty, s.category);
      if (!matching.length) {
        throw invalid(`no task matches split=${echo(s.split)} difficulty=${echo(s.difficulty)} ` +
          `category=${echo(s.category)}; see GetInfo's catalogue`);
      }
      return matching[Number(splitmix64(s.seed || '0') % BigInt(matching.length))];
    }
    throw invalid('Reset needs a target: task_id or sample');
  }

  // -> {session, response}. `owner` marks a session owned by a Session stream (for logs).
  reset(req, owner = null) {
    const d = this.description;
    const options = req.options || {};
    const task = this.resolveTask(req);
    const maxTurns = options.max_turns || d.defaultMaxTurns;
    if (maxTurns > d.maxTurnsLimit) {
      throw invalid(`max_turns ${maxTurns} exceeds this environment's max_turns_limit ${d.maxTurnsLimit}`);
    }
    if (options.include_valid_actions && !d.providesValidActions) {
      throw invalid(`${d.name} does not provide valid actions`);
    }
    this.sessions.ensureCapacity(); // before the environment does any work
    const session = {
      id: crypto.randomUUID(), task, maxTurns, owner,
      includeValidActions: Boolean(options.include_valid_actions),
      turn: 0, done: false, lastReply: null, touched: Date.now(), episode: null,
    };
    const firstText = this.guard(session, () => {
      session.episode = this.env.start(task);
      return session.episode.reset();
    });
    this.sessions.add(session);
    const observation = this.observation(session, {
      text: firstText, reward: 0, terminated: false, truncated: false, success: false,
      action_valid: true, parsed_action: '',
    });
    return { session, response: { session_id: session.id, task, observation } };
  }

  observation(session, fields) {
    const obs = { ...fields, turn: session.turn, valid_actions: [], valid_actions_included: false };
    obs.state_key = this.guard(session, () => session.episode.stateKey());
    if (session.includeValidActions && !session.done) {
      obs.valid_actions = this.guard(session, () => session.episode.validActions()) || [];
      obs.valid_actions_included = true;
    }
    const stats = this.guard(session, () => session.episode.stats());
    obs.info = toStruct({ ...stats, max_turns: session.maxTurns });
    return obs;
  }

  step(req) {
    const session = this.sessions.get(req.session_id);
    const bytes = Buffer.byteLength(req.action, 'utf8');
    if (bytes > this.limits.maxActionBytes) {
      throw invalid(`action is ${bytes} bytes; this server accepts at most ${this.limits.maxActionBytes}`);
    }
    // Node runs this handler to the end before any other request: steps on one session never interleave.
    if (req._step_index === 'step_index') {
      if (req.step_index === session.turn - 1 && session.lastReply) return session.lastReply; // a retry
      if (req.step_index !== session.turn) {
        throw precondition(`step_index ${req.step_index} does not follow this session's ${session.turn} ` +
          `step(s): send ${session.turn} for the next step or ${session.turn - 1} to retry the last one`);
      }
    }
    if (session.done) {
      throw precondition(`the episode of session ${session.id} ended at turn ${session.turn}; Reset to play again`);
    }
    const out = this.guard(session, () => session.episode.step(req.action));
    session.turn += 1;
    const truncated = !out.terminated && session.turn >= session.maxTurns;
    session.done = out.terminated || truncated;
    const text = truncated ? `${out.text}\nThe turn limit of ${session.maxTurns} turns is reached: the episode is over.`
      : out.text;
    session.lastReply = {
      observation: this.observation(session, {
        text, reward: out.reward, terminated: out.terminated, truncated, success: out.success,
        action_valid: out.actionValid, parsed_action: out.parsedAction,
      }),
    };
    return session.lastReply;
  }

  validActions(req) {
    const session = this.sessions.get(req.session_id);
    if (!this.description.providesValidActions) return { provided: false, actions: [] };
    if (session.done) return { provided: true, actions: [] };
    const actions = this.guard(session, () => session.episode.validActions());
    return { provided: actions !== null, actions: actions || [] };
  }

  expertAction(req) {
    const session = this.sessions.get(req.session_id);
    if (!this.description.providesExpert || session.done) return { provided: false, action: '' };
    const action = this.guard(session, () => session.episode.expertAction());
    return { provided: Boolean(action), action: action || '' };
  }

  close(req) {
    return { was_open: this.sessions.remove(req.session_id, 'closed') };
  }

  // Environment code that throws is a bug in the environment: log it, drop that session, answer
  // INTERNAL, keep serving every other session.
  guard(session, fn) {
    try {
      return fn();
    } catch (err) {
      this.log(`environment error in session ${session.id} (task ${session.task.id}): ${err && err.stack}`);
      this.sessions.remove(session.id, 'dropped after an environment error');
      throw new GymError(Code.INTERNAL, `environment error (${err && err.message}); session ${session.id} was dropped`);
    }
  }
}

// --- gRPC handlers ------------------------------------------------------------------------------

// `ready(isReset)` returns the EnvService or throws UNAVAILABLE (while loading; for Resets also while
// draining); `authorize(metadata)` throws UNAUTHENTICATED.
function handlers(ready, authorize, log) {
  const unary = (fn, isReset = false) => (call, callback) => {
    try {
      authorize(call.metadata);
      callback(null, fn(ready(isReset), call.request));
    } catch (err) {
      if (err instanceof GymError) {
        callback({ code: err.code, details: err.message });
      } else {
        log(`unexpected server error: ${err && err.stack}`);
        callback({ code: Code.INTERNAL, details: `server error: ${err && err.message}` });
      }
    }
  };

  // One stream, one session: a Reset starts (or restarts) the stream's episode, an empty session_id
  // means the stream's session, errors come back in-band, and the session is closed when the stream ends.
  function session(call) {
    let owned = null;
    let ended = false;
    const release = (why) => {
      if (ended) return;
      ended = true;
      if (owned) {
        try {
          ready().sessions.remove(owned, `closed when its Session stream ${why}`);
        } catch {
          // shutting down: nothing to free
        }
        owned = null;
      }
    };
    let authError = null;
    try {
      authorize(call.metadata);
    } catch (err) {
      authError = err;
    }
    call.on('data', (req) => {
      let reply;
      try {
        if (authError) throw authError;
        const op = req.op;
        const service = ready(op === 'reset');
        if (op === 'reset') {
          if (owned) service.sessions.remove(owned, 'closed by a new Reset on its stream');
          owned = null;
          const { session: s, response } = service.reset(req.reset, 'stream');
          owned = s.id;
          reply = { reset: response };
        } else if (op === 'step' || op === 'valid_actions' || op === 'expert_action' || op === 'close') {
          const inner = { ...req[op] };
          if (!inner.session_id) {
            if (!owned) throw notFound('no episode on this stream yet; send a Reset first');
            inner.session_id = owned;
          }
          if (op === 'step') reply = { step: service.step(inner) };
          else if (op === 'valid_actions') reply = { valid_actions: service.validActions(inner) };
          else if (op === 'expert_action') reply = { expert_action: service.expertAction(inner) };
          else {
            reply = { close: service.close(inner) };
            if (inner.session_id === owned) owned = null;
          }
        } else {
          throw invalid('SessionRequest has no operation set');
        }
      } catch (err) {
        if (!(err instanceof GymError)) log(`unexpected server error on a stream: ${err && err.stack}`);
        const code = err instanceof GymError ? err.code : Code.INTERNAL;
        reply = { error: { code, message: err.message || String(err) } };
      }
      call.write(reply);
    });
    call.on('end', () => {
      release('ended');
      call.end();
    });
    call.on('cancelled', () => release('was cancelled'));
    call.on('error', () => release('failed'));
    call.on('close', () => release('closed'));
  }

  return {
    GetInfo: unary((s) => s.getInfo()),
    ListTasks: unary((s, r) => s.listTasks(r)),
    Reset: unary((s, r) => s.reset(r).response, true),
    Step: unary((s, r) => s.step(r)),
    ValidActions: unary((s, r) => s.validActions(r)),
    ExpertAction: unary((s, r) => s.expertAction(r)),
    Close: unary((s, r) => s.close(r)),
    Session: session,
  };
}

module.exports = { EnvService, GymError, handlers, DEFAULT_LIMITS, PROTOCOL_VERSION };
