package main

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// idleConfig drives `mqttbench idle`: how much memory does a broker spend on a
// connection that does nothing?
type idleConfig struct {
	broker         string
	conns          int
	pid            int
	hold           time.Duration // settle time before the second RSS reading
	keepAlive      uint16        // seconds; long, so no PINGREQ is needed while holding
	connectTimeout time.Duration
	clientsPrefix  string
	username       string
	password       string
	v5             bool
}

type idleResult struct {
	Label        string   `json:"label,omitempty"`
	Mode         string   `json:"mode"`
	MQTT         string   `json:"mqtt,omitempty"`
	Conns        int      `json:"conns"`
	Connected    int      `json:"connected"`
	Dropped      int64    `json:"dropped"`
	ConnectSecs  float64  `json:"connect_s"`
	BrokerPID    int      `json:"broker_pid,omitempty"`
	RSSBeforeKB  int64    `json:"rss_before_kb,omitempty"`
	RSSAfterKB   int64    `json:"rss_after_kb,omitempty"`
	KBPerConn    float64  `json:"kb_per_conn,omitempty"`
	FileLimit    uint64   `json:"file_limit"`
	BrokerCPUPct float64  `json:"broker_cpu_pct_holding,omitempty"`
	OK           bool     `json:"ok"`
	Errors       []string `json:"errors,omitempty"`
}

// idleRun is one run of the idle subcommand: its connections and what
// their readers saw.
type idleRun struct {
	cfg     idleConfig
	errs    errorList
	conns   []net.Conn
	closing atomic.Bool  // set before we close the connections ourselves
	dropped atomic.Int64 // connections the broker closed while holding
	readers sync.WaitGroup
}

// runIdle opens cfg.conns connections, each sending CONNECT with a long
// keep-alive and then nothing, and reads the broker's RSS before and
// after. Every connection gets a reader goroutine so that a broker
// closing idle connections is noticed rather than mistaken for success.
func runIdle(cfg idleConfig) *idleResult {
	res := &idleResult{Mode: "idle", MQTT: "3.1.1", Conns: cfg.conns, BrokerPID: cfg.pid}
	if cfg.v5 {
		res.MQTT = "5.0"
	}
	r := &idleRun{cfg: cfg, conns: make([]net.Conn, cfg.conns)}
	lim, err := raiseFileLimit()
	res.FileLimit = lim
	if err != nil {
		r.errs.add("raising RLIMIT_NOFILE: %v", err)
	} else if uint64(cfg.conns)+64 > lim {
		r.errs.add("-conns %d needs more file descriptors than RLIMIT_NOFILE %d allows", cfg.conns, lim)
	}
	if cfg.pid > 0 {
		if res.RSSBeforeKB, err = procRSS(cfg.pid); err != nil {
			r.errs.add("broker pid %d: %v", cfg.pid, err)
		}
	}
	if r.errs.n > 0 {
		res.Errors = r.errs.first
		return res
	}
	t0 := time.Now()
	res.Connected = r.open()
	res.ConnectSecs = time.Since(t0).Seconds()
	r.hold(res)
	r.closeAll()
	res.Dropped = r.dropped.Load()
	if res.Dropped > 0 {
		r.errs.add("%d idle connections were closed by the broker while holding", res.Dropped)
	}
	res.Errors = r.errs.list()
	res.OK = r.errs.n == 0
	return res
}

// open connects every connection (32 at a time) and starts its reader; it
// returns how many connected.
func (r *idleRun) open() int {
	cfg := r.cfg
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range r.conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			o := connectOptions{
				clientID:     fmt.Sprintf("%si%d", cfg.clientsPrefix, i),
				keepAlive:    cfg.keepAlive,
				cleanSession: true,
				username:     cfg.username,
				password:     cfg.password,
				v5:           cfg.v5,
			}
			m, err := dialMQTT(cfg.broker, o, cfg.connectTimeout, 256)
			if err != nil {
				r.errs.add("connection %d: %v", i, err)
				return
			}
			r.conns[i] = m.c
			r.readers.Add(1)
			go r.read(m.c)
		}()
	}
	wg.Wait()
	n := 0
	for _, c := range r.conns {
		if c != nil {
			n++
		}
	}
	return n
}

// read waits for the connection to end: nothing should arrive, so a small
// buffer suffices and keeps the load generator's own footprint low.
func (r *idleRun) read(c net.Conn) {
	defer r.readers.Done()
	var b [64]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			if !r.closing.Load() {
				r.dropped.Add(1)
			}
			return
		}
	}
}

// hold keeps every connection open for cfg.hold and then reads the
// broker's RSS and the CPU it spent meanwhile.
func (r *idleRun) hold(res *idleResult) {
	pid := r.cfg.pid
	var cpu0 time.Duration
	if pid > 0 {
		cpu0, _ = procCPU(pid)
	}
	time.Sleep(r.cfg.hold)
	if pid <= 0 {
		return
	}
	cpu1, _ := procCPU(pid)
	res.BrokerCPUPct = 100 * (cpu1 - cpu0).Seconds() / r.cfg.hold.Seconds()
	var err error
	if res.RSSAfterKB, err = procRSS(pid); err != nil {
		r.errs.add("broker pid %d: %v", pid, err)
	} else if res.Connected > 0 {
		res.KBPerConn = float64(res.RSSAfterKB-res.RSSBeforeKB) / float64(res.Connected)
	}
}

// closeAll says goodbye on every connection and waits for the readers.
func (r *idleRun) closeAll() {
	r.closing.Store(true)
	bye := appendDisconnect(nil)
	if r.cfg.v5 {
		bye = appendDisconnect5(nil, reasonSuccess)
	}
	for _, c := range r.conns {
		if c != nil {
			c.Write(bye)
			c.Close()
		}
	}
	r.readers.Wait()
}

func (res *idleResult) writeText(w io.Writer) {
	fmt.Fprintf(w, "idle       %d of %d MQTT %s connections open (connect took %.2fs; RLIMIT_NOFILE %d)\n",
		res.Connected, res.Conns, res.MQTT, res.ConnectSecs, res.FileLimit)
	if res.BrokerPID > 0 {
		fmt.Fprintf(w, "broker     VmRSS %d kB -> %d kB: %.2f kB per idle connection; %.1f%% CPU while idle (pid %d)\n",
			res.RSSBeforeKB, res.RSSAfterKB, res.KBPerConn, res.BrokerCPUPct, res.BrokerPID)
	}
	printVerdict(w, res.OK, res.Errors)
}
