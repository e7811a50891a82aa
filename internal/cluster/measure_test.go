package cluster

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// TestMeasureCluster measures, in one run, 10→10 QoS 1 (ten publishers,
// each with its own topic and subscriber; raw sockets, 64 outstanding
// publishes each) in up to four set-ups: a single node without a cluster;
// a cluster node with everyone on it (the cost of cluster mode on local
// traffic: with the interest table such a message stays off NATS);
// publishers on node 1, subscribers on node 2; and the same with each
// subscriber a shared group's member. The load generator and nats-server
// run in child processes (this test binary again: TestMeasureLoad,
// TestMeasureNATS), so the CPU time this process spends per message is the
// brokers' alone, as a deployment's broker process would spend it.
//
// The set-ups alternate within each round (order reversed every other
// round), and each round's ratios are taken within the round: on a shared,
// loaded machine the medians of those per-round ratios are steadier than
// ratios of medians. It prints both, for the rate and for the CPU per
// message. Set MQTTD_CLUSTER_MEASURE=1 to run it; MQTTD_CLUSTER_ROUNDS
// (default 7) sets the rounds, MQTTD_CLUSTER_SETUPS (a comma-separated
// subset of single,local,across,shared) the set-ups, e.g. for a CPU profile
// of one; MQTTD_CLUSTER_PEER_FILTERS (default 0) has node 2 hold that many
// filters no benchmark topic matches (holdFilters), so the publisher's
// node walks a populated table for every message.
//
// Each round's line also says what nats-server spent per message, how busy
// the machine's cores were with the three processes (near all of them, the
// rate is bounded by CPU; well below, by the round trips a PUBACK waits
// for), the mean PUBACK latency that rate implies, and, across nodes, how
// many messages a NATS message and an answer carried.
// MQTTD_CLUSTER_NATS_PROFILE names a file for nats-server's CPU profile.
func TestMeasureCluster(t *testing.T) {
	if os.Getenv("MQTTD_CLUSTER_MEASURE") == "" {
		t.Skip("set MQTTD_CLUSTER_MEASURE=1 to measure")
	}
	const pairs, perPair = 10, 20000
	rounds := 7
	if v, err := strconv.Atoi(os.Getenv("MQTTD_CLUSTER_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	url, natsPID := startNATSProcess(t)
	// Queues deep enough that nothing is dropped: the broker acknowledges
	// a publisher before its subscriber has the message.
	lim := mqtt.Limits{MaxQueued: 1 << 20, MaxQueuedBytes: 1 << 30}
	single := startNodeWith(t, nil, "single", lim)
	c1, c2 := startNodeAt(t, url, "c1", lim), startNodeAt(t, url, "c2", lim)
	synced(t, c1, c2)
	if v, _ := strconv.Atoi(os.Getenv("MQTTD_CLUSTER_PEER_FILTERS")); v > 0 {
		holdFilters(t, c2, v)
		waitFor(t, "node 1 to hold node 2's filters", func() bool { return c1.node.routes.peers.size.Load() >= int64(v) })
		t.Logf("node 2 holds %d filters no benchmark topic matches", v)
	}
	type setup struct {
		key, name string
		pub, sub  *testNode
		share     string // the subscribers' shared group, "" for plain ones
	}
	var setups []setup
	want := os.Getenv("MQTTD_CLUSTER_SETUPS")
	for _, sc := range []setup{{"single", "single node", single, single, ""}, {"local", "cluster, all on node 1", c1, c1, ""},
		{"across", "cluster, node 1 → node 2", c1, c2, ""}, {"shared", "cluster, node 1 → group on 2", c1, c2, "g"}} {
		if want == "" || slices.Contains(strings.Split(want, ","), sc.key) {
			setups = append(setups, sc)
		}
	}
	rates := map[string][]float64{}
	cpus := map[string][]float64{}      // CPU of this process (the brokers) per message
	natsCPU := map[string][]float64{}   // of the nats-server child per message
	ratios := map[string][]float64{}    // per round, of rates
	cpuRatios := map[string][]float64{} // per round, of CPU per message
	for round := range rounds {
		order := slices.Clone(setups)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		got, gotCPU := map[string]float64{}, map[string]float64{}
		for _, sc := range order {
			var fwd, skip int64
			var out0, ans0 uint64
			if sc.pub.node != nil {
				fwd, skip = counts(sc.pub)
				out0 = sc.pub.node.nc.Stats().OutMsgs
				ans0 = sc.sub.node.nc.Stats().OutMsgs
			}
			nats0 := childCPU(natsPID)
			r, lost, us, loadUS := runLoad(t, sc.pub.addr, sc.sub.addr, fmt.Sprintf("r%d", round), sc.share, pairs, perPair)
			natsUS := float64(childCPU(natsPID)-nats0) / float64(time.Microsecond) / float64(pairs*perPair)
			natsCPU[sc.key] = append(natsCPU[sc.key], natsUS)
			rates[sc.key] = append(rates[sc.key], r)
			cpus[sc.key] = append(cpus[sc.key], us)
			got[sc.key], gotCPU[sc.key] = r, us
			batches := ""
			if sc.pub.node != nil {
				f, s := counts(sc.pub)
				fwd, skip = f-fwd, s-skip
				// Every NATS message node 1 sent is a batch but for a few
				// heartbeats: how many messages cross in one.
				// and node 2's, in answers.
				if out := sc.pub.node.nc.Stats().OutMsgs - out0; out > 0 && fwd > 0 {
					ans := sc.sub.node.nc.Stats().OutMsgs - ans0
					batches = fmt.Sprintf(", %.1f messages per NATS message, %.1f per answer", float64(fwd)/float64(out), float64(fwd)/float64(max(ans, 1)))
				}
			}
			// All CPU the run took (brokers, nats-server, load generator)
			// over its time, against the machine's cores: near them, the
			// rate is bounded by CPU, not by the round trips a PUBACK waits
			// for. The publishers keep pairs×64 publishes outstanding, so
			// the rate is that over their mean PUBACK latency.
			busy := (us + loadUS + natsUS) * r / 1e6 * 100
			t.Logf("round %d %-26s %8.0f msg/s, %5.2f µs CPU/msg (load generator %5.2f, nats-server %5.2f; all %3.0f %% of %d cores busy; mean PUBACK latency %s), lost %d (publisher's node: %d forwarded to NATS%s, %d kept off it)",
				round, sc.name, r, us, loadUS, natsUS, busy, runtime.NumCPU(),
				time.Duration(float64(pairs*64)/r*float64(time.Second)).Round(time.Microsecond), lost, fwd, batches, skip)
		}
		for _, q := range [][2]string{{"local", "single"}, {"across", "local"}, {"across", "single"}, {"shared", "across"}} {
			k := q[0] + "/" + q[1]
			if got[q[0]] > 0 && got[q[1]] > 0 {
				ratios[k] = append(ratios[k], got[q[0]]/got[q[1]])
				cpuRatios[k] = append(cpuRatios[k], gotCPU[q[0]]/gotCPU[q[1]])
			}
		}
	}
	med := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	span := func(v []float64) string {
		if len(v) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f [%.2f..%.2f]", med(v), slices.Min(v), slices.Max(v))
	}
	s, l, x := med(rates["single"]), med(rates["local"]), med(rates["across"])
	t.Logf("median msg/s: single %.0f, cluster local %.0f, cluster across %.0f", s, l, x)
	t.Logf("ratios of medians: cluster local / single = %.2f; across / all on node 1 (cluster) = %.2f; across / single = %.2f",
		l/s, x/l, x/s)
	t.Logf("medians [min..max] of per-round rate ratios: cluster local / single = %s; across / all on node 1 (cluster) = %s; across / single = %s",
		span(ratios["local/single"]), span(ratios["across/local"]), span(ratios["across/single"]))
	if len(ratios["shared/across"]) > 0 {
		t.Logf("median [min..max] of per-round rate ratios: shared group on node 2 / plain subscribers on node 2 = %s", span(ratios["shared/across"]))
	}
	// CPU per message is steadier than throughput when other work shares
	// the cores, and the load generator's is not in it.
	cs, cl, cx := med(cpus["single"]), med(cpus["local"]), med(cpus["across"])
	t.Logf("median µs CPU per message (brokers; NATS and load generator not counted): single %.2f, cluster local %.2f, across %.2f", cs, cl, cx)
	t.Logf("median µs CPU per message of nats-server: cluster local %.2f, across %.2f", med(natsCPU["local"]), med(natsCPU["across"]))
	t.Logf("medians [min..max] of per-round CPU ratios: cluster local / single = %s; across / local = %s; across / single = %s; shared / across = %s",
		span(cpuRatios["local/single"]), span(cpuRatios["across/local"]), span(cpuRatios["across/single"]), span(cpuRatios["shared/across"]))
}

// holdFilters subscribes one client of tn to n filters that no benchmark
// topic ("bench/<tag>/<i>") matches but that share its first level, a
// tenth of them with a wildcard at the second, so a publish walks the
// table's "bench" node and its '+' branch.
func holdFilters(t *testing.T, tn *testNode, n int) {
	c := rawConnect(t, tn.addr, "holder")
	t.Cleanup(func() { c.Close() })
	for i := range n {
		f := fmt.Sprintf("bench/held%d/state", i)
		if i%10 == 0 {
			f = fmt.Sprintf("bench/+/held%d", i)
		}
		rawSubscribe(t, c, f)
	}
}

// startNATSProcess runs nats-server with JetStream in a child process
// (TestMeasureNATS) and returns its URL and process id; it stops with the
// test.
func startNATSProcess(t *testing.T) (string, int) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestMeasureNATS$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MQTTD_CLUSTER_NATS_DIR="+t.TempDir())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // it shuts down when its input ends
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "nats: ")
	if err != nil || !ok {
		t.Fatalf("nats-server child said %q: %v", line, err)
	}
	return url, cmd.Process.Pid
}

