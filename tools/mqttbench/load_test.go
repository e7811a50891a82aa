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
	if err := r.pubPacket(p, typePubrec, []byte{0, 5}, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.conn.out, []byte{0x62, 2, 0, 5}) {
		t.Fatalf("PUBREC answered with % x, want PUBREL", p.conn.out)
	}
	r.pubPacket(p, typePubcomp, []byte{0, 5}, 0)
	if p.acked.Load() != 1 || p.idBusy(5) || p.unexpectedAcks != 0 {
		t.Fatalf("after PUBCOMP: acked %d busy %v unexpected %d", p.acked.Load(), p.idBusy(5), p.unexpectedAcks)
	}
	r.pubPacket(p, typePubcomp, []byte{0, 5}, 0) // again: not in flight
	r.pubPacket(p, typePuback, []byte{0, 6}, 0)  // wrong ack type for QoS 2
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

// newTestRun5 is newTestRun in 5.0 mode, with -v5-props when props is set.
func newTestRun5(scenario string, pubs, subs int, qos byte, props bool) *loadRun {
	r := newTestRun(scenario, pubs, subs, qos)
	r.cfg.v5, r.cfg.v5Props = true, props
	if props {
		r.props = appendPublishProps(nil, v5PropsExpiry, v5PropsKey, v5PropsValue)
	}
	for _, s := range r.subs {
		s.conn.v5 = true
	}
	return r
}

func TestSubPacket5AccountingAndAllocs(t *testing.T) {
	r := newTestRun5("pairs", 1, 1, 2, true)
	s := r.subs[0]
	p := r.pubs[0]
	payload := make([]byte, 64)
	pkt := r.publishPacket(p, payload)
	_, flags, body, _, _, _ := parsePacket(pkt)
	pl := body[len(body)-64:]
	idOff := len(pkt) - len(body) + 2 + len(p.topic)
	deliver := func(seq uint64) {
		stampPayload(pl, 0, seq, r.now())
		pkt[idOff], pkt[idOff+1] = 0, byte(seq+1)
		if err := r.subPacket(s, typePublish, flags, body, r.now()); err != nil {
			t.Fatal(err)
		}
	}
	deliver(0)
	deliver(1)
	deliver(1) // QoS 2 duplicate: counted, still answered
	if s.dups != 1 || s.unique.Load() != 2 || s.badProps != 0 || p.done[0].Load() != 2 {
		t.Fatalf("dups %d unique %d badProps %d done %d", s.dups, s.unique.Load(), s.badProps, p.done[0].Load())
	}
	// PUBREC answers in the short form: 0x50, 2, id.
	if !bytes.Equal(s.conn.out, []byte{0x50, 2, 0, 1, 0x50, 2, 0, 2, 0x50, 2, 0, 2}) {
		t.Fatalf("acks % x", s.conn.out)
	}
	// A long-form PUBREL (reason code and a reason string) is answered
	// with a short PUBCOMP; a failure reason code is counted.
	s.conn.out = s.conn.out[:0]
	if err := r.subPacket(s, typePubrel, 0x02, []byte{0, 1, 0x00, 4, 0x1F, 0, 1, 'x'}, r.now()); err != nil {
		t.Fatal(err)
	}
	if err := r.subPacket(s, typePubrel, 0x02, []byte{0, 2, 0x92}, r.now()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.conn.out, []byte{0x70, 2, 0, 1, 0x70, 2, 0, 2}) || s.failedAcks != 1 {
		t.Fatalf("PUBCOMPs % x, failed %d", s.conn.out, s.failedAcks)
	}
	// A delivery without our properties (a broker that drops them) counts
	// as such, and is still a delivery.
	bare := appendPublish5(nil, p.topic, 2, 9, nil, payload)
	stampPayload(bare[len(bare)-64:], 0, 2, r.now())
	_, f2, b2, _, _, _ := parsePacket(bare)
	r.subPacket(s, typePublish, f2, b2, r.now())
	if s.badProps != 1 || s.unique.Load() != 3 {
		t.Fatalf("badProps %d unique %d", s.badProps, s.unique.Load())
	}
	// A broker's DISCONNECT ends the connection with its reason code.
	if err := r.subPacket(s, typeDisconnect, 0, []byte{0x8B}, r.now()); err == nil || !strings.Contains(err.Error(), "0x8b") {
		t.Fatalf("DISCONNECT: %v", err)
	}

	s.conn.out = s.conn.out[:0]
	seq := uint64(100)
	allocs := testing.AllocsPerRun(1000, func() {
		stampPayload(pl, 0, seq, r.now())
		seq++
		r.subPacket(s, typePublish, flags, body, r.now())
		s.conn.out = s.conn.out[:0]
	})
	if allocs != 0 {
		t.Fatalf("5.0 subPacket allocates %.1f times per message", allocs)
	}
	if s.badProps != 1 {
		t.Fatalf("badProps %d after the allocation loop", s.badProps)
	}
}

