// A LiveKit participant on the official Node SDK (@livekit/rtc-node), driven by JSON lines.
//
// Usage: node rtc-node-peer.mjs <ws-url> <token>
//
// The same line protocol is spoken by every SDK peer the roomtone tests drive (Python, Node,
// browser, Go), so one Python harness can pair any two of them:
//   stdout events: {"event":"connected","identity","room","remote":[...]},
//                  {"event":"participant_connected","identity"},
//                  {"event":"participant_disconnected","identity"},
//                  {"event":"dtmf","code","digit","from"}, {"event":"sent","count"},
//                  {"event":"error","message"}, {"event":"disconnected","reason"}
//   stdin commands: {"cmd":"dtmf","tones":[[code,digit],...]}, {"cmd":"leave"}
// The process leaves the room and exits when told to leave or when stdin closes.
import { createInterface } from 'node:readline';
import { Room, RoomEvent, dispose } from '@livekit/rtc-node';

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  process.stderr.write('usage: node rtc-node-peer.mjs <ws-url> <token>\n');
  process.exit(2);
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const room = new Room();
room.on(RoomEvent.ParticipantConnected, (p) => emit({ event: 'participant_connected', identity: p.identity }));
room.on(RoomEvent.ParticipantDisconnected, (p) =>
  emit({ event: 'participant_disconnected', identity: p.identity }),
);
// The seed's receive API: (code, digit, participant).
room.on(RoomEvent.DtmfReceived, (code, digit, participant) =>
  emit({ event: 'dtmf', code, digit, from: participant ? participant.identity : null }),
);
room.on(RoomEvent.Disconnected, (reason) => emit({ event: 'disconnected', reason: String(reason) }));

let leaving = false;
async function leave(code) {
  if (leaving) return;
  leaving = true;
  try {
    await room.disconnect();
  } catch (err) {
    emit({ event: 'error', message: `disconnect: ${err}` });
  }
  await dispose();
  process.exit(code);
}

try {
  await room.connect(url, token, { autoSubscribe: true, dynacast: false });
} catch (err) {
  emit({ event: 'error', message: `connect: ${err && err.message ? err.message : err}` });
  await dispose();
  process.exit(1);
}
emit({
  event: 'connected',
  identity: room.localParticipant.identity,
  room: room.name,
  remote: [...room.remoteParticipants.values()].map((p) => p.identity),
});

// Commands run strictly one after another so tones keep their order.
let chain = Promise.resolve();
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  chain = chain.then(async () => {
    if (!line.trim()) return;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (err) {
      emit({ event: 'error', message: `bad command line: ${line}` });
      return;
    }
    if (cmd.cmd === 'dtmf') {
      let count = 0;
      for (const [code, digit] of cmd.tones) {
        // The seed's send API.
        await room.localParticipant.publishDtmf(code, digit);
        count += 1;
      }
      emit({ event: 'sent', count });
    } else if (cmd.cmd === 'leave') {
      await leave(0);
    } else {
      emit({ event: 'error', message: `unknown command: ${cmd.cmd}` });
    }
  }).catch((err) => emit({ event: 'error', message: String(err) }));
});
rl.on('close', () => {
  chain.then(() => leave(0));
});
