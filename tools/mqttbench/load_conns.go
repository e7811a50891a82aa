package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// The connections of a load run: opening them, obeying what a 5.0 broker
// announced, their reader goroutines, keep-alive pings and goodbyes.

// applyLimits makes every connection obey what a 5.0 broker announced in
// its CONNACK: Maximum QoS and Maximum Packet Size (checked once, failing
// the run: this benchmark does not downgrade), Receive Maximum (lowers
// the publisher's in-flight limit) and Server Keep Alive (sets the ping
// interval). With 3.1.1 the limits are the defaults and change nothing.
func (r *loadRun) applyLimits() error {
	r.keepAlive = r.cfg.keepAlive
	size := len(r.publishPacket(&publisher{topic: r.pubTopic(0)}, make([]byte, r.cfg.size)))
	check := func(who string, idx int, l serverLimits) error {
		if r.cfg.qos > l.maxQoS {
			return fmt.Errorf("%s %d: broker's Maximum QoS is %d, -qos %d asked", who, idx, l.maxQoS, r.cfg.qos)
		}
		if l.maxPacket > 0 && uint32(size) > l.maxPacket {
			return fmt.Errorf("%s %d: broker's Maximum Packet Size is %d bytes, a PUBLISH here has %d", who, idx, l.maxPacket, size)
		}
		if ka := time.Duration(l.keepAlive) * time.Second; ka > 0 && (r.keepAlive == 0 || ka < r.keepAlive) {
			r.keepAlive = ka
		}
		return nil
	}
	for _, p := range r.pubs {
		if err := check("publisher", p.idx, p.conn.lim); err != nil {
			return err
		}
		p.limit = min(r.inflightLimit(), uint64(p.conn.lim.receiveMax))
	}
	for _, s := range r.subs {
		if err := check("subscriber", s.idx, s.conn.lim); err != nil {
			return err
		}
	}
	return nil
}

// setup opens every connection: subscribers first, so that no message is
// published before every subscription is in place.
func (r *loadRun) setup() error {
	cfg := r.cfg
	r.pubs = make([]*publisher, cfg.pubs)
	r.subs = make([]*subscriber, cfg.subs)
	r.topics = make([][]byte, cfg.pubs)
	for i := range r.pubs {
		r.topics[i] = []byte(r.pubTopic(i))
		r.pubs[i] = &publisher{
			idx:   i,
			topic: r.pubTopic(i),
			done:  make([]paddedU64, r.subsPerPub()),
			wake:  make(chan struct{}, 1),
		}
	}
	for i := range r.subs {
		r.subs[i] = &subscriber{idx: i, filter: r.subFilter(i), tracks: make([]seqTrack, cfg.pubs)}
	}
	// Bounded parallelism: fast for hundreds of connections without a
	// connect storm that would measure the broker's accept backlog.
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	var failed atomic.Bool
	for _, s := range r.subs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			id := fmt.Sprintf("%ss%d", cfg.clientsPrefix, s.idx)
			m, err := dialMQTT(cfg.broker, r.connectOpts(id, true), cfg.connectTimeout, readBufSize)
			if err == nil {
				if err = m.subscribe(s.filter, cfg.qos, cfg.connectTimeout); err != nil {
					m.c.Close()
					err = fmt.Errorf("%s: %w", id, err)
				}
			}
			if err != nil {
				failed.Store(true)
				r.connErrs.add("subscriber %d: %v", s.idx, err)
				return
			}
			s.conn = m
		}()
	}
	wg.Wait()
	for _, p := range r.pubs {
		if failed.Load() {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			id := fmt.Sprintf("%sp%d", cfg.clientsPrefix, p.idx)
			m, err := dialMQTT(cfg.broker, r.connectOpts(id, false), cfg.connectTimeout, readBufSize)
			if err != nil {
				failed.Store(true)
				r.connErrs.add("publisher %d: %v", p.idx, err)
				return
			}
			p.conn = m
		}()
	}
	wg.Wait()
	if failed.Load() {
		r.closeAll()
		return fmt.Errorf("could not set up connections (%d errors)", r.connErrs.n)
	}
	if err := r.applyLimits(); err != nil {
		r.connErrs.add("%v", err)
		r.closeAll()
		return err
	}
	return nil
}

func (r *loadRun) startReaders() {
	for _, s := range r.subs {
		r.readers.Add(1)
		go func() {
			defer r.readers.Done()
			err := s.conn.readLoop(func(typ, flags byte, body []byte, now int64) error {
				return r.subPacket(s, typ, flags, body, now)
			}, r.now)
			if err != nil && !r.closing.Load() {
				r.connErrs.add("subscriber %d: %v", s.idx, err)
			}
		}()
	}
	for _, p := range r.pubs {
		r.readers.Add(1)
		go func() {
			defer r.readers.Done()
			err := p.conn.readLoop(func(typ, flags byte, body []byte, now int64) error {
				return r.pubPacket(p, typ, body, now)
			}, r.now)
			if err != nil && !r.closing.Load() {
				r.connErrs.add("publisher %d: %v", p.idx, err)
			}
		}()
	}
}

// closeAll says goodbye and closes every connection; readers then exit.
func (r *loadRun) closeAll() {
	r.closing.Store(true)
	for _, p := range r.pubs {
		if p.conn != nil {
			p.conn.c.Write(p.conn.disconnect())
			p.conn.c.Close()
		}
	}
	for _, s := range r.subs {
		if s.conn != nil {
			s.conn.c.Write(s.conn.disconnect())
			s.conn.c.Close()
		}
	}
}

// pinger sends PINGREQ on every connection at half the keep-alive, so that
// long runs and silent subscribers are not disconnected by the broker. A
// concurrent Write on a net.Conn is serialised by the runtime, so a
// PINGREQ never lands inside another packet.
func (r *loadRun) pinger(done <-chan struct{}) {
	if r.keepAlive <= 0 {
		return
	}
	t := time.NewTicker(r.keepAlive / 2)
	defer t.Stop()
	ping := appendPingreq(nil)
	for {
		select {
		case <-done:
			return
		case <-t.C:
			for _, p := range r.pubs {
				p.conn.c.Write(ping)
			}
			for _, s := range r.subs {
				s.conn.c.Write(ping)
			}
		}
	}
}
