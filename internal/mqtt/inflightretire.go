package mqtt

// retire visits the live entries in send order and retires each one fn
// reports true for, as done does, reclaiming the finished slots at the
// head once the visit is over. It is how a pass over the window gives
// packet ids back (expired messages when a session resumes, shared
// deliveries handed to another member): done cannot be called from each,
// since it moves the head under the visit, and collecting the ids to find
// them again afterwards costs a slice and a search per id. fn sees e
// whole; e's delivery is cleared after fn returns true.
func (r *inflightRing) retire(fn func(e *inflightEntry) bool) {
	for i := 0; i < r.n; i++ {
		e := &r.ents[(r.head+i)%len(r.ents)]
		if e.state != entryDone && fn(e) {
			e.state = entryDone
			e.d = delivery{}
			r.live--
		}
	}
	r.reclaim()
}

// reclaim frees the finished slots at the head, in order, and resets the
// head once the ring is empty. (done's tail, once done calls it.)
func (r *inflightRing) reclaim() {
	for r.n > 0 && r.ents[r.head].state == entryDone {
		r.head = (r.head + 1) % len(r.ents)
		r.n--
	}
	if r.n == 0 {
		r.head = 0
	}
}
