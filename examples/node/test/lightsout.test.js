'use strict';
// Unit tests of the Lights Out environment (no gRPC): `npm test`.

const test = require('node:test');
const assert = require('node:assert/strict');
const { LightsOut, Solver, extractAction, parsePress, splitmix64 } = require('../lib/lightsout');

const env = new LightsOut();

test('the catalogue is stable, unique and shaped as described', () => {
  assert.equal(env.tasks.length, 1000);
  assert.equal(new Set(env.tasks.map((t) => t.id)).size, env.tasks.length);
  assert.deepEqual(new LightsOut().tasks, env.tasks); // deterministic, metadata included
  const d = env.describe();
  for (const t of env.tasks) {
    assert.ok(d.splits.includes(t.split) && d.difficulties.includes(t.difficulty) && d.categories.includes(t.category));
  }
  assert.equal(env.tasks[0].id, 'train-easy-plus-0000');
});

test('the same task id gives the same board', () => {
  const task = env.task('test-hard-torus-0007');
  assert.equal(env.start(task).reset(), env.start(task).reset());
  assert.notEqual(env.start(task).reset(), env.start(env.task('test-hard-torus-0008')).reset());
});

test('the parser reads the text after the last "Action:"', () => {
  assert.equal(extractAction('Thought: Action: press 1 1 is tempting.\nAction: press 2 3'), 'press 2 3');
  assert.equal(extractAction('action:   **Press (2, 3).**\nmore text'), 'press (2, 3)');
  assert.equal(extractAction('press 1 2'), 'press 1 2');
  assert.equal(extractAction(''), '');
  assert.deepEqual(parsePress('press (2, 3)', 3), { row: 2, col: 3 });
  assert.deepEqual(parsePress('press 2,3', 3), { row: 2, col: 3 });
  assert.ok(parsePress('press 4 1', 3).error);
  assert.ok(parsePress('toggle 1 1', 3).error);
  assert.ok(parsePress('', 3).error);
});

test('invalid actions leave the board and count as no press', () => {
  const e = env.start(env.tasks[0]);
  const before = e.reset();
  const out = e.step('xyzzy \ufffd\ufffd(');
  assert.equal(out.actionValid, false);
  assert.ok(out.text.startsWith('Invalid action'));
  assert.equal(e.presses, 0);
  assert.ok(before.endsWith(e.status()));
});

test('the state key is the board, whatever the presses that made it', () => {
  const play = (...turns) => {
    const e = env.start(env.task('test-hard-torus-0007'));
    e.reset();
    return [e.stateKey(), ...turns.map((turn) => (e.step(turn), e.stateKey()))];
  };
  const one = play('press 1 1', 'press 2 2', 'nonsense', 'press 2 2');
  const other = play('press 2 2', 'press 1 1');
  assert.equal(one[2], other[2]); // presses commute: the same board
  assert.equal(one[2], one[3]); // an invalid turn changes nothing
  assert.equal(one[4], one[1]); // pressing a light twice undoes it
  assert.equal(new Set([one[0], one[1], one[2], other[1]]).size, 4);
});

test('the solver finds a shortest solution on every board shape', () => {
  for (const [n, wrap] of [[3, false], [3, true], [5, false], [5, true]]) {
    const s = new Solver(n, wrap);
    // every null-space vector really changes nothing
    for (const x of s.nullspace) {
      let board = 0;
      for (let i = 0; i < n * n; i++) if (x & (1 << i)) board ^= s.presses[i];
      assert.equal(board >>> 0, 0);
    }
    // a single press is solved by one press
    const one = s.solve(s.presses[n + 1]);
    assert.equal(one, 1 << (n + 1));
  }
});

test('the expert solves every task in exactly its shortest_solution presses', () => {
  for (const task of env.tasks) {
    const e = env.start(task);
    let turns = 0;
    for (;;) {
      const action = e.expertAction();
      assert.ok(action, `no expert move in ${task.id}`);
      const out = e.step(action);
      assert.equal(out.actionValid, true);
      turns++;
      if (out.terminated) {
        assert.ok(out.success && out.reward === 1);
        break;
      }
      assert.ok(turns <= 25, `expert loops on ${task.id}`);
    }
    assert.equal(String(turns), task.metadata.shortest_solution, task.id);
  }
});

test('splitmix64 is the standard one', () => {
  // First output of splitmix64 seeded with 0 (reference value of the published algorithm).
  assert.equal(splitmix64('0'), 0xe220a8397b1dcdafn);
});
