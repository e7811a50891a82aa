package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// pluginStats are the plugin's counters since it started. Its JSON form is
// what GET /stats serves and what mqttbench reads back, so fields are only
// ever added.
type pluginStats struct {
	UptimeS float64 `json:"uptime_s"`
	CPUS    float64 `json:"cpu_s"` // this process's CPU time, user + system

	Manifest       uint64 `json:"manifest"`
	Authenticate   uint64 `json:"authenticate"`
	AuthDistinct   uint64 `json:"authenticate_distinct"` // distinct (client_id, username, password)
	AuthMaxConcur  uint64 `json:"authenticate_max_concurrent"`
	TopicFiltering uint64 `json:"topic_filtering"`
	TopicSubscribe uint64 `json:"topic_subscribe"`
	TopicPublish   uint64 `json:"topic_publish"`
	TopicReceive   uint64 `json:"topic_receive"`

	EventPosts      uint64            `json:"event_posts"` // POST /events, i.e. batches
	Events          uint64            `json:"events"`
	EventsByType    map[string]uint64 `json:"events_by_type,omitempty"`
	EventBytes      uint64            `json:"event_bytes"`
	MaxBatch        uint64            `json:"max_batch"`
	Duplicates      uint64            `json:"duplicate_events"` // an event id seen before
	BadEvents       uint64            `json:"bad_events"`       // events missing a required field (checked batches only)
	BadRequests     uint64            `json:"bad_requests"`     // bodies that are not the contract's JSON
	ValidatedPosts  uint64            `json:"validated_posts"`  // batches checked in full
	ValidatedEvents uint64            `json:"validated_events"` // the events in them
	ChecksPending   uint64            `json:"checks_pending"`   // batches answered whose full check has not finished

	Errors []string `json:"errors,omitempty"` // the first few problems, for humans
}

// minus is s - o for every counter (o taken earlier from the same plugin).
// UptimeS and CPUS become the elapsed wall and CPU time; maxima, pending
// checks and errors are s's.
func (s pluginStats) minus(o pluginStats) pluginStats {
	d := s
	d.UptimeS -= o.UptimeS
	d.CPUS -= o.CPUS
	d.Manifest -= o.Manifest
	d.Authenticate -= o.Authenticate
	d.AuthDistinct -= o.AuthDistinct
	d.TopicFiltering -= o.TopicFiltering
	d.TopicSubscribe -= o.TopicSubscribe
	d.TopicPublish -= o.TopicPublish
	d.TopicReceive -= o.TopicReceive
	d.EventPosts -= o.EventPosts
	d.Events -= o.Events
	d.EventBytes -= o.EventBytes
	d.Duplicates -= o.Duplicates
	d.BadEvents -= o.BadEvents
	d.BadRequests -= o.BadRequests
	d.ValidatedPosts -= o.ValidatedPosts
	d.ValidatedEvents -= o.ValidatedEvents
	d.EventsByType = nil
	for k, v := range s.EventsByType {
		if v -= o.EventsByType[k]; v > 0 {
			if d.EventsByType == nil {
				d.EventsByType = map[string]uint64{}
			}
			d.EventsByType[k] = v
		}
	}
	return d
}

func (s *pluginServer) stats() pluginStats {
	st := pluginStats{
		UptimeS:         time.Since(s.start).Seconds(),
		Manifest:        s.manifestN.Load(),
		Authenticate:    s.authN.Load(),
		AuthMaxConcur:   uint64(s.authMax.Load()),
		TopicFiltering:  s.topicN.Load(),
		TopicSubscribe:  s.topicSub.Load(),
		TopicPublish:    s.topicPub.Load(),
		TopicReceive:    s.topicRcv.Load(),
		EventPosts:      s.posts.Load(),
		Events:          s.events.Load(),
		EventBytes:      s.eventBytes.Load(),
		BadEvents:       s.badEvents.Load(),
		BadRequests:     s.badRequests.Load(),
		ValidatedPosts:  s.validated.Load(),
		ValidatedEvents: s.validatedEvents.Load(),
		ChecksPending:   uint64(s.checksPending()),
	}
	if cpu, err := procCPU(0); err == nil {
		st.CPUS = cpu.Seconds()
	}
	s.mu.Lock()
	st.AuthDistinct = uint64(len(s.authKeys))
	st.Duplicates = s.dups
	st.MaxBatch = s.maxBatch
	if len(s.byType) > 0 {
		st.EventsByType = make(map[string]uint64, len(s.byType))
		for k, v := range s.byType {
			st.EventsByType[k] = *v
		}
	}
	st.Errors = slices.Clone(s.errs)
	s.mu.Unlock()
	return st
}

func (st *pluginStats) writeText(w io.Writer) {
	fmt.Fprintf(w, "plugin     up %.1fs, %.2fs CPU\n", st.UptimeS, st.CPUS)
	fmt.Fprintf(w, "calls      manifest %d, authenticate %d (%d distinct, at most %d at once), topic_filtering %d (subscribe %d, publish %d, receive %d)\n",
		st.Manifest, st.Authenticate, st.AuthDistinct, st.AuthMaxConcur, st.TopicFiltering, st.TopicSubscribe, st.TopicPublish, st.TopicReceive)
	fmt.Fprintf(w, "events     %d in %d batches (largest %d), %d bytes; by type %v\n", st.Events, st.EventPosts, st.MaxBatch, st.EventBytes, st.EventsByType)
	fmt.Fprintf(w, "checked    %d batches (%d events) in full, the rest counted only\n", st.ValidatedPosts, st.ValidatedEvents)
	fmt.Fprintf(w, "problems   %d bad requests, %d bad events, %d duplicate events\n", st.BadRequests, st.BadEvents, st.Duplicates)
	for _, e := range st.Errors {
		fmt.Fprintf(w, "  - %s\n", e)
	}
}
