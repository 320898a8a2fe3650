// Preloaded into the embedded server (`node --require watchdog.js`) by tor-async-couchdb.
//
// The Python process that starts the server holds the only write end of a pipe that is the
// server's stdin. However that process ends (an exit, an exception, SIGKILL, the OOM killer), the
// kernel closes its end and stdin reads end-of-file: the server then exits instead of living on
// as an orphan that holds a port and a temporary folder. Linux's PR_SET_PDEATHSIG is not enough:
// it fires when the *thread* that spawned the child ends, so it cannot be armed for servers
// started from a worker thread (as `async with DevServer()` does), and it is Linux-only.
'use strict';

function parentGone() {
  process.exit(0);
}

process.stdin.on('end', parentGone);
process.stdin.on('close', parentGone);
process.stdin.on('error', parentGone);
process.stdin.resume();
