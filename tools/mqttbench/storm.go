package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// mqttbench storm: N clients connect at once. Every TCP connection is opened
// first (with bounded parallelism, so the broker's accept backlog is not
// what is measured); then all of a burst send CONNECT together and the
// time from that moment to each CONNACK is recorded. That is what an
// authentication plugin sees when a fleet reconnects after an outage.
//
// -same-id gives every client the same client id, so with the same user
// name and password the broker's authenticate requests are identical
// (the broker's decision cache key covers client_id, username, password,
// peer IP and listener). Those clients take each other's
// session over; a connection closed after its CONNACK is expected then
// and counted, not a failure.

type stormConfig struct {
	broker         string
	conns          int
	bursts         int // conns are split into this many bursts, one after another
	sameID         bool
	clientsPrefix  string
	username       string
	password       string
	v5             bool
	keepAlive      uint16
	connectTimeout time.Duration
	expectCode     int // every CONNACK must carry this code; -1 = any
	probes         probes
}

type stormResult struct {
	Label  string `json:"label,omitempty"`
	Case   string `json:"case,omitempty"`
	Mode   string `json:"mode"`
	MQTT   string `json:"mqtt"`
	Conns  int    `json:"conns"`
	Bursts int    `json:"bursts"`
	SameID bool   `json:"same_id"`

	Answered  int            `json:"answered"` // CONNACKs received
	Accepted  int            `json:"accepted"`
	Refused   map[string]int `json:"refused,omitempty"` // by code, "0x05"
	NoConnack int            `json:"no_connack"`        // failed before a CONNACK
	// TakenOver counts, with -same-id, connections the broker closed
	// before their CONNACK arrived: another connection with the same id
	// took the session over first. Not a failure.
	TakenOver int `json:"taken_over,omitempty"`
	// LastConnackMs is, for the slowest burst, the time from its CONNECTs
	// going out to its last CONNACK; BurstsMs lists every burst's.
	LastConnackMs float64   `json:"last_connack_ms"`
	BurstsMs      []float64 `json:"bursts_ms"`
	P50Ms         float64   `json:"p50_ms"`
	P99Ms         float64   `json:"p99_ms"`
	DialS         float64   `json:"dial_s"` // opening the TCP connections, before the storm

	Plugin        *pluginStats       `json:"plugin,omitempty"` // what the bench plugin saw (delta)
	BrokerMetrics map[string]float64 `json:"broker_metrics,omitempty"`

	OK     bool     `json:"ok"`
	Errors []string `json:"errors,omitempty"`
}

func runStorm(cfg stormConfig) *stormResult {
	res := &stormResult{Mode: "storm", MQTT: "3.1.1", Conns: cfg.conns, Bursts: cfg.bursts, SameID: cfg.sameID,
		Refused: map[string]int{}}
	if cfg.v5 {
		res.MQTT = "5.0"
	}
	var errs errorList
	if lim, err := raiseFileLimit(); err != nil {
		errs.add("raising RLIMIT_NOFILE: %v", err)
	} else if uint64(cfg.conns)+64 > lim {
		errs.add("-conns %d needs more file descriptors than RLIMIT_NOFILE %d allows", cfg.conns, lim)
	}
	if errs.n > 0 {
		res.Errors = errs.first
		return res
	}
	pre := cfg.probes.snap(&errs)
	var lat []time.Duration
	for b := range cfg.bursts {
		n := cfg.conns / cfg.bursts
		if b < cfg.conns%cfg.bursts {
			n++
		}
		l, ms := stormBurst(cfg, b, n, res, &errs)
		lat = append(lat, l...)
		res.BurstsMs = append(res.BurstsMs, ms)
		res.LastConnackMs = max(res.LastConnackMs, ms)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
		res.P50Ms, res.P99Ms = q(0.50), q(0.99)
	}
	if cfg.probes != (probes{}) {
		final := cfg.probes.snap(&errs)
		if cfg.probes.plugin != "" && errs.n == 0 {
			d := final.plugin.minus(pre.plugin)
			res.Plugin = &d
			if d.BadRequests > 0 {
				errs.add("plugin received %d bad requests: %v", d.BadRequests, d.Errors)
			}
		}
		if pre.metrics != nil && final.metrics != nil {
			res.BrokerMetrics = metricsDelta(pre.metrics, final.metrics)
		}
	}
	if len(res.Refused) == 0 {
		res.Refused = nil
	}
	if res.NoConnack > 0 {
		errs.add("%d of %d connections got no CONNACK", res.NoConnack, res.Conns)
	}
	if cfg.expectCode >= 0 {
		if got := res.Answered - res.countCode(byte(cfg.expectCode)); got > 0 {
			errs.add("%d CONNACKs did not carry the expected code 0x%02x (refused: %v)", got, cfg.expectCode, res.Refused)
		}
	}
	res.Errors = errs.list()
	res.OK = errs.n == 0
	return res
}

