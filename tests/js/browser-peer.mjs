// A LiveKit participant on livekit-client running in headless Chromium, driven by JSON lines.
//
// Usage: node browser-peer.mjs <ws-url> <token> [--v0]
//
// Speaks the same line protocol as rtc-node-peer.mjs (see there). This driver serves
// browser/peer.html and livekit-client's UMD bundle (unchanged, from node_modules) on an
// ephemeral 127.0.0.1 port, opens the page in the Debian chromium binary through playwright-core
// (playwright cannot download browsers here), relays page events to stdout and stdin commands
// to the page. Set CHROMIUM to use another binary, CHROMIUM_EXTRA_FLAGS to add flags.
import { createServer } from 'node:http';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const [url, token, flag] = process.argv.slice(2);
// --v0: RoomOptions.singlePeerConnection=false, the two-PeerConnection /rtc path (default: v1).
const roomOptions = flag === '--v0' ? { singlePeerConnection: false } : {};
if (!url || !token) {
  process.stderr.write('usage: node browser-peer.mjs <ws-url> <token>\n');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const umdPath = join(dirname(require.resolve('livekit-client')), 'livekit-client.umd.js');

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const files = {
  '/': { path: join(here, 'browser', 'peer.html'), type: 'text/html; charset=utf-8' },
  '/livekit-client.umd.js': { path: umdPath, type: 'text/javascript; charset=utf-8' },
};
const http = createServer(async (req, res) => {
  const file = files[new URL(req.url, 'http://x').pathname];
  if (!file) {
    res.writeHead(404).end('not found');
    return;
  }
  res.writeHead(200, { 'content-type': file.type }).end(await readFile(file.path));
});
await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve));
const pageUrl = `http://127.0.0.1:${http.address().port}/`;

const profile = await mkdtemp(join(tmpdir(), 'roomtone-chromium-'));
// A persistent context is playwright's way to give Chromium a fresh --user-data-dir of our own.
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    // Extra flags for special setups, e.g. --disable-features=WebRtcHideLocalIpsWithMdns.
    ...(process.env.CHROMIUM_EXTRA_FLAGS || '').split(' ').filter(Boolean),
  ],
});

let closing = false;
async function shutdown(code) {
  if (closing) return;
  closing = true;
  try {
    await context.close();
  } catch {
    // already gone
  }
  http.close();
  await rm(profile, { recursive: true, force: true });
  process.exit(code);
}
process.on('SIGTERM', () => shutdown(143));
process.on('SIGINT', () => shutdown(130));

const page = context.pages()[0] || (await context.newPage());
page.on('console', (msg) => {
  if (msg.type() === 'error' || msg.type() === 'warning') {
    process.stderr.write(`[page ${msg.type()}] ${msg.text()}\n`);
  }
});
page.on('pageerror', (err) => emit({ event: 'error', message: `page: ${err.message}` }));
await page.exposeFunction('peerEmit', (line) => process.stdout.write(line + '\n'));
await page.goto(pageUrl);
const ok = await page.evaluate(([u, t, o]) => window.peerConnect(u, t, o), [url, token, roomOptions]);
if (!ok) await shutdown(1);

let chain = Promise.resolve();
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  chain = chain.then(async () => {
    if (!line.trim()) return;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch {
      emit({ event: 'error', message: `bad command line: ${line}` });
      return;
    }
    await page.evaluate((c) => window.peerCommand(c), cmd);
    if (cmd.cmd === 'leave') await shutdown(0);
  }).catch((err) => emit({ event: 'error', message: String(err) }));
});
rl.on('close', () => {
  chain
    .then(() => page.evaluate(() => window.peerCommand({ cmd: 'leave' })))
    .catch(() => {})
    .then(() => shutdown(0));
});
