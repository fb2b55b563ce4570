'use strict';
// Lights Out: the example environment of this Node.js server.
//
// A board of n x n lights, some on. Pressing a light toggles it and its up/down/left/right
// neighbours; the goal is to switch every light off. Two tiers (easy 3x3, hard 5x5) and two
// categories ("plus": edges stop the cross; "torus": the cross wraps around the edges).
//
// This file knows nothing about gRPC. It exposes the small interface that lib/service.js drives:
//   describe()          -> static facts (name, version, prompt, grammar, turn limits, reward range)
//   tasks               -> the catalogue: [{id, split, difficulty, category, metadata}], stable order
//   start(task)         -> an Episode with reset(), step(rawTurn), validActions(), expertAction(), stateKey(),
//                          stats()
// Everything is deterministic in the task id: the same id gives the same board on any machine.

const crypto = require('crypto');

const NAME = 'lightsout';
const VERSION = '1.0.0';
const SIZES = { easy: 3, hard: 5 };
const SCRAMBLE = { easy: [2, 4], hard: [5, 9] }; // presses used to scramble a solved board (inclusive)
const CATEGORIES = { plus: false, torus: true }; // category -> edges wrap?
const TASKS_PER_CELL = { train: 200, test: 50 }; // per (difficulty, category)

const INSTRUCTION = `You are playing Lights Out. The board is a square grid of lights; "#" is a light that is on and "." one that is off. Rows are numbered from the top and columns from the left, starting at 1.
Pressing a light toggles it and its up, down, left and right neighbours (on "torus" boards the neighbours wrap around the edges). Your goal is to switch every light off in as few presses as you can.
Each turn, think briefly, then end your reply with exactly one action on its own line:
Thought: <your reasoning>
Action: press <row> <col>
Only the text after the last "Action:" is read, and only its first line. A turn without a well-formed action wastes the turn and leaves the board unchanged.`;

const ACTION_GRAMMAR = 'press <row> <col>   (1-based; "press 2 3", "press 2,3" and "press (2, 3)" are the same action)';

// --- deterministic randomness ----------------------------------------------------------------

// A 32-bit seed from any string: the first 4 bytes of its SHA-256 (same on every platform).
function seedOf(text) {
  return crypto.createHash('sha256').update(text, 'utf8').digest().readUInt32LE(0);
}

// mulberry32: a tiny, well-known 32-bit PRNG; returns floats in [0, 1).
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// splitmix64 over BigInt: maps a uint64 seed (decimal string) to a well-mixed uint64.
function splitmix64(seed) {
  const M = (1n << 64n) - 1n;
  let z = (BigInt(seed) + 0x9e3779b97f4a7c15n) & M;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
  return z ^ (z >> 31n);
}

// --- the board and its solver ------------------------------------------------------------------
// A board is a bit mask: bit (r * n + c) is the light at row r, column c (0-based).

function pressMask(n, wrap, r, c) {
  let mask = 1 << (r * n + c);
  for (const [dr, dc] of [[-1, 0], [1, 0], [0, -1], [0, 1]]) {
    let rr = r + dr;
    let cc = c + dc;
    if (wrap) {
      rr = (rr + n) % n;
      cc = (cc + n) % n;
    } else if (rr < 0 || rr >= n || cc < 0 || cc >= n) {
      continue;
    }
    mask |= 1 << (rr * n + cc);
  }
  return mask >>> 0;
}

function popcount(x) {
  let count = 0;
  for (let v = x >>> 0; v; v &= v - 1) count++;
  return count;
}

// Precomputed per (n, wrap): the press masks, and a GF(2) elimination that solves any board.
class Solver {
  constructor(n, wrap) {
    this.n = n;
    this.wrap = wrap;
    const cells = n * n;
    this.presses = [];
    for (let i = 0; i < cells; i++) this.presses.push(pressMask(n, wrap, Math.floor(i / n), i % n));
    // Rows of the augmented system A x = b, as (coefficient mask over presses, row mask of the identity
    // that records which board bits were combined). Eliminating once lets every board be solved fast.
    const rows = [];
    for (let cell = 0; cell < cells; cell++) {
      let coeff = 0;
      for (let p = 0; p < cells; p++) if (this.presses[p] & (1 << cell)) coeff |= 1 << p;
      rows.push({ coeff: coeff >>> 0, combo: (1 << cell) >>> 0 });
    }
    const pivotCols = [];
    let rank = 0;
    for (let col = 0; col < cells; col++) {
      const at = rows.findIndex((row, i) => i >= rank && row.coeff & (1 << col));
      if (at < 0) continue;
      [rows[rank], rows[at]] = [rows[at], rows[rank]];
      for (let i = 0; i < rows.length; i++) {
        if (i !== rank && rows[i].coeff & (1 << col)) {
          rows[i].coeff = (rows[i].coeff ^ rows[rank].coeff) >>> 0;
          rows[i].combo = (rows[i].combo ^ rows[rank].combo) >>> 0;
        }
      }
      pivotCols.push(col);
      rank++;
    }
    // Reduced row echelon form: pivot row i has pivotCols[i] and, besides it, free columns only.
    this.pivots = pivotCols.map((col, i) => ({ col, coeff: rows[i].coeff, combo: rows[i].combo }));
    this.consistency = rows.slice(rank).map((row) => row.combo); // boards with odd parity here are unsolvable
    const isPivot = new Set(pivotCols);
    this.nullspace = []; // press sets that change nothing (pressing them all leaves the board as it was)
    for (let free = 0; free < cells; free++) {
      if (isPivot.has(free)) continue;
      let x = (1 << free) >>> 0;
      for (const p of this.pivots) if (p.coeff & (1 << free)) x = (x | (1 << p.col)) >>> 0;
      this.nullspace.push(x);
    }
  }

