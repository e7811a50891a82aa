package hooks

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// probe watches one plugin set for the retirement rule: its idle (which
// closes the plugins a Reload dropped) never runs while a call is inside.
type probe struct {
	inside atomic.Int64 // calls between acquire and release, doing work
	idled  atomic.Int64 // times idle ran
	late   atomic.Int64 // idle ran while a call was inside, seen by either side
}

// enter and leave bracket a holder's work; idle is the state's idle. Each
// side writes its own word before reading the other's, so whichever runs
// second sees the first (the atomics are sequentially consistent): a
// violation is counted however the two interleave.
func (p *probe) enter() {
	p.inside.Add(1)
	if p.idled.Load() != 0 {
		p.late.Add(1)
	}
}

func (p *probe) leave() { p.inside.Add(-1) }

func (p *probe) idle() {
	p.idled.Add(1)
	if p.inside.Load() != 0 {
		p.late.Add(1)
	}
}

// releaseDeep releases st from a frame a few KiB further down the stack,
// as a call returning through the plugin chain does: whatever striping
// the hold uses must not depend on release running where hold ran.
//
//go:noinline
func releaseDeep(st *state, depth int) {
	var pad [1024]byte
	if depth > 0 {
		releaseDeep(st, depth-1)
		runtime.KeepAlive(&pad)
		return
	}
	st.release()
}

// Many calls hold the current plugin set, take nested holds that other
// goroutines give back (as the concurrent auth chain does per plugin), and
// release from another stack depth, while states are swapped and retired
// as fast as Reload could: no state's idle runs while a call is inside
// it, and every retired state idles exactly once when its calls are done.
func TestRetiredStateNeverIdlesUnderAHolder(t *testing.T) {
	m := &Manager{}
	var probes sync.Map // *state -> *probe
	fresh := func() *state {
		st, err := m.compile(Options{})
		if err != nil {
			t.Fatal(err)
		}
		probes.Store(st, &probe{})
		return st
	}
	probeOf := func(st *state) *probe { p, _ := probes.Load(st); return p.(*probe) }
	m.cur.Store(fresh())

	stop := make(chan struct{})
	handoff := make(chan *state, 64) // nested holds, released on another goroutine
	var holders, releasers sync.WaitGroup
	var calls atomic.Int64
	for range 2 {
		releasers.Go(func() {
			for st := range handoff {
				st.release()
			}
		})
	}
	for g := range 6 {
		holders.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				st := m.acquire()
				p := probeOf(st)
				p.enter()
				for range 1 + i%3 {
					st.hold()
					handoff <- st
				}
				if i%16 == 0 {
					runtime.Gosched() // a slow call: let a retire run meanwhile
				}
				p.leave()
				if (g+i)%2 == 0 {
					st.release()
				} else {
					releaseDeep(st, 1+i%4)
				}
				calls.Add(1)
			}
		})
	}

	var retired []*state
	deadline := time.Now().Add(bound / 2)
	for range 20000 {
		if time.Now().After(deadline) {
			break
		}
		for seen := calls.Load(); calls.Load() < seen+2 && time.Now().Before(deadline); {
			runtime.Gosched()
		}
		old := m.cur.Load()
		m.cur.Store(fresh()) // as Reload: swap, then retire the old set
		old.retire(probeOf(old).idle)
		retired = append(retired, old)
	}
	close(stop)
	holders.Wait()
	close(handoff)
	releasers.Wait()

	if calls.Load() == 0 || len(retired) < 100 {
		t.Fatalf("%d calls over %d retired states: too little traffic to prove anything", calls.Load(), len(retired))
	}
	for i, st := range retired {
		p := probeOf(st)
		if p.late.Load() != 0 || p.idled.Load() != 1 {
			t.Fatalf("state %d of %d: idle ran %d times, %d of them while a call was inside; want once, never inside",
				i, len(retired), p.idled.Load(), p.late.Load())
		}
	}
	t.Logf("%d calls over %d retired states", calls.Load(), len(retired))
}