// childCPU is the CPU time (user and system) a running child process has
// used so far, from /proc (in clock ticks, taken as 100 per second); 0
// where /proc is not there.
func childCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses:
	// utime and stime are the 14th and 15th of the line.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// TestMeasureNATS is TestMeasureCluster's nats-server, run by it in a child
// process with MQTTD_CLUSTER_NATS_DIR its JetStream directory: it prints
// "nats: <url>" once it serves, and stops when its standard input ends.
func TestMeasureNATS(t *testing.T) {
	dir := os.Getenv("MQTTD_CLUSTER_NATS_DIR")
	if dir == "" {
		t.Skip("run by TestMeasureCluster")
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	if path := os.Getenv("MQTTD_CLUSTER_NATS_PROFILE"); path != "" {
		// Where nats-server's own CPU goes, over the whole measurement.
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("nats: %s\n", s.ClientURL())
	io.Copy(io.Discard, os.Stdin)
	s.Shutdown()
	s.WaitForShutdown()
}

// runLoad runs run10to10 in a child process (TestMeasureLoad) and returns
// its rate and lost messages, and the CPU time per message of this process
// and of the child over the run.
func runLoad(t *testing.T, pubAddr, subAddr, tag, share string, pairs, n int) (rate float64, lost int, us, loadUS float64) {
	if share == "" {
		share = "-"
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMeasureLoad$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("MQTTD_CLUSTER_LOAD=%s %s %s %s %d %d", pubAddr, subAddr, tag, share, pairs, n))
	cmd.Stderr = os.Stderr
	cpu0 := processCPU()
	out, err := cmd.Output()
	cpu := processCPU() - cpu0
	if err != nil {
		t.Fatalf("load generator: %v\n%s", err, out)
	}
	i := strings.Index(string(out), "load: ")
	if i < 0 {
		t.Fatalf("load generator said: %s", out)
	}
	if _, err := fmt.Sscanf(string(out[i:]), "load: %g %d", &rate, &lost); err != nil {
		t.Fatalf("load generator said %q: %v", out, err)
	}
	msgs := float64(pairs * n)
	child := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return rate, lost, float64(cpu) / float64(time.Microsecond) / msgs, float64(child) / float64(time.Microsecond) / msgs
}

// TestMeasureLoad is TestMeasureCluster's load generator, run by it in a
// child process: MQTTD_CLUSTER_LOAD holds run10to10's arguments
// (publishers' address, subscribers' address, tag, shared group or "-",
// pairs, messages per pair); it prints "load: <msg/s> <lost>".
func TestMeasureLoad(t *testing.T) {
	spec := os.Getenv("MQTTD_CLUSTER_LOAD")
	if spec == "" {
		t.Skip("run by TestMeasureCluster")
	}
	var pub, sub, tag, share string
	var pairs, n int
	if _, err := fmt.Sscanf(spec, "%s %s %s %s %d %d", &pub, &sub, &tag, &share, &pairs, &n); err != nil {
		t.Fatalf("MQTTD_CLUSTER_LOAD=%q: %v", spec, err)
	}
	if share == "-" {
		share = ""
	}
	r, lost := run10to10(t, pub, sub, tag, share, pairs, n)
	fmt.Printf("load: %g %d\n", r, lost)
}

// processCPU is the CPU time this process has used (user and system).
func processCPU() time.Duration { return time.Duration(rusageCPU()) }

// run10to10 runs pairs publisher→subscriber pairs of QoS 1 and returns the
// deliveries per second and the messages that did not arrive. With share,
// each subscriber is the one member of a shared group of that name.
func run10to10(t *testing.T, pubAddr, subAddr, tag, share string, pairs, n int) (float64, int) {
	payload := make([]byte, 64)
	var ready, done sync.WaitGroup
	got := make([]int, pairs)
	start := make(chan struct{})
	subs := make([]net.Conn, pairs)
	for i := range pairs {
		topic := fmt.Sprintf("bench/%s/%d", tag, i)
		sc := rawConnect(t, subAddr, fmt.Sprintf("s-%s-%d", tag, i))
		subs[i] = sc
		if share != "" {
			rawSubscribe(t, sc, "$share/"+share+"/"+topic)
		} else {
			rawSubscribe(t, sc, topic)
		}
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			got[i] = rawReceive(sc, n)
		}()
	}
	ready.Wait()
	pubs := make([]net.Conn, pairs)
	for i := range pairs {
		pubs[i] = rawConnect(t, pubAddr, fmt.Sprintf("p-%s-%d", tag, i))
	}
	t0 := time.Now()
	close(start)
	var pw sync.WaitGroup
	for i := range pairs {
		pw.Add(1)
		go func() {
			defer pw.Done()
			rawPublish(pubs[i], fmt.Sprintf("bench/%s/%d", tag, i), payload, n, 64)
		}()
	}
	pw.Wait()
	done.Wait()
	el := time.Since(t0)
	total, lost := 0, 0
	for i := range pairs {
		total += got[i]
		lost += n - got[i]
		pubs[i].Close()
		subs[i].Close()
	}
	return float64(total) / el.Seconds(), lost
}

func rawConnect(t *testing.T, addr, id string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var vh []byte
	vh = appendStr(vh, "MQTT")
	vh = append(vh, 4, 0x02, 0, 60) // 3.1.1, clean session, keep alive 60
	vh = appendStr(vh, id)
	c.Write(packet(0x10, vh))
	if _, _, err := readPacket(bufio.NewReader(c)); err != nil { // CONNACK
		t.Fatal(err)
	}
	return c
}

func rawSubscribe(t *testing.T, c net.Conn, topic string) {
	body := appendStr([]byte{0, 1}, topic)
	body = append(body, 1)
	c.Write(packet(0x82, body))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if typ, _, err := readPacket(bufio.NewReader(c)); err != nil || typ != 0x90 {
		t.Fatalf("SUBACK: %x %v", typ, err)
	}
	c.SetReadDeadline(time.Time{})
}

// rawPublish sends n QoS 1 PUBLISHes keeping window unacknowledged.
func rawPublish(c net.Conn, topic string, payload []byte, n, window int) {
	acks := make(chan struct{}, window)
	go func() {
		r := bufio.NewReaderSize(c, 64<<10)
		for range n {
			if _, _, err := readPacket(r); err != nil {
				return
			}
			<-acks
		}
	}()
	w := bufio.NewWriterSize(c, 64<<10)
	for i := range n {
		if len(acks) == cap(acks) {
			w.Flush()
		}
		acks <- struct{}{}
		buf, _ := packets.AppendPublish(nil, packets.V311, topic, payload, 1, uint16(i%65535+1), false, false, nil)
		w.Write(buf)
	}
	w.Flush()
	for len(acks) > 0 {
		time.Sleep(time.Millisecond)
	}
}

// rawReceive reads up to n PUBLISHes, acknowledging each, and returns how
// many arrived before 5 s of silence.
func rawReceive(c net.Conn, n int) int {
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriterSize(c, 16<<10)
	got := 0
	for got < n {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		typ, body, err := readPacket(r)
		if err != nil {
			break
		}
		if typ&0xf0 != 0x30 {
			continue
		}
		got++
		tl := int(binary.BigEndian.Uint16(body))
		w.Write([]byte{0x40, 2, body[2+tl], body[3+tl]})
		if r.Buffered() == 0 {
			w.Flush()
		}
	}
	w.Flush()
	return got
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func packet(first byte, body []byte) []byte {
	b := packets.AppendVarInt([]byte{first}, len(body))
	return append(b, body...)
}

func readPacket(r *bufio.Reader) (byte, []byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for {
		c, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(c&0x7f) * mult
		if c&0x80 == 0 {
			break
		}
		mult <<= 7
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return first, body, err
}

// TestMeasureTakeover times takeovers across nodes: from the new CONNECT
// to its CONNACK (the claim and the old node's answer included), and to the
// old connection's end. Set MQTTD_CLUSTER_MEASURE=1 to run it.
func TestMeasureTakeover(t *testing.T) {
	if os.Getenv("MQTTD_CLUSTER_MEASURE") == "" {
		t.Skip("set MQTTD_CLUSTER_MEASURE=1 to measure")
	}
	ns := startNATS(t)
	nodes := []*testNode{startNode(t, ns, "t1"), startNode(t, ns, "t2")}
	const n = 200
	pct := func(d []time.Duration, p float64) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[int(float64(len(s)-1)*p)]
	}
	for _, across := range []bool{false, true} {
		connack, closed := takeovers(t, nodes, n, across)
		t.Logf("takeover (across nodes: %v), %d: CONNACK p50 %s p99 %s; old connection closed p50 %s p99 %s",
			across, n, pct(connack, 0.5), pct(connack, 0.99), pct(closed, 0.5), pct(closed, 0.99))
	}
}

// takeovers connects one client id n times, alternating between the two
// nodes (across) or on the first only.
func takeovers(t *testing.T, nodes []*testNode, n int, across bool) (connack, closed []time.Duration) {
	id := fmt.Sprintf("roaming-%v", across)
	old := rawConnect(t, nodes[0].addr, id)
	for i := range n {
		next := nodes[0]
		if across {
			next = nodes[(i+1)%2]
		}
		t0 := time.Now()
		cur := rawConnect(t, next.addr, id)
		connack = append(connack, time.Since(t0))
		old.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, old); err != nil {
			t.Fatalf("old connection not closed: %v", err)
		}
		closed = append(closed, time.Since(t0))
		old.Close()
		old = cur
	}
	old.Close()
	return connack, closed
}

// TestMeasureSuback times SUBSCRIBE to SUBACK for fresh filters: on a
// single node, and on a cluster node with two others, where the SUBACK
// waits for both to acknowledge the new filter (and for the retained
// bucket's status). Set MQTTD_CLUSTER_MEASURE=1 to run it.
func TestMeasureSuback(t *testing.T) {
	if os.Getenv("MQTTD_CLUSTER_MEASURE") == "" {
		t.Skip("set MQTTD_CLUSTER_MEASURE=1 to measure")
	}
	ns := startNATS(t)
	single := startNode(t, nil, "single")
	c1, c2, c3 := startNode(t, ns, "c1"), startNode(t, ns, "c2"), startNode(t, ns, "c3")
	synced(t, c1, c2, c3)
	const n = 300
	pct := func(d []time.Duration, p float64) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[int(float64(len(s)-1)*p)]
	}
	for _, tn := range []*testNode{single, c1} {
		c := rawConnect(t, tn.addr, "suback-"+tn.name)
		var d []time.Duration
		for i := range n {
			t0 := time.Now()
			rawSubscribe(t, c, fmt.Sprintf("sa/%s/%d/+", tn.name, i))
			d = append(d, time.Since(t0))
		}
		c.Close()
		t.Logf("SUBACK for a new filter, %s, %d: p50 %s p99 %s", tn.name, n, pct(d, 0.5), pct(d, 0.99))
	}
	if f := c1.node.stats.InterestTimeouts.Load(); f != 0 {
		t.Errorf("%d interest timeouts", f)
	}
}

