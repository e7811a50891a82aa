package pebblestore

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/mqttd/mqttd/internal/store"
)

// The test binary re-executed as a child process: PEBBLESTORE_CHILD names
// the role, PEBBLESTORE_DIR the store.
const (
	childEnv = "PEBBLESTORE_CHILD"
	dirEnv   = "PEBBLESTORE_DIR"
)

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "hold":
		childHold(os.Getenv(dirEnv))
	case "append":
		childAppend(os.Getenv(dirEnv))
	}
	os.Exit(3)
}

// childHold opens the store, says "ready" and keeps it until stdin closes.
func childHold(dir string) {
	s, err := Open(dir, Options{Logger: quiet()})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	s.Close()
	os.Exit(0)
}

// childAppend appends from 8 goroutines with sync durability forever and
// prints "seq payload" for every commit that returned, until killed.
func childAppend(dir string) {
	s, err := Open(dir, Options{Durability: store.Sync, Logger: quiet()})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				payload := fmt.Sprintf("p%d-%d-%d", os.Getpid(), g, i)
				ds := []store.Delivery{{ClientID: "sub", QoS: 1}}
				var b store.Batch
				b.Enqueue(&store.MessageRecord{Topic: "k", Payload: []byte(payload), QoS: 1}, ds)
				if err := s.Commit(context.Background(), &b); err != nil {
					fmt.Println("error:", err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(w, "%d %s\n", ds[0].Seq, payload)
				w.Flush() // the line leaves before the next commit starts
				mu.Unlock()
			}
		}()
	}
	select {}
}

type child struct {
	cmd   *exec.Cmd
	out   *bufio.Scanner
	stdin io.WriteCloser
}

func startChild(t *testing.T, role, dir string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, dirEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	stdin, err := cmd.StdinPipe()
	must(t, err)
	cmd.Stderr = os.Stderr
	must(t, cmd.Start())
	c := &child{cmd: cmd, out: bufio.NewScanner(stdout), stdin: stdin}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return c
}

func (c *child) line(t *testing.T) string {
	t.Helper()
	if !c.out.Scan() {
		t.Fatalf("child ended: %v", c.out.Err())
	}
	return c.out.Text()
}

func parseAck(t *testing.T, line string) (uint64, string) {
	var seq uint64
	var payload string
	if _, err := fmt.Sscanf(line, "%d %s", &seq, &payload); err != nil {
		t.Fatalf("child said %q", line)
	}
	return seq, payload
}
