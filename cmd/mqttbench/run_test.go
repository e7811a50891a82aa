package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestSeqTrack(t *testing.T) {
	var tr seqTrack
	check := func(seq uint64, dup, late, beyond bool) {
		t.Helper()
		d, l, b := tr.see(seq)
		if d != dup || l != late || b != beyond {
			t.Fatalf("see(%d) = dup %v late %v beyond %v, want %v %v %v", seq, d, l, b, dup, late, beyond)
		}
	}
	check(0, false, false, false)
	check(1, false, false, false)
	check(1, true, false, false) // duplicate
	check(5, false, false, false)
	check(3, false, true, false) // late but new
	check(3, true, false, false)
	check(4, false, true, false)
	check(2, false, true, false)
	if tr.unique != 6 || tr.next != 6 {
		t.Fatalf("unique %d next %d, want 6 6", tr.unique, tr.next)
	}
	// After a jump larger than the window, old numbers cannot be checked.
	check(6+seqWindow+10, false, false, false)
	check(7, false, true, true)
	// A slot reused after wrapping must not look like a duplicate: seq
	// s+seqWindow shares s's bit.
	var w seqTrack
	for s := uint64(0); s < seqWindow; s++ {
		w.see(s)
	}
	if d, _, _ := w.see(seqWindow + 5); d {
		t.Fatal("new sequence number taken for a duplicate after wrap")
	}
	if d, l, _ := w.see(seqWindow + 2); d || !l {
		t.Fatal("skipped slot kept a stale bit")
	}
}

// newTestRun builds the in-memory state of a run without connections, for
// driving subPacket and pubPacket directly.
func newTestRun(scenario string, pubs, subs int, qos byte) *loadRun {
	r := &loadRun{cfg: loadConfig{scenario: scenario, pubs: pubs, subs: subs, qos: qos, size: 64, window: 8, burst: 1, topicPrefix: "t"}}
	r.base = time.Now()
	r.stopCh = make(chan struct{})
	r.winStart.Store(0)
	r.winEnd.Store(1 << 62)
	r.pubs = make([]*publisher, pubs)
	r.topics = make([][]byte, pubs)
	for i := range r.pubs {
		r.topics[i] = []byte(r.pubTopic(i))
		r.pubs[i] = &publisher{idx: i, topic: r.pubTopic(i), done: make([]paddedU64, r.subsPerPub()), wake: make(chan struct{}, 1)}
	}
	r.subs = make([]*subscriber, subs)
	for i := range r.subs {
		r.subs[i] = &subscriber{idx: i, tracks: make([]seqTrack, pubs), conn: &mconn{out: make([]byte, 0, 4096)}}
	}
	return r
}

func TestSubPacketAccountingAndAllocs(t *testing.T) {
	r := newTestRun("fanin", 2, 1, 1)
	s := r.subs[0]
	payload := make([]byte, 64)
	deliver := func(pub int, seq uint64) {
		stampPayload(payload, uint32(pub), seq, r.now())
		pkt := appendPublish(nil, r.pubTopic(pub), 1, uint16(seq+1), payload)
		_, flags, body, _, _, _ := parsePacket(pkt)
		if err := r.subPacket(s, typePublish, flags, body, r.now()); err != nil {
			t.Fatal(err)
		}
	}
	deliver(0, 0)
	deliver(0, 1)
	deliver(1, 0)
	deliver(0, 1) // duplicate
	deliver(0, 3) // 2 missing for now
	if s.dups != 1 || s.unique.Load() != 4 || r.pubs[0].done[0].Load() != 4 || r.pubs[1].done[0].Load() != 1 {
		t.Fatalf("dups %d unique %d done %d/%d", s.dups, s.unique.Load(), r.pubs[0].done[0].Load(), r.pubs[1].done[0].Load())
	}
	// Every QoS 1 PUBLISH is acknowledged, duplicates included.
	if got := bytes.Count(s.conn.out, []byte{0x40, 2}); got != 5 {
		t.Fatalf("%d PUBACKs queued, want 5", got)
	}
	// A message with a topic that is not its publisher's is misrouted.
	stampPayload(payload, 0, 10, r.now())
	pkt := appendPublish(nil, "t/1", 1, 9, payload)
	_, flags, body, _, _, _ := parsePacket(pkt)
	r.subPacket(s, typePublish, flags, body, r.now())
	if s.misrouted != 1 {
		t.Fatalf("misrouted %d", s.misrouted)
	}

	// The whole per-delivery path, wake-up protocol included, must not
	// allocate.
	s.conn.out = s.conn.out[:0]
	seq := uint64(100)
	pkt = appendPublish(nil, r.pubTopic(0), 1, 1, payload)
	_, flags, body, _, _, _ = parsePacket(pkt)
	pl := body[len(body)-64:]
	allocs := testing.AllocsPerRun(1000, func() {
		stampPayload(pl, 0, seq, r.now())
		seq++
		r.subPacket(s, typePublish, flags, body, r.now())
		s.conn.out = s.conn.out[:0]
	})
	if allocs != 0 {
		t.Fatalf("subPacket allocates %.1f times per message", allocs)
	}
}

