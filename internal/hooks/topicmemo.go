package hooks

import (
	"hash/maphash"
	"strings"
	"sync/atomic"

	"github.com/mqttd/mqttd/internal/mqtt"
)

// The per-connection memo of topic checks.
//
// A publisher repeats its topic, and a subscriber receives from a few, so
// almost every publish and receive check repeats one its connection made
// just before. Even answered from a plugin's memo, such a check builds a
// key, hashes it and compares it in a table every connection shares. The
// chain instead keeps, with the connection (mqtt.ClientInfo.Memo), the
// result of its latest in-line rounds, and answers a repeat with a few
// compares on memory only this connection's checks touch.
//
// A kept result holds while all of these do:
//   - the state it was decided on is current (a Reload makes a new one,
//     with a new gen);
//   - the client's Login is the one it was decided with (a
//     re-authentication replaces the Login, whose grants and attributes
//     may change the answer);
//   - every plugin that answered still vouches for its answer
//     (TopicFilterReuse.Reusable: its copy has not expired, and no cache
//     purge or Close came since).
//
// Only rounds decided in line by plugins that can vouch for their answers
// are kept; a plugin's answer after a call, or a stale decision served on
// error, never is, so the on-error policy is applied as before. A repeat
// is counted as the round it replaces would have been: each plugin's
// decision, the plugin's own hit (Reused), the chain's result, and
// shadows are asked as before.

// stateGens numbers the states.
var stateGens atomic.Uint64

// memoWays is the number of results kept per action and connection: a
// subscriber receiving a few topics in turn keeps each, and the way is
// picked from the topic's length and last byte, which costs no hash.
const memoWays = 4

// connMemo is one connection's memo: for publish and receive, memoWays
// results each. Publish checks come from the connection's reader alone;
// receive checks come from every publisher's goroutine, so the slots hold
// immutable rounds behind atomic pointers.
type connMemo struct {
	last [2][memoWays]atomic.Pointer[memoRound]
	// missed is a fingerprint of the last request that missed in each
	// slot. A round is kept only when the same request misses twice in a
	// row, so a subscriber whose topics keep changing does not allocate a
	// round per message that no later check uses.
	missed [2][memoWays]atomic.Uint64
}

// memoRound is one kept result. It is never changed once stored.
type memoRound struct {
	gen     uint64      // the state's
	login   *mqtt.Login // the client's, when decided
	topic   string      // owned: the broker's may alias its read buffer
	qos     byte
	retain  bool
	res     mqtt.TopicResult
	answers []memoAnswer // of st.topics[:len(answers)], in order
}

// memoAnswer is one plugin's in-line answer in a kept round.
type memoAnswer struct {
	result Result
	stamp  Stamp
}

var memoSeed = maphash.MakeSeed()

// memoOf returns c's connMemo, made on first use, or nil when the broker
// gave c no room for one.
func memoOf(c *mqtt.ClientInfo) *connMemo {
	if c.Memo == nil {
		return nil
	}
	if cm, ok := c.Memo.Load().(*connMemo); ok {
		return cm
	}
	c.Memo.CompareAndSwap(nil, new(connMemo))
	cm, _ := c.Memo.Load().(*connMemo)
	return cm
}

// memoSlot is the slot of req, or nil for an action the memo does not
// keep (subscribe checks are rare).
func (cm *connMemo) slot(req *mqtt.TopicRequest) (*atomic.Pointer[memoRound], *atomic.Uint64) {
	var a int
	switch req.Action {
	case mqtt.ActionPublish:
		a = 0
	case mqtt.ActionReceive:
		a = 1
	default:
		return nil, nil
	}
	w := len(req.Topic)
	if w > 0 {
		w ^= int(req.Topic[w-1])
	}
	w %= memoWays
	return &cm.last[a][w], &cm.missed[a][w]
}

// memoized answers req from cm if the connection's kept round for it still
// holds, counting it as that round was counted. It neither locks nor
// allocates.
func (st *state) memoized(cm *connMemo, act int, l *mqtt.Login, req *mqtt.TopicRequest) (mqtt.TopicResult, bool) {
	slot, _ := cm.slot(req)
	if slot == nil {
		return mqtt.TopicResult{}, false
	}
	r := slot.Load()
	if r == nil || r.gen != st.gen || r.login != l || r.topic != req.Topic || r.qos != req.QoS || r.retain != req.Retain {
		return mqtt.TopicResult{}, false
	}
	for i := range r.answers {
		if !st.topics[i].reuse.Reusable(r.answers[i].stamp) {
			return mqtt.TopicResult{}, false
		}
	}
	for i := range r.answers {
		p := st.topics[i]
		p.reuse.Reused()
		p.counters.decisions[act][outcomeOf[r.answers[i].result]].Inc()
	}
	return r.res, true
}

// remember keeps the result of an in-line round that decided req, from
// the answers (results) and stamps of st.topics[:len(results)], unless a
// plugin gave no stamp or this is the first miss of req in its slot.
func (st *state) remember(cm *connMemo, l *mqtt.Login, req *mqtt.TopicRequest, res mqtt.TopicResult, results []Result, stamps []Stamp) {
	slot, missed := cm.slot(req)
	if slot == nil || len(stamps) != len(results) {
		return
	}
	for _, s := range stamps {
		if s == (Stamp{}) {
			return
		}
	}
	fp := maphash.String(memoSeed, req.Topic) ^ uint64(req.QoS)<<1 ^ uint64(flag(req.Retain))
	if missed.Swap(fp) != fp {
		return // first miss: keep it if it comes again
	}
	r := &memoRound{gen: st.gen, login: l, topic: strings.Clone(req.Topic), qos: req.QoS, retain: req.Retain,
		res: res, answers: make([]memoAnswer, len(results))}
	for i := range results {
		r.answers[i] = memoAnswer{result: results[i], stamp: stamps[i]}
	}
	slot.Store(r)
}

func flag(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
