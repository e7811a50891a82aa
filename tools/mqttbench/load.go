package main

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// loadConfig is everything a load run needs, after flag validation.
type loadConfig struct {
	broker         string
	scenario       string // pairs, fanout or fanin
	pubs, subs     int
	qos            byte
	size           int
	duration       time.Duration
	warmup         time.Duration
	drain          time.Duration
	rate           float64 // messages per second per publisher; 0 = closed loop
	window         int     // max messages outstanding per publisher; 0 = unbounded
	inflight       int     // max unacknowledged QoS 1/2 publishes per publisher
	burst          int     // free window slots needed before a blocked publisher resumes
	pid            int     // broker process, 0 = unknown
	keepAlive      time.Duration
	connectTimeout time.Duration
	topicPrefix    string
	clientsPrefix  string
	username       string
	password       string
	v5             bool // MQTT 5.0 instead of 3.1.1
	v5Props        bool // 5.0: every PUBLISH carries a message expiry and a user property
	persistentSubs bool // subscribers keep their session: 3.1.1 clean session 0, 5.0 Session Expiry
	probes         probes
}

// The properties -v5-props sends and expects back at every subscriber. The
// expiry is long enough never to expire during a run: the point is that
// the broker has to keep, count down and re-encode it.
const (
	v5PropsExpiry = 3600
	v5PropsKey    = "mqttbench"
	v5PropsValue  = "v5-props"
)

// loadRun is one execution of a scenario.
type loadRun struct {
	cfg  loadConfig
	base time.Time // monotonic origin of every timestamp in the run

	// Measurement window in ns since base; set once publishing starts and
	// read by subscribers, hence atomic.
	winStart, winEnd atomic.Int64

	stop    atomic.Bool
	stopCh  chan struct{}
	closing atomic.Bool

	pubs      []*publisher
	subs      []*subscriber
	topics    [][]byte // publisher index -> topic, for routing checks
	props     []byte   // encoded PUBLISH properties (5.0; empty unless -v5-props)
	keepAlive time.Duration
	connErrs  errorList
	protoErrs errorList

	readers sync.WaitGroup
}

func (r *loadRun) now() int64 { return int64(time.Since(r.base)) }

func (r *loadRun) inWindow(t int64) bool {
	return t >= r.winStart.Load() && t < r.winEnd.Load()
}

// slot is the index of subscriber s in publisher p's done slice.
func (r *loadRun) slot(s *subscriber) int {
	if r.cfg.scenario == "pairs" {
		return 0
	}
	return s.idx
}

// expects reports whether subscriber s should receive publisher p's
// messages.
func (r *loadRun) expects(s *subscriber, p int) bool {
	return r.cfg.scenario != "pairs" || p == s.idx
}

func (r *loadRun) pubTopic(i int) string {
	if r.cfg.scenario == "fanout" {
		return r.cfg.topicPrefix + "/all"
	}
	return r.cfg.topicPrefix + "/" + strconv.Itoa(i)
}

func (r *loadRun) subFilter(i int) string {
	switch r.cfg.scenario {
	case "pairs":
		return r.cfg.topicPrefix + "/" + strconv.Itoa(i)
	case "fanout":
		return r.cfg.topicPrefix + "/all"
	default:
		return r.cfg.topicPrefix + "/+"
	}
}

func (r *loadRun) subsPerPub() int {
	if r.cfg.scenario == "pairs" {
		return 1
	}
	return r.cfg.subs
}

func (r *loadRun) connectOpts(id string, subscriber bool) connectOptions {
	o := connectOptions{
		clientID:     id,
		keepAlive:    uint16(r.cfg.keepAlive / time.Second),
		cleanSession: true,
		username:     r.cfg.username,
		password:     r.cfg.password,
		v5:           r.cfg.v5,
	}
	if subscriber && r.cfg.persistentSubs {
		// A persistent session is what makes a broker with a store write
		// each QoS 1/2 delivery before acknowledging its publisher. It
		// starts clean all the same in 5.0 (Clean Start with an expiry),
		// so a leftover session from an earlier run is not resumed.
		o.cleanSession = r.cfg.v5
		o.sessionExpiry = persistentSessionExpiry
	}
	return o
}

// persistentSessionExpiry is the 5.0 Session Expiry Interval of
// -persistent-subs: an hour, so a run's sessions do not pile up for ever.
const persistentSessionExpiry = 3600

// publishPacket encodes publisher p's PUBLISH with the given payload; the
// publisher rewrites its packet id and payload in place.
func (r *loadRun) publishPacket(p *publisher, payload []byte) []byte {
	if r.cfg.v5 {
		return appendPublish5(nil, p.topic, r.cfg.qos, 1, r.props, payload)
	}
	return appendPublish(nil, p.topic, r.cfg.qos, 1, payload)
}

// complete reports whether every expected delivery and ack has arrived,
// and a progress counter that changes while anything still arrives.
func (r *loadRun) complete() (bool, uint64) {
	var progress uint64
	done := true
	for _, p := range r.pubs {
		a := p.acked.Load()
		progress += a
		if r.cfg.qos > 0 && a != p.sent.Load() {
			done = false
		}
	}
	for _, s := range r.subs {
		progress += s.recv.Load()
		var want uint64
		for i, p := range r.pubs {
			if r.expects(s, i) {
				want += p.sent.Load()
			}
		}
		if s.unique.Load() < want {
			done = false
		}
	}
	return done, progress
}

// cpuSample is CPU time of the broker, this process and the whole machine
// at one moment.
type cpuSample struct {
	self, broker, system time.Duration
	brokerErr, systemErr error
}

func (r *loadRun) sampleCPU() cpuSample {
	var c cpuSample
	c.system, c.systemErr = systemBusy()
	c.self, _ = procCPU(0)
	if r.cfg.pid > 0 {
		c.broker, c.brokerErr = procCPU(r.cfg.pid)
	}
	return c
}

// execute runs the scenario and returns its result.
func (r *loadRun) execute() (*result, error) {
	cfg := r.cfg
	r.base = time.Now()
	r.stopCh = make(chan struct{})
	// Until publishing starts nothing is in the window.
	r.winStart.Store(1<<62 - 1)
	r.winEnd.Store(1<<62 - 1)
	if cfg.pid > 0 {
		if _, err := procCPU(cfg.pid); err != nil {
			return nil, fmt.Errorf("-pid %d: %w", cfg.pid, err)
		}
	}
	if cfg.v5Props {
		r.props = appendPublishProps(nil, v5PropsExpiry, v5PropsKey, v5PropsValue)
	}
	var probeErrs errorList
	pre := cfg.probes.snap(&probeErrs)
	if err := r.setup(); err != nil {
		return r.collect(cpuSample{}, cpuSample{}, 0), err
	}
	r.startReaders()
	pingDone := make(chan struct{})
	go r.pinger(pingDone)

	start := r.now()
	r.winEnd.Store(start + int64(cfg.warmup+cfg.duration))
	r.winStart.Store(start + int64(cfg.warmup))
	var pubWG sync.WaitGroup
	for _, p := range r.pubs {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			r.publish(p, start)
		}()
	}
	time.Sleep(time.Duration(r.winStart.Load() - r.now()))
	before := r.sampleCPU()
	snapStart := cfg.probes.snap(&probeErrs)
	time.Sleep(time.Duration(r.winEnd.Load() - r.now()))
	after := r.sampleCPU()
	snapEnd := cfg.probes.snap(&probeErrs)
	r.stop.Store(true)
	close(r.stopCh)
	pubWG.Wait()

	// Drain: wait for stragglers until everything arrived, nothing has
	// moved for a second (lost messages will not come), or -drain expires.
	deadline := time.Now().Add(cfg.drain)
	lastProgress := time.Now()
	_, last := r.complete()
	for time.Now().Before(deadline) {
		done, prog := r.complete()
		if done {
			break
		}
		if prog != last {
			last, lastProgress = prog, time.Now()
		} else if time.Since(lastProgress) > time.Second {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(pingDone)
	r.closeAll()
	r.readers.Wait()
	res := r.collect(before, after, cfg.duration)
	if cfg.probes != (probes{}) {
		final := cfg.probes.settle(&probeErrs, 10*time.Second)
		res.addProbes(cfg.probes, pre, snapStart, snapEnd, final, &probeErrs)
	}
	return res, nil
}
