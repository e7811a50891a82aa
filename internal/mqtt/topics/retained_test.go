package topics

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// retainedTopics returns the topics Match reports for filter, sorted.
func retainedTopics(r *Retained[int], filter string) []string {
	var got []string
	r.Match(filter, func(topic string, _ int) { got = append(got, topic) })
	sort.Strings(got)
	return got
}

func TestRetainedSetGetDelete(t *testing.T) {
	r := NewRetained[int]()
	if _, ok := r.Get("a/b"); ok {
		t.Fatal("Get on an empty store found something")
	}
	r.Set("a/b", 1)
	r.Set("a/b", 2) // replaces
	r.Set("a", 3)
	r.Set("a/b/c", 4)
	if n := r.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
	for topic, want := range map[string]int{"a/b": 2, "a": 3, "a/b/c": 4} {
		if v, ok := r.Get(topic); !ok || v != want {
			t.Errorf("Get(%q) = %d, %v, want %d, true", topic, v, ok, want)
		}
	}
	for _, topic := range []string{"a/", "a/b/", "b", "", "a/b/c/d", "A/b"} {
		if _, ok := r.Get(topic); ok {
			t.Errorf("Get(%q) found a message never set", topic)
		}
	}
	if r.Delete("a/b/c/d") || r.Delete("a/") || r.Delete("x") {
		t.Error("Delete of an unset topic reported true")
	}
	if !r.Delete("a/b") {
		t.Fatal("Delete(a/b) = false")
	}
	if r.Delete("a/b") {
		t.Error("second Delete(a/b) = true")
	}
	if _, ok := r.Get("a/b"); ok {
		t.Error("Get after Delete found the message")
	}
	if v, ok := r.Get("a/b/c"); !ok || v != 4 {
		t.Error("Delete(a/b) disturbed a/b/c")
	}
	if got := fmt.Sprint(retainedTopics(r, "#")); got != "[a a/b/c]" {
		t.Errorf("Match(#) = %s, want [a a/b/c]", got)
	}
	r.Delete("a/b/c")
	r.Delete("a")
	if n, nodes := r.Len(), r.nodeCount(); n != 0 || nodes != 0 {
		t.Errorf("after deleting everything: Len = %d, nodes = %d, want 0, 0", n, nodes)
	}
}

func TestRetainedPruning(t *testing.T) {
	r := NewRetained[int]()
	topics := make([]string, 10000)
	for i := range topics {
		topics[i] = fmt.Sprintf("site/%d/dev/%d/%s", i%100, i, []string{"temp", "", "$x"}[i%3])
		r.Set(topics[i], i)
	}
	r.Set("$SYS/uptime", 1)
	for j := range topics {
		i := (j * 7919) % len(topics)
		if !r.Delete(topics[i]) {
			t.Fatalf("Delete(%q) = false", topics[i])
		}
	}
	r.Delete("$SYS/uptime")
	if n, nodes := r.Len(), r.nodeCount(); n != 0 || nodes != 0 {
		t.Fatalf("Len = %d, nodes = %d, want 0, 0", n, nodes)
	}
}

func TestRetainedMatch(t *testing.T) {
	r := NewRetained[int]()
	for i, topic := range []string{
		"sport", "sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking",
		"sport/golf", "sport/", "/finance", "finance", "$SYS/monitor/Clients", "$SYS",
	} {
		r.Set(topic, i)
	}
	for filter, want := range map[string]string{
		"sport/#":        "[sport sport/ sport/golf sport/tennis sport/tennis/player1 sport/tennis/player1/ranking]",
		"sport/+":        "[sport/ sport/golf sport/tennis]",
		"sport/tennis/+": "[sport/tennis/player1]",
		"+":              "[finance sport]",
		"+/+":            "[/finance sport/ sport/golf sport/tennis]",
		"#":              "[/finance finance sport sport/ sport/golf sport/tennis sport/tennis/player1 sport/tennis/player1/ranking]",
		"$SYS/#":         "[$SYS $SYS/monitor/Clients]",
		"+/monitor/+":    "[]",
		"sport/tennis/#": "[sport/tennis sport/tennis/player1 sport/tennis/player1/ranking]",
		"nothing/#":      "[]",
	} {
		if got := fmt.Sprint(retainedTopics(r, filter)); got != want {
			t.Errorf("Match(%q) = %s, want %s", filter, got, want)
		}
	}
}

