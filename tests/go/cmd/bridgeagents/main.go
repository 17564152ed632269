// Command bridgeagents hosts N LiveKit participants on the official Go SDK (server-sdk-go/v2),
// one per room, for benchmarks/bridge_sdk.py (--sdk go).
//
// Usage: bridgeagents <ws-url> <api-key> <api-secret> <first> <n> [identity-prefix]
//
// Participant i (first <= i < first+n) joins room "bench_p<i>" as "agent<i>" (or
// "<identity-prefix><i>": a second process with prefix "sip_p" stands in for the phones when
// the benchmark's anchor, livekit-server, relays SDK to SDK). Why a Go variant:
// the Python SDK's Rust core costs 1.1-1.2 cores for 100 idle rooms in one process (measured
// against roomtone and livekit-server alike), more than half of a 2-core test machine before any
// DTMF flows; the Go SDK's participants leave the CPU to the server under test.
//
// It speaks bridge_sdk.py's agents line protocol (one JSON object per line):
//
//	stdout: {"joined":n} once connected, then one reply per command
//	stdin:  {"cmd":"wait_sip"}            -> {"ready":k}  (rooms whose "sip_p<i>" has joined)
//	        {"cmd":"collect","code":c}    -> {"at":{"<i>":unix_seconds}}  (first SipDTMF c per room)
//	        {"cmd":"publish","code":c,"digit":d,"spread":s,"stagger":g}
//	                                      -> {"starts":{"<i>":unix_seconds}}
//	        {"cmd":"quit"}
//
// publish sends PublishDataPacket(&livekit.SipDTMF{...}, reliable) from every room: at once when
// spread and stagger are 0; room i at i*stagger seconds when stagger is set; else each room at its
// own random moment within spread seconds. Its start is taken just before the call. Times are wall-clock seconds, comparable with the phones' time.time().
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

type arrival struct {
	room int
	code uint32
}

type agents struct {
	mu      sync.Mutex
	arrived map[arrival]float64
	rooms   map[int]*lksdk.Room
}

func now() float64 { return float64(time.Now().UnixNano()) / 1e9 }

func reply(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"error":%q}`, err.Error()))
	}
	os.Stdout.Write(append(b, '\n'))
}

func (a *agents) join(url, key, secret, prefix string, i int) error {
	at := auth.NewAccessToken(key, secret)
	at.SetIdentity(fmt.Sprintf("%s%d", prefix, i)).SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: fmt.Sprintf("bench_p%d", i)})
	token, err := at.ToJWT()
	if err != nil {
		return err
	}
	cb := lksdk.NewRoomCallback()
	cb.OnDataPacket = func(data lksdk.DataPacket, params lksdk.DataReceiveParams) {
		if val, ok := data.(*livekit.SipDTMF); ok {
			t := now()
			a.mu.Lock()
			key := arrival{i, val.Code}
			if _, seen := a.arrived[key]; !seen {
				a.arrived[key] = t
			}
			a.mu.Unlock()
		}
	}
	room, err := lksdk.ConnectToRoomWithToken(url, token, cb, lksdk.WithAutoSubscribe(false))
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.rooms[i] = room
	a.mu.Unlock()
	return nil
}

type command struct {
	Cmd     string  `json:"cmd"`
	Code    uint32  `json:"code"`
	Digit   string  `json:"digit"`
	Spread  float64 `json:"spread"`
	Stagger float64 `json:"stagger"`
}

func main() {
	if len(os.Args) != 6 && len(os.Args) != 7 {
		fmt.Fprintln(os.Stderr, "usage: bridgeagents <ws-url> <api-key> <api-secret> <first> <n> [identity-prefix]")
		os.Exit(2)
	}
	prefix := "agent"
	if len(os.Args) == 7 {
		prefix = os.Args[6]
	}
	url, key, secret := os.Args[1], os.Args[2], os.Args[3]
	first, err1 := strconv.Atoi(os.Args[4])
	n, err2 := strconv.Atoi(os.Args[5])
	if err1 != nil || err2 != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "bridgeagents: <first> and <n> must be integers, n >= 1")
		os.Exit(2)
	}
	a := &agents{arrived: map[arrival]float64{}, rooms: map[int]*lksdk.Room{}}
	// join a few at a time: all at once only queues them behind each other in the server
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var joinErr error
	var errMu sync.Mutex
	for i := first; i < first+n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := a.join(url, key, secret, prefix, i); err != nil {
				errMu.Lock()
				joinErr = fmt.Errorf("agent%d: %w", i, err)
				errMu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if joinErr != nil {
		fmt.Fprintln(os.Stderr, "bridgeagents: join failed:", joinErr)
		os.Exit(1)
	}
	reply(map[string]int{"joined": n})

	scanner := bufio.NewScanner(os.Stdin)
	for scanner.Scan() {
		var cmd command
		if err := json.Unmarshal(scanner.Bytes(), &cmd); err != nil {
			fmt.Fprintln(os.Stderr, "bridgeagents: bad command line:", scanner.Text())
			os.Exit(2)
		}
		switch cmd.Cmd {
		case "wait_sip":
			deadline := time.Now().Add(60 * time.Second)
			ready := 0
			for {
				ready = 0
				for i, room := range a.rooms {
					if room.GetParticipantByIdentity(fmt.Sprintf("sip_p%d", i)) != nil {
						ready++
					}
				}
				if ready == n || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			reply(map[string]int{"ready": ready})
		case "collect":
			deadline := time.Now().Add(2 * time.Second)
			at := map[string]float64{}
			for {
				a.mu.Lock()
				for k, t := range a.arrived {
					if k.code == cmd.Code {
						at[strconv.Itoa(k.room)] = t
					}
				}
				if len(at) >= n || time.Now().After(deadline) {
					a.arrived = map[arrival]float64{}
					a.mu.Unlock()
					break
				}
				a.mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
			reply(map[string]any{"at": at})
		case "publish":
			starts := map[string]float64{}
			var mu sync.Mutex
			var sends sync.WaitGroup
			for i, room := range a.rooms {
				delay := time.Duration(0)
				if cmd.Stagger > 0 { // one at a time, in index order
					delay = time.Duration(float64(i) * cmd.Stagger * float64(time.Second))
				} else if cmd.Spread > 0 {
					delay = time.Duration(rand.Float64() * cmd.Spread * float64(time.Second))
				}
				sends.Add(1)
				go func(i int, room *lksdk.Room) {
					defer sends.Done()
					time.Sleep(delay)
					t := now()
					err := room.LocalParticipant.PublishDataPacket(
						&livekit.SipDTMF{Code: cmd.Code, Digit: cmd.Digit}, lksdk.WithDataPublishReliable(true))
					if err != nil {
						fmt.Fprintf(os.Stderr, "bridgeagents: agent%d publish: %v\n", i, err)
						return
					}
					mu.Lock()
					starts[strconv.Itoa(i)] = t
					mu.Unlock()
				}(i, room)
			}
			sends.Wait()
			reply(map[string]any{"starts": starts})
		case "quit":
			for _, room := range a.rooms {
				room.Disconnect()
			}
			return
		default:
			fmt.Fprintln(os.Stderr, "bridgeagents: unknown command:", cmd.Cmd)
			os.Exit(2)
		}
	}
}
