package storetest

import (
	"fmt"
	"math/rand/v2"
	"reflect"

	"github.com/mqttd/mqttd/internal/store"
)

// State is everything a store holds for the generator's id space.
type State struct {
	Sessions []*store.SessionRecord            // in client id order
	Retained []*store.MessageRecord            // in topic order
	Queues   map[string][]store.Queued         // by client id, read with Scan
	Lens     map[string]int                    // by client id, from QueueLen, to check it against Queues
	Inflight map[string][]store.InflightRecord // by client id
	QoS2     map[string][]uint16               // by client id: inbound QoS 2 packet ids
	Messages int                               // distinct message bodies (store.Counter), or 0
}

// Dump reads the full state of s through the store.Store interface alone,
// so the model and any implementation are read the same way.
func Dump(s store.Store) (*State, error) {
	st := &State{Queues: map[string][]store.Queued{}, Lens: map[string]int{}, Inflight: map[string][]store.InflightRecord{}, QoS2: map[string][]uint16{}}
	if err := s.Sessions(func(r *store.SessionRecord) error { st.Sessions = append(st.Sessions, r); return nil }); err != nil {
		return nil, err
	}
	if err := s.Retained(func(m *store.MessageRecord) error { st.Retained = append(st.Retained, m); return nil }); err != nil {
		return nil, err
	}
	byID := make(map[string]*store.SessionRecord, len(st.Sessions))
	for _, r := range st.Sessions {
		byID[r.ClientID] = r
	}
	for _, id := range clients {
		// Session reads one record: the same as Sessions lists, or nil.
		one, err := s.Session(id)
		if err != nil {
			return nil, err
		}
		if want := byID[id]; !reflect.DeepEqual(one, want) {
			return nil, fmt.Errorf("Session(%q) = %+v, Sessions lists %+v", id, one, want)
		}
	}
	for _, id := range clients {
		q, err := s.Scan(id, 0, 1<<30)
		if err != nil {
			return nil, err
		}
		st.Queues[id] = q
		if st.Lens[id], err = s.QueueLen(id); err != nil {
			return nil, err
		}
		if st.Inflight[id], err = s.Inflight(id); err != nil {
			return nil, err
		}
		if st.QoS2[id], err = s.QoS2In(id); err != nil {
			return nil, err
		}
	}
	if c, ok := s.(store.Counter); ok {
		n, err := c.MessageCount()
		if err != nil {
			return nil, err
		}
		st.Messages = n
	}
	return st, nil
}

// compare returns "" when model and real hold the same state, else what
// differs. It also checks one random page of a queue, so that Scan's from
// and limit are exercised.
func compare(model, real store.Store, r *rand.Rand) string {
	ms, err := Dump(model)
	if err != nil {
		return "model: " + err.Error()
	}
	rs, err := Dump(real)
	if err != nil {
		return "store: " + err.Error()
	}
	if !reflect.DeepEqual(ms, rs) {
		return diffState(ms, rs)
	}
	id := clients[r.IntN(len(clients))]
	from, limit := r.Uint64N(20), 1+r.IntN(4)
	mp, err1 := model.Scan(id, from, limit)
	rp, err2 := real.Scan(id, from, limit)
	if err1 != nil || err2 != nil || !reflect.DeepEqual(mp, rp) {
		return fmt.Sprintf("Scan(%q, %d, %d): model %+v %v, store %+v %v", id, from, limit, mp, err1, rp, err2)
	}
	return ""
}

func diffState(m, r *State) string {
	mv, rv := reflect.ValueOf(*m), reflect.ValueOf(*r)
	for i := 0; i < mv.NumField(); i++ {
		if !reflect.DeepEqual(mv.Field(i).Interface(), rv.Field(i).Interface()) {
			return fmt.Sprintf("%s differ:\nmodel %+v\nstore %+v", mv.Type().Field(i).Name, mv.Field(i).Interface(), rv.Field(i).Interface())
		}
	}
	return "states differ"
}