func TestPubPacket5Acks(t *testing.T) {
	r := newTestRun5("pairs", 1, 1, 2, false)
	p := r.pubs[0]
	p.conn = &mconn{v5: true}
	for id := uint16(5); id <= 7; id++ {
		p.setID(id)
	}
	p.sent.Store(3)
	// PUBREC in the long form with reason 0x10 (no matching subscribers:
	// still a success) is answered with a short PUBREL.
	if err := r.pubPacket(p, typePubrec, []byte{0, 5, 0x10}, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.conn.out, []byte{0x62, 2, 0, 5}) {
		t.Fatalf("PUBREC answered with % x", p.conn.out)
	}
	// PUBCOMP with reason code and empty properties.
	if err := r.pubPacket(p, typePubcomp, []byte{0, 5, 0, 0}, 0); err != nil {
		t.Fatal(err)
	}
	// A failed PUBREC ends the exchange: no PUBREL, slot and id free.
	p.conn.out = p.conn.out[:0]
	if err := r.pubPacket(p, typePubrec, []byte{0, 6, 0x97, 0}, 0); err != nil {
		t.Fatal(err)
	}
	if len(p.conn.out) != 0 || p.idBusy(6) || p.acked.Load() != 2 || p.failedAcks != 1 {
		t.Fatalf("after failed PUBREC: out % x busy %v acked %d failed %d", p.conn.out, p.idBusy(6), p.acked.Load(), p.failedAcks)
	}
	// A malformed ack breaks the connection.
	if err := r.pubPacket(p, typePubcomp, []byte{0, 7, 0, 9}, 0); err == nil {
		t.Fatal("PUBCOMP with a property length beyond the packet accepted")
	}

	// QoS 1: a failed PUBACK frees the slot and is counted.
	r = newTestRun5("pairs", 1, 1, 1, false)
	p = r.pubs[0]
	p.conn = &mconn{v5: true}
	p.setID(1)
	p.sent.Store(1)
	r.pubPacket(p, typePuback, []byte{0, 1, 0x87}, 0)
	if p.acked.Load() != 1 || p.failedAcks != 1 || p.idBusy(1) {
		t.Fatalf("failed PUBACK: acked %d failed %d", p.acked.Load(), p.failedAcks)
	}
}

