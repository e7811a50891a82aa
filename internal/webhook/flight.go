package webhook

import (
	"context"
	"errors"
	"sync"

	"golang.org/x/sync/singleflight"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/webhook/cache"
)

// flights collapses identical concurrent cache misses into one HTTP call
// (a reconnect storm of a thousand clients with the same credentials costs
// the plugin one request), with two things singleflight alone lacks:
//
//   - a caller whose ctx ends (its MQTT client went away) stops waiting at
//     once, without cancelling the call the others still wait for;
//   - when the last waiter has gone the call is cancelled, so a plugin is
//     not kept busy answering nobody.
type flights struct {
	group singleflight.Group
	root  context.Context // ends at Close; every call runs under it
	wg    sync.WaitGroup  // calls still running, for Close

	mu     sync.Mutex
	m      map[cache.Key]*flight
	closed bool // no call starts once set; guarded by mu, so wg.Add never races wg.Wait
}

var errClosed = errors.New("the plugin is closed (the broker is shutting down or reloading its config)")

// flight is the context shared by the waiters of one key.
type flight struct {
	ctx     context.Context
	cancel  context.CancelFunc
	waiters int
}

func newFlights(root context.Context) *flights {
	return &flights{root: root, m: map[cache.Key]*flight{}}
}

// do runs fn once for all concurrent callers of key and returns its
// result, or ctx's error as soon as ctx ends.
func (f *flights) do(ctx context.Context, key cache.Key, fn func(context.Context) (hooks.Decision, error)) (hooks.Decision, error) {
	f.mu.Lock()
	fl := f.m[key]
	if fl == nil {
		c, cancel := context.WithCancel(f.root)
		fl = &flight{ctx: c, cancel: cancel}
		f.m[key] = fl
	}
	fl.waiters++
	f.mu.Unlock()
	defer f.leave(key, fl)

	ch := f.group.DoChan(string(key[:]), func() (any, error) {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return hooks.Decision{}, errClosed
		}
		f.wg.Add(1)
		f.mu.Unlock()
		defer f.wg.Done()
		return fn(fl.ctx)
	})
	select {
	case r := <-ch:
		d, _ := r.Val.(hooks.Decision)
		return d, r.Err
	case <-ctx.Done():
		return hooks.Decision{}, ctx.Err()
	}
}

// close stops new calls and waits for the running ones, which end soon
// once root is done.
func (f *flights) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.wg.Wait()
}

// leave drops a waiter; the last one out cancels the call and makes the
// group forget it, so a caller arriving later starts a fresh call instead
// of joining the cancelled one.
func (f *flights) leave(key cache.Key, fl *flight) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl.waiters--; fl.waiters == 0 {
		fl.cancel()
		delete(f.m, key)
		f.group.Forget(string(key[:]))
	}
}
