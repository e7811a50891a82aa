package jsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// The JetStream requests this store makes itself, below the nats.go
// jetstream package: batched direct gets (one request, many messages) and
// atomic batch publishes, which that package does not offer.

// errConflict is a failed compare-and-set: another writer changed a
// subject this store had read. The commit is retried from fresh reads.
var errConflict = errors.New("jsstore: concurrent write")

// errNotConnected fails a commit at once while the connection is down.
var errNotConnected = errors.New("jsstore: not connected to NATS")

// dialWriter opens the store's connection for writes: the caller's
// options, without a reconnect buffer. nats.go keeps what is published
// while it reconnects and sends it once back, which would apply a batch
// already reported as failed; with no buffer such a publish fails at once
// (and what was buffered before the connection broke is dropped with it).
func dialWriter(nc *nats.Conn) (*nats.Conn, error) {
	o := nc.Opts
	o.ReconnectBufSize = -1
	o.Name = strings.TrimSpace(o.Name + " (store writes)")
	// The caller's handlers report its own connection; this one's state
	// shows in the commits that fail.
	o.DisconnectedErrCB, o.DisconnectedCB, o.ReconnectedCB, o.ClosedCB = nil, nil, nil, nil
	o.AsyncErrorCB, o.DiscoveredServersCB, o.LameDuckModeHandler, o.ConnectedCB = nil, nil, nil, nil
	o.ReconnectErrCB = nil
	o.RetryOnFailedConnect = false
	if url := nc.ConnectedUrl(); url != "" {
		o.Url = url
	}
	wc, err := o.Connect()
	if err != nil {
		return nil, fmt.Errorf("jsstore: connection for writes: %w", err)
	}
	return wc, nil
}