func TestReceiveMaximumLimitsInflight(t *testing.T) {
	// A 5.0 broker announcing Receive Maximum 20 caps a window of 256.
	r := newTestRun5("pairs", 1, 1, 1, false)
	r.cfg.window = 256
	r.subs[0].conn.lim = defaultLimits
	p := r.pubs[0]
	p.conn = &mconn{v5: true, lim: defaultLimits}
	p.conn.lim.receiveMax = 20
	if err := r.applyLimits(); err != nil {
		t.Fatal(err)
	}
	if p.limit != 20 {
		t.Fatalf("limit %d, want 20", p.limit)
	}
	for seq := uint64(0); seq < 20; seq++ {
		p.done[0].Store(seq) // subscribers keep up: only the in-flight limit binds
		if ok, _ := r.roomFor(p, seq); !ok {
			t.Fatalf("seq %d refused below the Receive Maximum", seq)
		}
		p.setID(packetID(seq))
	}
	if ok, armed := r.roomFor(p, 20); ok || !armed {
		t.Fatalf("seq 20 with 20 unacknowledged: ok %v armed %v", ok, armed)
	}
	if res := r.collect(cpuSample{}, cpuSample{}, 0); res.Inflight != 20 || res.MQTT != "5.0" {
		t.Fatalf("result: inflight %d mqtt %q", res.Inflight, res.MQTT)
	}

	// Maximum QoS 0 refuses a QoS 1 run; a small Maximum Packet Size
	// refuses our PUBLISH; Server Keep Alive sets the ping interval.
	p.conn.lim = serverLimits{receiveMax: 65535, keepAlive: 10, maxQoS: 0}
	if err := r.applyLimits(); err == nil || !strings.Contains(err.Error(), "Maximum QoS") {
		t.Fatalf("Maximum QoS 0: %v", err)
	}
	p.conn.lim = serverLimits{receiveMax: 65535, keepAlive: 10, maxQoS: 2, maxPacket: 50}
	if err := r.applyLimits(); err == nil || !strings.Contains(err.Error(), "Maximum Packet Size") {
		t.Fatalf("Maximum Packet Size 50: %v", err)
	}
	r.cfg.keepAlive = time.Minute
	p.conn.lim = serverLimits{receiveMax: 65535, keepAlive: 10, maxQoS: 2}
	if err := r.applyLimits(); err != nil || r.keepAlive != 10*time.Second {
		t.Fatalf("Server Keep Alive: %v %v", r.keepAlive, err)
	}
}

func TestReportProtocols(t *testing.T) {
	in := strings.Join([]string{
		`{"label":"a","case":"p2p","scenario":"pairs","mqtt":"3.1.1","delivered_per_s":200,"broker_us_per_delivery":4,"ok":true}`,
		`{"label":"a","case":"p2p","scenario":"pairs","mqtt":"5.0","delivered_per_s":180,"broker_us_per_delivery":5,"ok":true}`,
		`{"label":"b","case":"p2p","scenario":"pairs","mqtt":"5.0","delivered_per_s":90,"ok":true}`,
		`{"label":"b","case":"p2p","scenario":"pairs","delivered_per_s":100,"ok":true}`,
		`{"label":"a","case":"p2p","scenario":"pairs","mqtt":"5.0","delivered_per_s":220,"broker_us_per_delivery":5,"ok":true}`,
		`{"label":"a","case":"fan","scenario":"fanout","mqtt":"5.0","delivered_per_s":7,"ok":true}`,
	}, "\n")
	path := t.TempDir() + "/r.jsonl"
	if err := writeFile(path, in); err != nil {
		t.Fatal(err)
	}
	rs, _, err := readResults([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	writeReport(&out, rs, 0)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"| scenario | broker | MQTT | delivered",
		"|---|---|---|---|",
		"| p2p | a | 3.1.1 | 200 [200..200] |",
		"| p2p | a | 5.0 | 200 [180..220] |",
		"| p2p | b | 3.1.1 | 100 [100..100] |", // no "mqtt" field: an older 3.1.1 result
		"| p2p | b | 5.0 | 90 [90..90] |",
		"| fan | a | 5.0 | 7 [7..7] |",
		"",
		"| scenario | broker | delivered msg/s 5.0 / 3.1.1 | µs broker CPU per delivery 5.0 / 3.1.1 |",
		"|---|---|---|---|",
		"| p2p | a | 1.00 | 1.25 |",
		"| p2p | b | 0.90 | – |",
	}
	if len(lines) != len(want) {
		t.Fatalf("report has %d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q, want prefix %q", i, lines[i], w)
		}
	}
}
