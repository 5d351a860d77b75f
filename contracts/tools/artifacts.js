#!/usr/bin/env node
// Exports the compiled contracts that the Rust crate embeds into artifacts/, so that
// `cargo build` needs neither node nor forge.
//
//   node tools/artifacts.js write   refresh artifacts/ from out/ (after `forge build`)
//   node tools/artifacts.js check   exit 1 if artifacts/ differs from what `write` would produce
//
// Each artifact keeps only what the crate uses: the ABI and the creation and runtime bytecode.
'use strict';

const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const outDir = path.join(root, 'out');
const artifactsDir = path.join(root, 'artifacts');

// Our contracts, from forge's output.
const OWN = ['SessionKeyAccount', 'SessionKeyAccountFactory', 'GameItems', 'GameGold', 'SponsorPaymaster', 'Counter'];
// The canonical EntryPoint v0.8, from its npm package: these are the exact bytes that the
// CREATE2 deployer places at 0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108.
const ENTRY_POINT_PACKAGE = path.join(root, 'node_modules/@account-abstraction/contracts/artifacts');
const ENTRY_POINT = path.join(ENTRY_POINT_PACKAGE, 'EntryPoint.json');
// From the same package: the simulation contract the bundler JSON-RPC runs in place of the
// EntryPoint (through a state override, never deployed), and the v0.8 sample account and
// its factory, which the bundler's tests and benchmark send operations from.
const FROM_ENTRY_POINT_PACKAGE = ['EntryPointSimulations', 'SimpleAccount', 'SimpleAccountFactory'];

function hex(value) {
  const text = typeof value === 'string' ? value : value.object;
  return text.startsWith('0x') ? text : `0x${text}`;
}

function slim(artifact) {
  return {
    abi: artifact.abi,
    bytecode: hex(artifact.bytecode),
    deployedBytecode: hex(artifact.deployedBytecode),
  };
}

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read ${path.relative(root, file)} (run forge build first): ${error.message}`);
  }
}

function expected() {
  const files = new Map();
  for (const name of OWN) {
    files.set(`${name}.json`, slim(readJson(path.join(outDir, `${name}.sol`, `${name}.json`))));
  }
  files.set('EntryPoint.json', slim(readJson(ENTRY_POINT)));
  for (const name of FROM_ENTRY_POINT_PACKAGE) {
    files.set(`${name}.json`, slim(readJson(path.join(ENTRY_POINT_PACKAGE, `${name}.json`))));
  }
  const rendered = new Map();
  for (const [file, content] of files) rendered.set(file, `${JSON.stringify(content, null, 2)}\n`);
  return rendered;
}

function main(mode) {
  const files = expected();
  if (mode === 'write') {
    fs.mkdirSync(artifactsDir, { recursive: true });
    for (const [file, text] of files) fs.writeFileSync(path.join(artifactsDir, file), text);
    console.log(`wrote ${files.size} artifacts to ${path.relative(process.cwd(), artifactsDir) || '.'}`);
    return 0;
  }
  if (mode === 'check') {
    const stale = [];
    for (const [file, text] of files) {
      let current = null;
      try {
        current = fs.readFileSync(path.join(artifactsDir, file), 'utf8');
      } catch (_) {
        // missing counts as stale
      }
      if (current !== text) stale.push(file);
    }
    const extra = fs.existsSync(artifactsDir)
      ? fs.readdirSync(artifactsDir).filter((file) => !files.has(file))
      : [];
    if (stale.length || extra.length) {
      for (const file of stale) console.error(`artifact drift: contracts/artifacts/${file} does not match the sources`);
      for (const file of extra) console.error(`artifact drift: contracts/artifacts/${file} has no source`);
      console.error('run `make contracts` and commit contracts/artifacts/');
      return 1;
    }
    console.log(`artifacts match the sources (${files.size} files)`);
    return 0;
  }
  console.error('usage: node tools/artifacts.js write|check');
  return 2;
}

try {
  process.exit(main(process.argv[2]));
} catch (error) {
  console.error(error.message);
  process.exit(1);
}