// writable waits, within ctx, until the write connection is up. It fails
// at once when the caller's connection is down too (NATS is gone), and
// waits when only this one is behind in reconnecting.
func (s *Store) writable(ctx context.Context) error {
	for !s.wc.IsConnected() {
		if !s.nc.IsConnected() || s.wc.IsClosed() {
			return errNotConnected
		}
		select {
		case <-ctx.Done():
			return errNotConnected
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// apiError is a JetStream API error response.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("jsstore: jetstream: %s (%d/%d)", e.Description, e.Code, e.ErrCode)
}

// JetStream error codes this store acts on.
const (
	errCodeWrongLastSeq  = 10071 // expected last subject sequence did not match
	errCodeWrongLastSeqC = 10164 // the same, as a constant error
)

const (
	hdrSubject = "Nats-Subject"
	hdrSeq     = "Nats-Sequence"
	hdrPending = "Nats-Num-Pending"
	hdrTime    = "Nats-Time-Stamp"
	hdrStatus  = "Status"
)

// lastFor returns the last message on subject subj: its data and stream
// sequence, or seq 0 when there is none.
func (s *Store) lastFor(ctx context.Context, subj string) ([]byte, uint64, error) {
	if s.opts.Replicas > 1 {
		m, err := s.leaderGet(ctx, subj, "", 0)
		return m.Data, m.Seq, err
	}
	ctx, cancel := s.reqCtx(ctx)
	defer cancel()
	m, err := s.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+s.stream+"."+subj, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("jsstore: get %s: %w", subj, err)
	}
	switch m.Header.Get(hdrStatus) {
	case "":
	case "404":
		return nil, 0, nil
	default:
		return nil, 0, fmt.Errorf("jsstore: get %s: status %s %s", subj, m.Header.Get(hdrStatus), m.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(m.Header.Get(hdrSeq), 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("jsstore: get %s: bad sequence header: %w", subj, err)
	}
	return m.Data, seq, nil
}

// nextFor returns the subject and stream sequence of the first message at
// or after from on a subject matching filter, or seq 0 when there is none.
func (s *Store) nextFor(ctx context.Context, filter string, from uint64) (string, uint64, error) {
	subj, seq, _, err := s.nextWhen(ctx, filter, from)
	return subj, seq, err
}

// nextWhen is nextFor, with the time the message was stored.
func (s *Store) nextWhen(ctx context.Context, filter string, from uint64) (string, uint64, time.Time, error) {
	if s.opts.Replicas > 1 {
		m, err := s.leaderGet(ctx, "", filter, max(from, 1))
		return m.Subject, m.Seq, m.Time, err
	}
	ctx, cancel := s.reqCtx(ctx)
	defer cancel()
	body, _ := json.Marshal(directReq{Seq: max(from, 1), NextBySubj: filter})
	m, err := s.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+s.stream, body)
	if err != nil {
		return "", 0, time.Time{}, fmt.Errorf("jsstore: get next %s: %w", filter, err)
	}
	switch m.Header.Get(hdrStatus) {
	case "":
	case "404":
		return "", 0, time.Time{}, nil
	default:
		return "", 0, time.Time{}, fmt.Errorf("jsstore: get next %s: status %s %s", filter, m.Header.Get(hdrStatus), m.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(m.Header.Get(hdrSeq), 10, 64)
	if err != nil {
		return "", 0, time.Time{}, fmt.Errorf("jsstore: get next %s: bad sequence header: %w", filter, err)
	}
	ts, _ := time.Parse(time.RFC3339Nano, m.Header.Get(hdrTime))
	return m.Header.Get(hdrSubject), seq, ts, nil
}

type directReq struct {
	Seq        uint64   `json:"seq,omitempty"`
	NextBySubj string   `json:"next_by_subj,omitempty"`
	Batch      int      `json:"batch,omitempty"`
	MultiLast  []string `json:"multi_last,omitempty"`
}

// each calls fn for the messages on subjects matching filter from stream
// sequence from on, in stream order, reading up to batch messages per
// request, until fn returns false or the messages run out. It returns the
// sequence to continue from. A batch smaller than ReadBatch is a guess
// (see scanHint): each request after the first asks for twice as many,
// so that a guess too small costs a few requests, not one per batch.
func (s *Store) each(ctx context.Context, filter string, from uint64, batch int, fn func(subj string, seq uint64, data []byte) bool) (uint64, error) {
	batch = max(1, min(batch, s.opts.ReadBatch))
	for {
		n, more, next, stop, err := s.directBatch(ctx, directReq{Seq: max(from, 1), NextBySubj: filter, Batch: batch}, fn)
		if err != nil || stop || !more || n == 0 {
			return next, err
		}
		from = next
		batch = min(2*batch, s.opts.ReadBatch)
	}
}

// multiLast calls fn for the last message of each of subjects (literal
// subjects, at most ReadBatch of them) that has one.
func (s *Store) multiLast(ctx context.Context, subjects []string, fn func(subj string, seq uint64, data []byte) bool) error {
	_, _, _, _, err := s.directBatch(ctx, directReq{MultiLast: subjects, Batch: len(subjects)}, fn)
	return err
}

// directBatch makes one batched direct get. more says whether messages
// matching the request were left after the last one sent; next is the
// sequence after the last message delivered.
func (s *Store) directBatch(ctx context.Context, req directReq, fn func(subj string, seq uint64, data []byte) bool) (n int, more bool, next uint64, stop bool, err error) {
	if len(req.MultiLast) == 0 {
		s.asked.Add(int64(req.Batch))
	}
	if s.opts.Replicas > 1 {
		return s.leaderBatch(ctx, req, fn)
	}
	return s.directBatchOnce(ctx, req, fn)
}

// directBatchOnce makes one batched direct get.
func (s *Store) directBatchOnce(ctx context.Context, req directReq, fn func(subj string, seq uint64, data []byte) bool) (n int, more bool, next uint64, stop bool, err error) {
	ctx, cancel := s.reqCtx(ctx)
	defer cancel()
	next = req.Seq
	body, _ := json.Marshal(req)
	inbox := s.nc.NewInbox()
	sub, err := s.nc.SubscribeSync(inbox)
	if err != nil {
		return 0, false, next, false, fmt.Errorf("jsstore: read: %w", err)
	}
	defer sub.Unsubscribe()
	if err := s.nc.PublishRequest("$JS.API.DIRECT.GET."+s.stream, inbox, body); err != nil {
		return 0, false, next, false, fmt.Errorf("jsstore: read: %w", err)
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return n, false, next, false, fmt.Errorf("jsstore: read %q: %w", req.NextBySubj, err)
		}
		switch m.Header.Get(hdrStatus) {
		case "":
		case "404":
			return n, false, next, false, nil
		case "204": // end of batch
			p, _ := strconv.ParseUint(m.Header.Get(hdrPending), 10, 64)
			return n, p > 0, next, false, nil
		case "408":
			return n, false, next, false, fmt.Errorf("jsstore: read %q: %s", req.NextBySubj, m.Header.Get("Description"))
		default:
			return n, false, next, false, fmt.Errorf("jsstore: read %q: status %s %s", req.NextBySubj, m.Header.Get(hdrStatus), m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get(hdrSeq), 10, 64)
		if err != nil {
			return n, false, next, false, fmt.Errorf("jsstore: read: bad sequence header: %w", err)
		}
		n++
		next = seq + 1
		if !fn(m.Header.Get(hdrSubject), seq, m.Data) {
			// The rest of the batch is dropped with the subscription.
			return n, true, next, true, nil
		}
	}
}

// pubMsg is one message of an atomic batch.
type pubMsg struct {
	subj   string
	data   []byte // nil: a tombstone
	cas    bool   // publish only if the subject's last sequence is expect
	expect uint64
	head   *txHead // the session whose head this is, if it is one
	grp    int     // the messages of one session share it (0: none)
	chunk  []entry // a chunk still to encode (data nil until then)
	first  uint64  // the chunk's first sequence number
	rec    string  // the id of the body record this is, if it is one
}

type pubAck struct {
	Stream string    `json:"stream"`
	Seq    uint64    `json:"seq"`
	Count  int       `json:"count"`
	Error  *apiError `json:"error"`
}

// header sets the headers of one message: its compare-and-set and, for a
// tombstone, its time to live.
func (s *Store) header(p *pubMsg, m *nats.Msg) {
	if p.cas {
		m.Header["Nats-Expected-Last-Subject-Sequence"] = []string{strconv.FormatUint(p.expect, 10)}
	}
	if p.data == nil {
		// A tombstone only has to outlive nothing: the subject
		// keeps one message, which it replaced, and an empty
		// subject reads the same as a tombstone.
		m.Header["Nats-TTL"] = []string{s.opts.TombstoneTTL.String()}
	}
}

// publishOne publishes one message (atomic by itself) and returns its
// stream sequence.
func (s *Store) publishOne(ctx context.Context, p pubMsg) (uint64, error) {
	ctx, cancel := s.reqCtx(ctx)
	defer cancel()
	if err := s.writable(ctx); err != nil {
		return 0, err
	}
	m := nats.NewMsg(p.subj)
	m.Data = p.data
	s.header(&p, m)
	r, err := s.wc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return 0, fmt.Errorf("jsstore: publish: %w", err)
	}
	ack, err := parseAck(r.Data, "publish")
	if err != nil {
		return 0, err
	}
	if ack.Seq == 0 {
		return 0, fmt.Errorf("jsstore: publish: acknowledgement without a sequence: %q", r.Data)
	}
	return ack.Seq, nil
}

// parseAck decodes the acknowledgement of a publish (what names it in
// errors): an error JetStream returns for an expected last sequence that
// does not match is errConflict.
func parseAck(data []byte, what string) (pubAck, error) {
	var ack pubAck
	if err := json.Unmarshal(data, &ack); err != nil {
		return pubAck{}, fmt.Errorf("jsstore: %s: bad acknowledgement %q: %w", what, data, err)
	}
	if ack.Error != nil {
		if ack.Error.ErrCode == errCodeWrongLastSeq || ack.Error.ErrCode == errCodeWrongLastSeqC {
			return pubAck{}, fmt.Errorf("%w: %v", errConflict, ack.Error)
		}
		return pubAck{}, ack.Error
	}
	return ack, nil
}

// publishBatch publishes msgs as one JetStream atomic batch: all stored or
// none. It returns the stream sequence of the last message.
func (s *Store) publishBatch(ctx context.Context, msgs []pubMsg) (uint64, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	ctx, cancel := s.reqCtx(ctx)
	defer cancel()
	if err := s.writable(ctx); err != nil {
		return 0, err
	}
	id := nuid.Next()
	for i := range msgs {
		p := &msgs[i]
		m := nats.NewMsg(p.subj)
		m.Data = p.data
		m.Header["Nats-Batch-Id"] = []string{id}
		m.Header["Nats-Batch-Sequence"] = []string{strconv.Itoa(i + 1)}
		s.header(p, m)
		if i < len(msgs)-1 {
			if err := s.wc.PublishMsg(m); err != nil {
				return 0, fmt.Errorf("jsstore: publish: %w", err)
			}
			continue
		}
		m.Header["Nats-Batch-Commit"] = []string{"1"}
		r, err := s.wc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return 0, fmt.Errorf("jsstore: commit: %w", err)
		}
		ack, err := parseAck(r.Data, "commit")
		if err != nil {
			return 0, err
		}
		if ack.Count != len(msgs) {
			return 0, fmt.Errorf("jsstore: commit: %d of %d messages acknowledged", ack.Count, len(msgs))
		}
		return ack.Seq, nil
	}
	return 0, nil
}

// purge removes every message on subjects matching filter below stream
// sequence before.
func (s *Store) purge(ctx context.Context, filter string, before uint64) error {
	ctx, cancel := s.reqCtx(ctx)
	defer cancel()
	body, _ := json.Marshal(struct {
		Filter string `json:"filter"`
		Seq    uint64 `json:"seq"`
	}{filter, before})
	r, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.PURGE."+s.stream, body)
	if err != nil {
		return fmt.Errorf("jsstore: purge %s: %w", filter, err)
	}
	var resp struct {
		Error *apiError `json:"error"`
	}
	if err := json.Unmarshal(r.Data, &resp); err != nil {
		return fmt.Errorf("jsstore: purge %s: %w", filter, err)
	}
	if resp.Error != nil {
		return resp.Error
	}
	return nil
}

func (s *Store) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.opts.Timeout)
}

// lastSeq is the stream's last sequence: every message stored from now on
// is after it.
func (s *Store) lastSeq(ctx context.Context) (uint64, error) {
	ctx, cancel := s.reqCtx(ctx)
	defer cancel()
	r, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.INFO."+s.stream, nil)
	if err != nil {
		return 0, fmt.Errorf("jsstore: stream info: %w", err)
	}
	var resp struct {
		State struct {
			LastSeq uint64 `json:"last_seq"`
		} `json:"state"`
		Error *apiError `json:"error"`
	}
	if err := json.Unmarshal(r.Data, &resp); err != nil {
		return 0, fmt.Errorf("jsstore: stream info: %w", err)
	}
	if resp.Error != nil {
		return 0, resp.Error
	}
	return resp.State.LastSeq, nil
}