// countCode is how many CONNACKs carried code.
func (res *stormResult) countCode(code byte) int {
	if code == 0 {
		return res.Accepted
	}
	return res.Refused[fmt.Sprintf("0x%02x", code)]
}

// stormAnswer is what one client of a burst got.
type stormAnswer struct {
	code      byte
	lat       time.Duration // from the burst's start to the CONNACK
	ok        bool          // a CONNACK arrived
	takenOver bool          // -same-id: closed by the broker before its CONNACK
}

// stormBurst runs one burst of n clients and returns the latency of each
// CONNACK and the time to the last one, in ms.
func stormBurst(cfg stormConfig, burst, n int, res *stormResult, errs *errorList) ([]time.Duration, float64) {
	t := time.Now()
	conns := stormDial(cfg, burst, n, errs)
	res.DialS += time.Since(t).Seconds()
	answers := stormConnect(cfg, burst, conns, errs)
	bye := appendDisconnect(nil)
	if cfg.v5 {
		bye = appendDisconnect5(nil, reasonSuccess)
	}
	var lat []time.Duration
	var last time.Duration
	for i, a := range answers {
		if conns[i] != nil {
			conns[i].c.Write(bye)
			conns[i].c.Close()
		}
		if a.takenOver {
			res.TakenOver++
			continue
		}
		if !a.ok {
			res.NoConnack++
			continue
		}
		res.Answered++
		lat = append(lat, a.lat)
		last = max(last, a.lat)
		if a.code == 0 {
			res.Accepted++
		} else {
			res.Refused[fmt.Sprintf("0x%02x", a.code)]++
		}
	}
	return lat, float64(last) / 1e6
}

// stormDial opens a burst's n TCP connections, 64 at a time, so that the
// broker's accept backlog is not what the storm measures. A connection
// that failed is nil.
func stormDial(cfg stormConfig, burst, n int, errs *errorList) []*mconn {
	conns := make([]*mconn, n)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := net.DialTimeout("tcp", cfg.broker, cfg.connectTimeout)
			if err != nil {
				errs.add("burst %d, connection %d: %v", burst, i, err)
				return
			}
			conns[i] = &mconn{c: c, buf: make([]byte, 512), v5: cfg.v5, lim: defaultLimits}
		}()
	}
	wg.Wait()
	return conns
}

// stormConnect lets every open connection of a burst send CONNECT at the
// same moment and waits for each answer.
func stormConnect(cfg stormConfig, burst int, conns []*mconn, errs *errorList) []stormAnswer {
	answers := make([]stormAnswer, len(conns))
	start := make(chan struct{})
	var wg sync.WaitGroup
	var t0 time.Time
	for i, m := range conns {
		if m == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("%sc%d", cfg.clientsPrefix, burst*cfg.conns+i)
			if cfg.sameID {
				id = cfg.clientsPrefix + "storm"
			}
			o := connectOptions{clientID: id, keepAlive: cfg.keepAlive, cleanSession: true,
				username: cfg.username, password: cfg.password, v5: cfg.v5}
			<-start
			code, err := m.handshake(o, cfg.connectTimeout)
			if err != nil && cfg.sameID && (errors.Is(err, errClosedByBroker) || errors.Is(err, syscall.ECONNRESET)) {
				answers[i].takenOver = true
				return
			}
			if err != nil {
				errs.add("burst %d: %v", burst, err)
				return
			}
			answers[i] = stormAnswer{code: code, lat: time.Since(t0), ok: true}
		}()
	}
	t0 = time.Now()
	close(start)
	wg.Wait()
	return answers
}

func (res *stormResult) writeText(w io.Writer) {
	ids := "distinct client ids"
	if res.SameID {
		ids = "one client id"
	}
	fmt.Fprintf(w, "storm      %d MQTT %s clients, %s, in %d burst(s) (TCP connections opened in %.2fs beforehand)\n",
		res.Conns, res.MQTT, ids, res.Bursts, res.DialS)
	var refused []string
	for k, v := range res.Refused {
		refused = append(refused, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(refused)
	fmt.Fprintf(w, "connack    %d answered: %d accepted, refused [%s], %d without CONNACK",
		res.Answered, res.Accepted, strings.Join(refused, ", "), res.NoConnack)
	if res.SameID {
		fmt.Fprintf(w, ", %d closed before their CONNACK (taken over)", res.TakenOver)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "time       last CONNACK after %.1f ms (bursts %v ms); p50 %.1f ms, p99 %.1f ms\n",
		res.LastConnackMs, res.BurstsMs, res.P50Ms, res.P99Ms)
	if p := res.Plugin; p != nil {
		fmt.Fprintf(w, "plugin     authenticate called %d times (%d distinct requests, at most %d at once)\n",
			p.Authenticate, p.AuthDistinct, p.AuthMaxConcur)
	}
	printVerdict(w, res.OK, res.Errors)
}