  // The shortest set of presses (a bit mask over cells) that switches `board` off, or null.
  solve(board) {
    if (this.consistency.some((combo) => popcount(combo & board) % 2 === 1)) return null;
    let x = 0;
    for (const p of this.pivots) if (popcount(p.combo & board) % 2 === 1) x = (x | (1 << p.col)) >>> 0;
    let best = x;
    const k = this.nullspace.length; // at most 8 for the boards used here: 256 candidates
    for (let m = 1; m < 1 << k; m++) {
      let y = x;
      for (let j = 0; j < k; j++) if (m & (1 << j)) y = (y ^ this.nullspace[j]) >>> 0;
      if (popcount(y) < popcount(best) || (popcount(y) === popcount(best) && y < best)) best = y;
    }
    return best >>> 0;
  }
}

const solvers = new Map();
function solverFor(n, wrap) {
  const key = `${n}:${wrap}`;
  if (!solvers.has(key)) solvers.set(key, new Solver(n, wrap));
  return solvers.get(key);
}

// The starting board of a task: a solved board scrambled by random presses, never already solved.
function boardOf(taskId, n, wrap, [lo, hi]) {
  const random = rng(seedOf(`${NAME}/${VERSION}/${taskId}`));
  const solver = solverFor(n, wrap);
  for (;;) {
    const count = lo + Math.floor(random() * (hi - lo + 1));
    const cells = [...Array(n * n).keys()];
    let board = 0;
    for (let i = 0; i < count; i++) {
      const j = i + Math.floor(random() * (cells.length - i));
      [cells[i], cells[j]] = [cells[j], cells[i]];
      board = (board ^ solver.presses[cells[i]]) >>> 0;
    }
    if (board !== 0) return board;
  }
}

function render(board, n) {
  const header = '    ' + [...Array(n).keys()].map((c) => String(c + 1)).join(' ');
  const lines = [header];
  for (let r = 0; r < n; r++) {
    let line = `${String(r + 1).padStart(2)}  `;
    for (let c = 0; c < n; c++) line += (board & (1 << (r * n + c)) ? '#' : '.') + (c < n - 1 ? ' ' : '');
    lines.push(line);
  }
  return lines.join('\n');
}

// --- the action parser ------------------------------------------------------------------------