func TestWindowWakeup(t *testing.T) {
	// One publisher, three fan-out subscribers, window 8: the publisher
	// blocks at seq 8 and must be woken exactly when the slowest
	// subscriber has taken message 0.
	r := newTestRun("fanout", 1, 3, 0)
	p := r.pubs[0]
	ok, armed := r.roomFor(p, 7)
	if !ok || armed {
		t.Fatal("seq 7 should fit in a window of 8")
	}
	ok, armed = r.roomFor(p, 8)
	if ok || !armed || p.target.Load() != 1 || p.remaining.Load() != 3 {
		t.Fatalf("seq 8: ok %v armed %v target %d remaining %d", ok, armed, p.target.Load(), p.remaining.Load())
	}
	payload := make([]byte, 64)
	stampPayload(payload, 0, 0, r.now())
	pkt := appendPublish(nil, r.pubTopic(0), 0, 0, payload)
	_, flags, body, _, _, _ := parsePacket(pkt)
	for i, s := range r.subs {
		r.subPacket(s, typePublish, flags, body, r.now())
		select {
		case <-p.wake:
			if i != len(r.subs)-1 {
				t.Fatalf("woken after subscriber %d of %d", i+1, len(r.subs))
			}
		default:
			if i == len(r.subs)-1 {
				t.Fatal("not woken after the last subscriber")
			}
		}
	}
	if ok, _ := r.roomFor(p, 8); !ok {
		t.Fatal("seq 8 should fit once every subscriber has message 0")
	}
}

func TestPubPacketAcks(t *testing.T) {
	r := newTestRun("pairs", 1, 1, 2)
	p := r.pubs[0]
	p.conn = &mconn{}
	p.setID(5)
	p.sent.Store(1)
	if err := r.pubPacket(p, typePubrec, []byte{0, 5}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.conn.out, []byte{0x62, 2, 0, 5}) {
		t.Fatalf("PUBREC answered with % x, want PUBREL", p.conn.out)
	}
	r.pubPacket(p, typePubcomp, []byte{0, 5})
	if p.acked.Load() != 1 || p.idBusy(5) || p.unexpectedAcks != 0 {
		t.Fatalf("after PUBCOMP: acked %d busy %v unexpected %d", p.acked.Load(), p.idBusy(5), p.unexpectedAcks)
	}
	r.pubPacket(p, typePubcomp, []byte{0, 5}) // again: not in flight
	r.pubPacket(p, typePuback, []byte{0, 6})  // wrong ack type for QoS 2
	if p.unexpectedAcks != 2 {
		t.Fatalf("unexpected acks %d, want 2", p.unexpectedAcks)
	}
}

func TestReport(t *testing.T) {
	in := strings.Join([]string{
		`{"label":"a","case":"p2p","scenario":"pairs","delivered_per_s":100,"ok":true}`,
		`{"label":"b","case":"p2p","scenario":"pairs","delivered_per_s":50,"ok":true}`,
		`{"label":"a","case":"fan","scenario":"fanout","delivered_per_s":7,"ok":true}`,
		`not json`,
		`{"label":"a","case":"p2p","scenario":"pairs","delivered_per_s":300,"lost":2,"ok":false}`,
		`{"label":"a","case":"p2p","scenario":"pairs","delivered_per_s":200,"ok":true}`,
	}, "\n")
	path := t.TempDir() + "/r.jsonl"
	if err := writeFile(path, in); err != nil {
		t.Fatal(err)
	}
	rs, bad, err := readResults([]string{path})
	if err != nil || bad != 1 || len(rs) != 5 {
		t.Fatalf("readResults: %d results, %d bad, %v", len(rs), bad, err)
	}
	var out strings.Builder
	writeReport(&out, rs, 0)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("report has %d lines:\n%s", len(lines), out.String())
	}
	// Rows grouped by scenario in order of appearance, brokers in order.
	if !strings.HasPrefix(lines[2], "| p2p | a | 200 [100..300]") || !strings.Contains(lines[2], "| 2 |") || !strings.HasSuffix(lines[2], "| 3 (1) |") {
		t.Errorf("row a: %s", lines[2])
	}
	if !strings.HasPrefix(lines[3], "| p2p | b |") || !strings.HasPrefix(lines[4], "| fan | a |") {
		t.Errorf("order:\n%s", out.String())
	}
	// Runs on a busy machine can be left out, visibly.
	rs[0].OtherCPUPct = 80
	out.Reset()
	writeReport(&out, rs, 50)
	if !strings.Contains(out.String(), "| p2p | a | 250 [200..300]") || !strings.Contains(out.String(), "| 2 (1), 1 busy left out |") {
		t.Errorf("max-other:\n%s", out.String())
	}
	rs[1].OtherCPUPct = 80
	out.Reset()
	writeReport(&out, rs, 50)
	if !strings.Contains(out.String(), "| p2p | b | – |") {
		t.Errorf("row with every run left out must remain:\n%s", out.String())
	}
	if median([]float64{4, 1, 3, 2}) != 2.5 {
		t.Error("median of even count")
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }
