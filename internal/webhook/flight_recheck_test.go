package webhook

import (
	"sync"
	"testing"

	"github.com/mqttd/mqttd/internal/hooks"
)

// A caller that missed the cache just before an identical call stored its
// answer, and joins the flights only once that call has finished, takes
// the stored answer: a storm of identical CONNECTs costs the plugin one
// request, however its callers interleave.
func TestMissJustBeforeAnswerIsStoredMakesNoSecondCall(t *testing.T) {
	f := newFake(t)
	f.handle("/authenticate", answer(200, `{"result":"allow","ttl":60}`))
	p := newPlugin(t, f.url(), nil)

	missed, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	p.testMissed = func() {
		first := false
		once.Do(func() { first = true })
		if first { // the late caller: it has missed; hold it until the first call is over
			close(missed)
			<-release
		}
	}
	late := make(chan hooks.Decision, 1)
	go func() {
		d, err := auth(p, mqttClient("c", "u"), "pw")
		if err != nil {
			t.Errorf("late caller: %v", err)
		}
		late <- d
	}()
	<-missed
	if d, err := auth(p, mqttClient("c", "u"), "pw"); err != nil || d.Result != hooks.Allow {
		t.Fatalf("first caller: %+v, %v", d, err)
	}
	close(release)
	if d := <-late; d.Result != hooks.Allow {
		t.Fatalf("late caller: %+v, want allow", d)
	}
	if n := f.count("/authenticate"); n != 1 {
		t.Fatalf("%d calls to /authenticate, want 1: the late caller did not look at the cache again", n)
	}
}