// The action inside a raw agent turn: the text after the LAST "Action:" (case-insensitive), or the
// whole turn when it has none; then its first non-empty line, without surrounding quotes, backticks,
// asterisks or a final period, lower-cased with single spaces.
function extractAction(raw) {
  let text = String(raw);
  const marker = /action\s*:/gi;
  let last = -1;
  for (let m = marker.exec(text); m; m = marker.exec(text)) last = m.index + m[0].length;
  if (last >= 0) text = text.slice(last);
  const line = text.split(/\r?\n/).map((l) => l.trim()).find((l) => l.length > 0) || '';
  return line
    .replace(/^[`"'*\s]+|[`"'*\s]+$/g, '')
    .replace(/\.$/, '')
    .replace(/\s+/g, ' ')
    .toLowerCase();
}

const PRESS = /^press\s*\(?\s*(\d{1,3})\s*(?:,\s*|\s+)(\d{1,3})\s*\)?$/;

// -> {row, col} (1-based) | {error}
function parsePress(action, n) {
  if (!action) return { error: 'no action found in your turn' };
  const m = PRESS.exec(action);
  if (!m) return { error: `"${action.slice(0, 80)}" is not an action of the form "press <row> <col>"` };
  const row = Number(m[1]);
  const col = Number(m[2]);
  if (row < 1 || row > n || col < 1 || col > n) {
    return { row, col, error: `there is no light at row ${row}, column ${col}; rows and columns go from 1 to ${n}` };
  }
  return { row, col };
}

// --- episodes -----------------------------------------------------------------------------------

class Episode {
  constructor(task) {
    this.task = task;
    this.n = SIZES[task.difficulty];
    this.wrap = CATEGORIES[task.category];
    this.solver = solverFor(this.n, this.wrap);
    this.board = boardOf(task.id, this.n, this.wrap, SCRAMBLE[task.difficulty]);
    this.presses = 0;
  }

  lit() {
    return popcount(this.board);
  }

  status() {
    return `${render(this.board, this.n)}\nLights on: ${this.lit()} of ${this.n * this.n}.`;
  }

  reset() {
    const edges = this.wrap ? 'the cross wraps around the edges' : 'edges do not wrap';
    return `Lights Out, ${this.n}x${this.n} board (${edges}). Switch every light off.\n${this.status()}`;
  }

  // One agent turn -> {text, reward, terminated, success, actionValid, parsedAction}
  step(rawTurn) {
    const action = extractAction(rawTurn);
    const press = parsePress(action, this.n);
    if (press.error) {
      return {
        text: `Invalid action: ${press.error}. Answer with "Action: press <row> <col>" (1 to ${this.n}). ` +
          `The board is unchanged.\n${this.status()}`,
        reward: 0, terminated: false, success: false, actionValid: false,
        parsedAction: press.row ? `press ${press.row} ${press.col}` : action.slice(0, 200),
      };
    }
    const parsedAction = `press ${press.row} ${press.col}`;
    const mask = this.solver.presses[(press.row - 1) * this.n + (press.col - 1)];
    this.board = (this.board ^ mask) >>> 0;
    this.presses++;
    if (this.board === 0) {
      return {
        text: `You pressed row ${press.row}, column ${press.col}. All lights are off: solved in ${this.presses} ` +
          `press${this.presses === 1 ? '' : 'es'}!\n${render(this.board, this.n)}`,
        reward: 1, terminated: true, success: true, actionValid: true, parsedAction,
      };
    }
    return {
      text: `You pressed row ${press.row}, column ${press.col}; ${popcount(mask)} lights toggled.\n${this.status()}`,
      reward: 0, terminated: false, success: false, actionValid: true, parsedAction,
    };
  }

  // Every light can be pressed at any time.
  validActions() {
    const out = [];
    for (let r = 1; r <= this.n; r++) for (let c = 1; c <= this.n; c++) out.push(`press ${r} ${c}`);
    return out;
  }

  // The first press of a shortest solution from the current board, as a full turn.
  expertAction() {
    const plan = this.solver.solve(this.board);
    if (plan === null || plan === 0) return null;
    const cell = Math.log2(plan & -plan);
    const row = Math.floor(cell / this.n) + 1;
    const col = (cell % this.n) + 1;
    const left = popcount(plan);
    return `Thought: a shortest solution needs ${left} more press${left === 1 ? '' : 'es'}; ` +
      `one of them is row ${row}, column ${col}.\nAction: press ${row} ${col}`;
  }

  // Observation.state_key: the board is the whole state. The press count stays out: it counts the path
  // (equal boards reached in more presses are the same state), as the turn does.
  stateKey() {
    return `board ${this.board.toString(16)}`;
  }

  // Extras for Observation.info.
  stats() {
    return { lights_on: this.lit(), presses: this.presses, size: this.n, wrap: this.wrap };
  }
}

// --- the environment --------------------------------------------------------------------------

function buildTasks() {
  const tasks = [];
  for (const split of Object.keys(TASKS_PER_CELL)) {
    for (const difficulty of Object.keys(SIZES)) {
      for (const category of Object.keys(CATEGORIES)) {
        for (let i = 0; i < TASKS_PER_CELL[split]; i++) {
          const id = `${split}-${difficulty}-${category}-${String(i).padStart(4, '0')}`;
          const n = SIZES[difficulty];
          const wrap = CATEGORIES[category];
          const board = boardOf(id, n, wrap, SCRAMBLE[difficulty]);
          const shortest = popcount(solverFor(n, wrap).solve(board));
          tasks.push({
            id, split, difficulty, category,
            metadata: { size: `${n}x${n}`, wrap: String(wrap), lights_on: String(popcount(board)),
              shortest_solution: String(shortest) },
          });
        }
      }
    }
  }
  return tasks;
}

class LightsOut {
  constructor() {
    this.tasks = buildTasks();
    this.byId = new Map(this.tasks.map((t) => [t.id, t]));
  }

  describe() {
    return {
      name: NAME,
      version: VERSION,
      description: 'Lights Out on 3x3 (easy) and 5x5 (hard) boards, with plain or wrap-around (torus) edges. ' +
        'Pressing a light toggles it and its four neighbours; switch all lights off. A Node.js example of a ' +
        'gymwire.v1 server written from the .proto files alone.',
      instruction: INSTRUCTION,
      actionGrammar: ACTION_GRAMMAR,
      providesValidActions: true,
      providesExpert: true,
      defaultMaxTurns: 40,
      maxTurnsLimit: 200,
      rewardMin: 0,
      rewardMax: 1,
      splits: Object.keys(TASKS_PER_CELL),
      difficulties: Object.keys(SIZES),
      categories: Object.keys(CATEGORIES),
    };
  }

  task(id) {
    return this.byId.get(id);
  }

  start(task) {
    return new Episode(task);
  }
}

module.exports = { LightsOut, Episode, Solver, extractAction, parsePress, splitmix64, seedOf };
