package webhook

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// writeLog is a net.Conn that records the size of every Write.
type writeLog struct {
	net.Conn
	mu    *sync.Mutex
	sizes *[]int
}

func (w writeLog) Write(b []byte) (int, error) {
	w.mu.Lock()
	*w.sizes = append(*w.sizes, len(b))
	w.mu.Unlock()
	return w.Conn.Write(b)
}

// TestRequestBodyGoesInOneWrite: a batch-sized POST body reaches the
// connection in one Write, not in net/http's 32 KiB pieces, and arrives
// whole; decision-sized bodies and the answers are unaffected.
func TestRequestBodyGoesInOneWrite(t *testing.T) {
	var got [][]byte
	var gotMu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotMu.Lock()
		got = append(got, b)
		gotMu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c, err := newClient(testOptions(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	var mu sync.Mutex
	var sizes []int
	d := &net.Dialer{}
	c.transport.DialContext = dialWholeBodies(func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		return writeLog{conn, &mu, &sizes}, err
	})
	big := bytes.Repeat([]byte(`{"id":"x","seq":1},`), 20000) // 380 KB
	small := []byte(`{"client_id":"c"}`)
	for _, body := range [][]byte{big, small, big} {
		r, err := c.do(context.Background(), http.MethodPost, "/events", body)
		if err != nil || r.status != http.StatusNoContent {
			t.Fatalf("status %v, error %v", r, err)
		}
	}
	if len(got) != 3 || !bytes.Equal(got[0], big) || !bytes.Equal(got[1], small) || !bytes.Equal(got[2], big) {
		t.Fatalf("the plugin got bodies of %d requests, not the ones sent", len(got))
	}
	mu.Lock()
	defer mu.Unlock()
	whole := 0
	for _, n := range sizes {
		if n > 32<<10 {
			whole++
			if n > len(big) || n < len(big)-4096 { // the headers' buffer may take the body's first bytes
				t.Errorf("a write of %d bytes for a body of %d", n, len(big))
			}
		}
	}
	if whole != 2 {
		t.Fatalf("writes %v: want the two big bodies in one write each", sizes)
	}
}

func TestWholeBodyConnFallsBack(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go io.Copy(io.Discard, b)
	c := wholeBodyConn{a}
	// A reader that is not a limited bytes.Reader, and one whose limit is
	// shorter than what it holds, go through io.Copy and stop at the limit.
	for _, r := range []io.Reader{bytes.NewBufferString("hello"), io.LimitReader(bytes.NewReader([]byte("hello, world")), 5)} {
		if n, err := c.ReadFrom(r); n != 5 || err != nil {
			t.Fatalf("ReadFrom = %d, %v", n, err)
		}
	}
}
