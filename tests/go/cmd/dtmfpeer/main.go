// Command dtmfpeer is a LiveKit participant on the official Go SDK (server-sdk-go/v2), driven
// by JSON lines, for roomtone's interop tests.
//
// Usage: dtmfpeer <ws-url> <token>
//
// It speaks the same line protocol as tests/js/rtc-node-peer.mjs:
//
//	stdout: {"event":"connected",...}, {"event":"participant_connected","identity"},
//	        {"event":"participant_disconnected","identity"}, {"event":"dtmf","code","digit","from"},
//	        {"event":"sent","count"}, {"event":"error","message"}, {"event":"disconnected","reason"}
//	stdin:  {"cmd":"dtmf","tones":[[code,digit],...],"lossy":false}, {"cmd":"leave"}
//
// DTMF is sent exactly as LiveKit's DTMF page shows, PublishDataPacket(&livekit.SipDTMF{...}),
// and received through OnDataPacket. PublishDataPacket defaults to the lossy channel; like the
// SDK's own PublishDTMF we ask for the reliable one, unless the command says "lossy": true, which
// makes exactly the seed's call with no options.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sync"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

var outMu sync.Mutex

func emit(v map[string]any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"event":"error","message":%q}`, err.Error()))
	}
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.Write(append(b, '\n'))
}

type command struct {
	Cmd   string               `json:"cmd"`
	Tones [][2]json.RawMessage `json:"tones"`
	Lossy bool                 `json:"lossy"`
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: dtmfpeer <ws-url> <token>")
		os.Exit(2)
	}
	url, token := os.Args[1], os.Args[2]

	cb := lksdk.NewRoomCallback()
	cb.OnParticipantConnected = func(p *lksdk.RemoteParticipant) {
		emit(map[string]any{"event": "participant_connected", "identity": p.Identity()})
	}
	cb.OnParticipantDisconnected = func(p *lksdk.RemoteParticipant) {
		emit(map[string]any{"event": "participant_disconnected", "identity": p.Identity()})
	}
	cb.OnDisconnectedWithReason = func(reason lksdk.DisconnectionReason) {
		emit(map[string]any{"event": "disconnected", "reason": string(reason)})
	}
	// The seed's receive API.
	cb.OnDataPacket = func(data lksdk.DataPacket, params lksdk.DataReceiveParams) {
		switch val := data.(type) {
		case *livekit.SipDTMF:
			emit(map[string]any{"event": "dtmf", "code": val.Code, "digit": val.Digit, "from": params.SenderIdentity})
		}
	}

	room, err := lksdk.ConnectToRoomWithToken(url, token, cb, lksdk.WithAutoSubscribe(true))
	if err != nil {
		emit(map[string]any{"event": "error", "message": "connect: " + err.Error()})
		os.Exit(1)
	}
	remote := []string{}
	for _, p := range room.GetRemoteParticipants() {
		remote = append(remote, p.Identity())
	}
	emit(map[string]any{
		"event": "connected", "identity": room.LocalParticipant.Identity(),
		"room": room.Name(), "remote": remote,
	})

	scanner := bufio.NewScanner(os.Stdin)
	for scanner.Scan() {
		line := scanner.Bytes()
		if len(line) == 0 {
			continue
		}
		var cmd command
		if err := json.Unmarshal(line, &cmd); err != nil {
			emit(map[string]any{"event": "error", "message": "bad command line: " + string(line)})
			continue
		}
		switch cmd.Cmd {
		case "dtmf":
			count := 0
			for _, tone := range cmd.Tones {
				var code uint32
				var digit string
				if err := json.Unmarshal(tone[0], &code); err != nil {
					emit(map[string]any{"event": "error", "message": "bad code: " + string(tone[0])})
					break
				}
				if err := json.Unmarshal(tone[1], &digit); err != nil {
					emit(map[string]any{"event": "error", "message": "bad digit: " + string(tone[1])})
					break
				}
				var err error
				if cmd.Lossy {
					// Exactly the seed's call: no options, so the SDK's default (lossy) channel.
					err = room.LocalParticipant.PublishDataPacket(&livekit.SipDTMF{Code: code, Digit: digit})
				} else {
					err = room.LocalParticipant.PublishDataPacket(
						&livekit.SipDTMF{Code: code, Digit: digit},
						lksdk.WithDataPublishReliable(true),
					)
				}
				if err != nil {
					emit(map[string]any{"event": "error", "message": "publish: " + err.Error()})
					break
				}
				count++
			}
			emit(map[string]any{"event": "sent", "count": count})
		case "leave":
			room.Disconnect()
			return
		default:
			emit(map[string]any{"event": "error", "message": "unknown command: " + cmd.Cmd})
		}
	}
	room.Disconnect()
}
