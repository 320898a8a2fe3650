#!/usr/bin/env node
// Post-install fixes for pouchdb-server 4.2.0 and express-pouchdb 4.2.0, its HTTP layer.
//
// Each fix replaces one exact piece of upstream code. The script is idempotent: a piece already
// replaced is left alone. If neither the upstream piece nor its replacement is found, the
// package is not the code these fixes were written for, and the script fails loudly rather
// than leave a server that crashes under the test suite.
'use strict';

const fs = require('fs');
const path = require('path');

const EXPECTED_VERSIONS = {'express-pouchdb': '4.2.0', 'pouchdb-server': '4.2.0'};
const modules = path.join(__dirname, 'node_modules');

const FIXES = [
  {
    // pouchdb/pouchdb-server#374: PUT /{db} by a non-admin once an admin exists makes
    // PouchDB.new() return a rejected promise instead of a database; calling db.info() on it
    // throws a TypeError that kills the process. Answer with the rejection's status (401).
    file: 'express-pouchdb/lib/routes/db.js',
    name: 'PUT /{db} by a non-admin answers 401 instead of crashing',
    before: `      var db = req.PouchDB.new(name, utils.makeOpts(req));
      db.info(function (err) {`,
    after: `      var db = req.PouchDB.new(name, utils.makeOpts(req));
      if (typeof db.info !== 'function') { // tor-async-couchdb fix
        return Promise.resolve(db).then(function () {
          utils.sendJSON(res, 500, {error: 'unknown_error', reason: 'no database object'});
        }, function (err) {
          utils.sendError(res, err, 401);
        });
      }
      db.info(function (err) {`,
  },
  {
    // Every create/delete is chained on one module-level promise; one rejected DELETE (a 401,
    // say) left the chain rejected for good, failing every later create/delete, and the
    // unhandled rejection killed the process. Keep the chain alive past a failed step.
    file: 'express-pouchdb/lib/create-or-delete-dbs.js',
    name: 'a failed database create/delete does not poison later ones',
    before: `  promiseChain = promiseChain.then(fun);
  return promiseChain;`,
    after: `  var result = promiseChain.then(fun); // tor-async-couchdb fix
  promiseChain = result.catch(function () {});
  return result;`,
  },
  {
    // setDBOnReq's promise chain had no rejection handler: a failing open or wrap became an
    // unhandled rejection (process exit) and the request hung. Answer with the error instead.
    file: 'express-pouchdb/lib/utils.js',
    name: 'setDBOnReq answers errors instead of leaving an unhandled rejection',
    before: `      dbWrapper.wrap(dbName, db).then(function () {
        req.db = db;
        next();
      });
    });`,
    after: `      return dbWrapper.wrap(dbName, db).then(function () {
        req.db = db;
        next();
      });
    }).catch(function (err) { // tor-async-couchdb fix
      if (!res.headersSent) {
        exports.sendError(res, err);
      }
    });`,
  },
  {
    // A failing normal-mode _changes (filter=_selector, a filter naming a missing design doc)
    // emitted 'error' on an EventEmitter with no listener: the process exited. The promise
    // side already answers the error; the listener only keeps the emitter from throwing.
    file: 'express-pouchdb/lib/routes/changes.js',
    name: 'a failing normal _changes answers an error instead of crashing',
    before: `      req.db.changes(req.query).then(function (response) {
        utils.sendJSON(res, 200, response);`,
    after: `      req.db.changes(req.query).on('error', function () {}).then(function (response) { // tor-async-couchdb fix
        utils.sendJSON(res, 200, response);`,
  },
  {
    // Same crash in the first (non-live) step of a longpoll feed.
    file: 'express-pouchdb/lib/routes/changes.js',
    name: 'a failing longpoll _changes answers an error instead of crashing',
    before: `        req.db.changes(req.query).then(function (complete) {`,
    after: `        req.db.changes(req.query).on('error', function () {}).then(function (complete) { // tor-async-couchdb fix`,
  },
  {
    // A continuous feed was never cancelled when the client went away: the feed and its
    // heartbeat timer kept running for ever (a leak per dropped connection).
    file: 'express-pouchdb/lib/routes/changes.js',
    name: 'a continuous _changes feed stops when its client disconnects',
    before: `        req.query.live = req.query.continuous = true;
        req.db.changes(req.query).on('change', function (change) {`,
    after: `        req.query.live = req.query.continuous = true;
        var feed = req.db.changes(req.query); // tor-async-couchdb fix
        res.on('close', function () {
          feed.cancel();
          cleanup();
        });
        feed.on('change', function (change) {`,
  },
  {
    // With -n (no log on stdout) a port already in use crashed the error handler itself
    // (stopTailingLog is only set when logging to stdout), hiding the real cause, which the
    // caller needs in order to retry on another port. Report it and exit.
    file: 'pouchdb-server/lib/index.js',
    name: 'a port already in use is reported, not hidden by a TypeError',
    before: `  server.on('error', function (e) {
    stopTailingLog();
    if (e.code === 'EADDRINUSE') {
      console.error('Error: Port ' + port + ' is already in use.');`,
    after: `  server.on('error', function (e) {
    if (stopTailingLog) { // tor-async-couchdb fix
      stopTailingLog();
    }
    process.exitCode = 98;
    setTimeout(function () { process.exit(98); }, 100).unref();
    if (e.code === 'EADDRINUSE') {
      console.error('Error: Port ' + port + ' is already in use (EADDRINUSE).');`,
  },
];

function fail(message) {
  console.error(`patch-express-pouchdb: ${message}`);
  console.error('The embedded server would crash under tests; refusing to continue.');
  process.exit(1);
}

function checkVersions() {
  for (const [name, expected] of Object.entries(EXPECTED_VERSIONS)) {
    const manifest = path.join(modules, name, 'package.json');
    if (!fs.existsSync(manifest)) {
      fail(`${name} is not installed in ${modules} (run: npm ci --prefix devserver)`);
    }
    const version = JSON.parse(fs.readFileSync(manifest, 'utf8')).version;
    if (version !== expected) {
      fail(`${name} is ${version}, these fixes are for ${expected}`);
    }
  }
}

function countOf(text, piece) {
  return text.split(piece).length - 1;
}

function applyFix(fix) {
  const file = path.join(modules, fix.file);
  const text = fs.readFileSync(file, 'utf8');
  if (countOf(text, fix.after) === 1) {
    return 'already applied';
  }
  const found = countOf(text, fix.before);
  if (found !== 1) {
    fail(`${fix.file}: expected the upstream code for "${fix.name}" once, found it ${found} times`);
  }
  fs.writeFileSync(file, text.replace(fix.before, () => fix.after));
  return 'applied';
}

checkVersions();
for (const fix of FIXES) {
  console.log(`patch-express-pouchdb: ${fix.name}: ${applyFix(fix)}`);
}