// TestMeasureFilterMemory measures what a node holds per distinct plain
// filter (MQTTD_CLUSTER_FILTERS, default 100,000): heap and goroutine
// stacks of this process, with nats-server in a child process, before and
// after the filters are added. Set MQTTD_CLUSTER_MEASURE=1 to run it.
func TestMeasureFilterMemory(t *testing.T) {
	if os.Getenv("MQTTD_CLUSTER_MEASURE") == "" {
		t.Skip("set MQTTD_CLUSTER_MEASURE=1 to measure")
	}
	filters := 100000
	if v, err := strconv.Atoi(os.Getenv("MQTTD_CLUSTER_FILTERS")); err == nil && v > 0 {
		filters = v
	}
	url, _ := startNATSProcess(t)
	tn := startNodeAt(t, url, "mem", mqtt.Limits{})
	mem := func() (heap, stacks uint64, goroutines int) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse, ms.StackInuse, runtime.NumGoroutine()
	}
	h0, s0, g0 := mem()
	t0 := time.Now()
	for i := range filters {
		tn.node.Interest(fmt.Sprintf("devices/%d/cmd", i), true)
	}
	tn.node.Subscribed() // NATS has them all
	took := time.Since(t0)
	h1, s1, g1 := mem()
	t.Logf("%d filters in %s: heap +%.1f MiB, goroutine stacks +%.1f MiB, goroutines +%d: %.0f bytes per filter",
		filters, took.Round(time.Millisecond), float64(h1-h0)/(1<<20), float64(s1-s0)/(1<<20), g1-g0,
		float64(h1+s1-h0-s0)/float64(filters))
	for i := range filters {
		tn.node.Interest(fmt.Sprintf("devices/%d/cmd", i), false)
	}
}