// TestRetainedMatchOutsideLock checks fn runs without the lock: it calls
// Set and Delete on the same store, which would deadlock otherwise, and a
// concurrent Set completes while fn is still running.
func TestRetainedMatchOutsideLock(t *testing.T) {
	r := NewRetained[int]()
	r.Set("a/1", 1)
	r.Set("a/2", 2)
	calls := 0
	r.Match("a/+", func(topic string, v int) {
		calls++
		r.Set(topic+"/child", v)
		r.Delete(topic)
	})
	if calls != 2 || r.Len() != 2 {
		t.Fatalf("calls = %d, Len = %d, want 2, 2", calls, r.Len())
	}

	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Match("a/1/child", func(string, int) {
			close(entered)
			<-release // a slow callback
		})
	}()
	<-entered
	setDone := make(chan struct{})
	go func() { r.Set("b", 1); close(setDone) }()
	select {
	case <-setDone:
	case <-time.After(5 * time.Second):
		t.Error("Set blocked while a Match callback was running")
	}
	close(release)
	<-done
}

func TestRetainedConcurrent(t *testing.T) {
	r := NewRetained[int]()
	r.Set("s/stable/x", -1)
	var stop atomic.Bool
	var writers, readers sync.WaitGroup
	for w := range 3 {
		writers.Go(func() {
			for i := 0; !stop.Load(); i++ {
				topic := fmt.Sprintf("s/%d/%d", w, i%40)
				r.Set(topic, i)
				if i%2 == 0 {
					r.Delete(topic)
				}
			}
		})
	}
	for range 3 {
		readers.Go(func() {
			for range 500 {
				found := false
				r.Match("s/+/x", func(topic string, v int) {
					if topic == "s/stable/x" && v == -1 {
						found = true
					}
				})
				if !found {
					t.Error("stable retained message missed during churn")
					return
				}
				r.Get("s/0/1")
				r.Match("#", func(string, int) {})
				_ = r.Len()
			}
		})
	}
	readers.Wait()
	stop.Store(true)
	writers.Wait()
}

func TestRetainedGetAllocs(t *testing.T) {
	r := NewRetained[int]()
	r.Set("site/1/dev/2/temp", 1)
	if n := testing.AllocsPerRun(100, func() { r.Get("site/1/dev/2/temp") }); n != 0 {
		t.Errorf("Get allocates %v times per call, want 0", n)
	}
}

// TestRetainedUsage: the byte total follows sets, replacements and deletes,
// so a bound on it never needs a walk.
func TestRetainedUsage(t *testing.T) {
	r := NewRetainedSized(func(topic string, v string) int { return len(topic) + len(v) })
	check := func(step string, count, bytes int) {
		t.Helper()
		if c, b := r.Usage(); c != count || b != bytes {
			t.Fatalf("%s: Usage() = %d, %d; want %d, %d", step, c, b, count, bytes)
		}
	}
	check("empty", 0, 0)
	r.Set("a/b", "12345")
	check("set", 1, 8)
	r.Set("a/b", "1")
	check("replace smaller", 1, 4)
	r.Set("c", "xyz")
	check("second topic", 2, 8)
	if !r.Delete("a/b") {
		t.Fatal("Delete(a/b) = false")
	}
	check("delete", 1, 4)
	if r.Delete("a/b") {
		t.Fatal("second Delete(a/b) = true")
	}
	check("delete again", 1, 4)
	r.Delete("c")
	check("all deleted", 0, 0)
	if c, b := NewRetained[string]().Usage(); c != 0 || b != 0 {
		t.Fatalf("unsized Usage() = %d, %d", c, b)
	}
}
