package main

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// idleConfig drives -mode idle: how much memory does a broker spend on a
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

// runIdle opens cfg.conns connections, each sending CONNECT with a long
// keep-alive and then nothing, and reads the broker's RSS before and
// after. Every connection gets a reader goroutine so that a broker
// closing idle connections is noticed rather than mistaken for success.
func runIdle(cfg idleConfig) *idleResult {
	res := &idleResult{Mode: "idle", MQTT: "3.1.1", Conns: cfg.conns, BrokerPID: cfg.pid}
	if cfg.v5 {
		res.MQTT = "5.0"
	}
	var errs errorList
	lim, err := raiseFileLimit()
	res.FileLimit = lim
	if err != nil {
		errs.add("raising RLIMIT_NOFILE: %v", err)
	} else if uint64(cfg.conns)+64 > lim {
		errs.add("-conns %d needs more file descriptors than RLIMIT_NOFILE %d allows", cfg.conns, lim)
	}
	if cfg.pid > 0 {
		if res.RSSBeforeKB, err = procRSS(cfg.pid); err != nil {
			errs.add("broker pid %d: %v", cfg.pid, err)
		}
	}
	if errs.n > 0 {
		res.Errors = errs.first
		return res
	}

	conns := make([]net.Conn, cfg.conns)
	var closing atomic.Bool
	var dropped atomic.Int64
	var readers sync.WaitGroup
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range conns {
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
				errs.add("connection %d: %v", i, err)
				return
			}
			conns[i] = m.c
			readers.Add(1)
			go func() {
				defer readers.Done()
				// Nothing should arrive; a small buffer suffices and
				// keeps the load generator's own footprint low.
				var b [64]byte
				for {
					if _, err := m.c.Read(b[:]); err != nil {
						if !closing.Load() {
							dropped.Add(1)
						}
						return
					}
				}
			}()
		}()
	}
	wg.Wait()
	res.ConnectSecs = time.Since(t0).Seconds()
	for _, c := range conns {
		if c != nil {
			res.Connected++
		}
	}

	var cpu0 time.Duration
	if cfg.pid > 0 {
		cpu0, _ = procCPU(cfg.pid)
	}
	time.Sleep(cfg.hold)
	if cfg.pid > 0 {
		cpu1, _ := procCPU(cfg.pid)
		res.BrokerCPUPct = 100 * (cpu1 - cpu0).Seconds() / cfg.hold.Seconds()
		if res.RSSAfterKB, err = procRSS(cfg.pid); err != nil {
			errs.add("broker pid %d: %v", cfg.pid, err)
		} else if res.Connected > 0 {
			res.KBPerConn = float64(res.RSSAfterKB-res.RSSBeforeKB) / float64(res.Connected)
		}
	}

	closing.Store(true)
	bye := appendDisconnect(nil)
	if cfg.v5 {
		bye = appendDisconnect5(nil, reasonSuccess)
	}
	for _, c := range conns {
		if c != nil {
			c.Write(bye)
			c.Close()
		}
	}
	readers.Wait()
	res.Dropped = dropped.Load()
	if res.Dropped > 0 {
		errs.add("%d idle connections were closed by the broker while holding", res.Dropped)
	}
	res.Errors = errs.first
	if extra := errs.n - len(errs.first); extra > 0 {
		res.Errors = append(res.Errors, fmt.Sprintf("... and %d more errors", extra))
	}
	res.OK = errs.n == 0
	return res
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
