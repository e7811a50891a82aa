package jsstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// With replicas above one, any replica may answer a direct get, and a
// follower may be a moment behind the leader: a node loading a session
// another node has just written could miss its last writes, or see an
// acknowledged entry still there. Direct get answers say nothing of how
// far their replica is, so on a replicated stream every read goes to the
// leader through the stream message get API, one message per request:
// slower, but what a commit acknowledged is what the next reader sees.

type storedMsg struct {
	Subject string    `json:"subject"`
	Seq     uint64    `json:"seq"`
	Data    []byte    `json:"data"`
	Time    time.Time `json:"time"`
}

// leaderGet reads one message through the stream leader: the last on
// subject last, or the first at or after seq on a subject matching next.
// Seq 0: none.
func (s *Store) leaderGet(ctx context.Context, last, next string, seq uint64) (storedMsg, error) {
	ctx, cancel := s.reqCtx(ctx)
	defer cancel()
	req := struct {
		Seq     uint64 `json:"seq,omitempty"`
		LastFor string `json:"last_by_subj,omitempty"`
		NextFor string `json:"next_by_subj,omitempty"`
	}{seq, last, next}
	body, _ := json.Marshal(req)
	r, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+s.stream, body)
	if err != nil {
		return storedMsg{}, fmt.Errorf("jsstore: get %s%s: %w", last, next, err)
	}
	var resp struct {
		Message *storedMsg `json:"message"`
		Error   *apiError  `json:"error"`
	}
	if err := json.Unmarshal(r.Data, &resp); err != nil {
		return storedMsg{}, fmt.Errorf("jsstore: get %s%s: %w", last, next, err)
	}
	if resp.Error != nil {
		if resp.Error.Code == 404 {
			return storedMsg{}, nil
		}
		return storedMsg{}, resp.Error
	}
	if resp.Message == nil {
		return storedMsg{}, fmt.Errorf("jsstore: get %s%s: empty answer", last, next)
	}
	return *resp.Message, nil
}

// leaderBatch is directBatch read through the leader, one message per
// request (requests for the subjects of a multi-subject read are made
// concurrently).
func (s *Store) leaderBatch(ctx context.Context, req directReq, fn func(subj string, seq uint64, data []byte) bool) (n int, more bool, next uint64, stop bool, err error) {
	next = req.Seq
	if len(req.MultiLast) > 0 {
		// One request per subject, but many in flight at once: the
		// leader answers each on its own, and a page of a queue is
		// read in a few round trips instead of one per message.
		got := make([]storedMsg, len(req.MultiLast))
		errs := make([]error, len(req.MultiLast))
		sem := make(chan struct{}, fetchParallel)
		var wg sync.WaitGroup
		for i, subj := range req.MultiLast {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				got[i], errs[i] = s.leaderGet(ctx, subj, "", 0)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return 0, false, next, false, err
		}
		// In stream order, as a batched direct get answers.
		slices.SortFunc(got, func(a, b storedMsg) int { return cmp.Compare(a.Seq, b.Seq) })
		for _, m := range got {
			if m.Seq == 0 {
				continue
			}
			n++
			if !fn(m.Subject, m.Seq, m.Data) {
				return n, true, next, true, nil
			}
		}
		return n, false, next, false, nil
	}
	for n < req.Batch {
		m, err := s.leaderGet(ctx, "", req.NextBySubj, max(next, 1))
		if err != nil || m.Seq == 0 {
			return n, false, next, false, err
		}
		n++
		next = m.Seq + 1
		if !fn(m.Subject, m.Seq, m.Data) {
			return n, true, next, true, nil
		}
	}
	return n, true, next, false, nil
}
