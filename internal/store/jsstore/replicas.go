package jsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// With replicas above one, any replica may answer a direct get, and a
// follower may be a moment behind the leader: a node loading a session
// another node has just written could miss its last writes. So, on a
// replicated stream, single reads go to the leader (the stream message
// get API), and a batched read is taken only from a replica that has
// applied everything the leader had when the read began (its barrier,
// the stream's last sequence); an empty answer is confirmed with the
// leader.

type barrierKey struct{}

// errBehind is a batched read answered by a replica behind the barrier.
var errBehind = errors.New("jsstore: replica behind the leader")

// readCtx is the context of one read operation: on a replicated stream it
// carries the barrier.
func (s *Store) readCtx() (context.Context, error) {
	ctx := context.Background()
	if s.opts.Replicas <= 1 {
		return ctx, nil
	}
	ctx2, cancel := s.reqCtx(ctx)
	defer cancel()
	r, err := s.nc.RequestWithContext(ctx2, "$JS.API.STREAM.INFO."+s.stream, nil)
	if err != nil {
		return nil, fmt.Errorf("jsstore: stream info: %w", err)
	}
	var info struct {
		State struct {
			LastSeq uint64 `json:"last_seq"`
		} `json:"state"`
		Error *apiError `json:"error"`
	}
	if err := json.Unmarshal(r.Data, &info); err != nil {
		return nil, fmt.Errorf("jsstore: stream info: %w", err)
	}
	if info.Error != nil {
		return nil, info.Error
	}
	return context.WithValue(ctx, barrierKey{}, info.State.LastSeq), nil
}

func barrier(ctx context.Context) (uint64, bool) {
	b, ok := ctx.Value(barrierKey{}).(uint64)
	return b, ok
}

type storedMsg struct {
	Subject string `json:"subject"`
	Seq     uint64 `json:"seq"`
	Data    []byte `json:"data"`
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

// behindRetries and behindWait bound the wait for a replica to catch up
// before a read fails.
const (
	behindRetries = 50
	behindWait    = 20 * time.Millisecond
)
