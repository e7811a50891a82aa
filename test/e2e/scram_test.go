package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"

	"github.com/mqttd/mqttd/internal/hooks"
	"github.com/mqttd/mqttd/internal/hooks/hookstest"
	"github.com/mqttd/mqttd/internal/webhook"
)

// scramClient is one SCRAM-SHA-256 exchange of a client (RFC 5802): first()
// is the data of CONNECT (or AUTH 0x19), final answers the server-first
// message with the proof, and verify checks the server's signature.
type scramClient struct {
	user, password  string
	clientFirstBare string
	serverSignature []byte
}

func newScramClient(user, password string) *scramClient {
	nonce := make([]byte, 18)
	rand.Read(nonce)
	return &scramClient{user: user, password: password,
		clientFirstBare: "n=" + user + ",r=" + base64.StdEncoding.EncodeToString(nonce)}
}

// scramAuther is paho.golang's Auther for a connection: it answers the
// server's AUTH 0x18 for the exchange under way, which a test replaces
// (set) before each re-authentication. paho calls it on its own goroutines.
type scramAuther struct {
	mu  sync.Mutex
	cur *scramClient
}

func (a *scramAuther) set(s *scramClient) {
	a.mu.Lock()
	a.cur = s
	a.mu.Unlock()
}

func (a *scramAuther) Authenticate(in *pahov5.Auth) *pahov5.Auth {
	a.mu.Lock()
	defer a.mu.Unlock()
	return &pahov5.Auth{ReasonCode: 0x18, Properties: &pahov5.AuthProperties{
		AuthMethod: "SCRAM-SHA-256", AuthData: []byte(a.cur.final(string(in.Properties.AuthData)))}}
}

func (a *scramAuther) Authenticated() {}

func (s *scramClient) first() []byte { return []byte("n,," + s.clientFirstBare) }

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// final computes client-final for serverFirst and remembers the signature
// the server must send back.
func (s *scramClient) final(serverFirst string) string {
	attrs := map[string]string{}
	for _, p := range strings.Split(serverFirst, ",") {
		attrs[p[:1]] = p[2:]
	}
	salt, _ := base64.StdEncoding.DecodeString(attrs["s"])
	var iter int
	fmt.Sscan(attrs["i"], &iter)
	salted, _ := pbkdf2.Key(sha256.New, s.password, salt, iter, 32)
	clientKey := hmacSHA256(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	withoutProof := "c=biws,r=" + attrs["r"]
	authMessage := s.clientFirstBare + "," + serverFirst + "," + withoutProof
	sig := hmacSHA256(stored[:], authMessage)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	s.serverSignature = hmacSHA256(hmacSHA256(salted, "Server Key"), authMessage)
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)
}

// verify checks server-final ("v=<signature>").
func (s *scramClient) verify(t *testing.T, serverFinal []byte) {
	t.Helper()
	want := "v=" + base64.StdEncoding.EncodeToString(s.serverSignature)
	if string(serverFinal) != want {
		t.Fatalf("server-final %q, want %q: the server did not prove it knows the user's keys", serverFinal, want)
	}
}

// scramUsersFile writes a users file with npm run add-scram-user's script,
// the password on its standard input, as an operator would.
func scramUsersFile(t *testing.T, node, hooksDir, user, password string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "users.txt")
	cmd := exec.Command(node, "bin/add-user.js", "--scram", file, user)
	cmd.Dir = hooksDir
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("add-scram-user: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(file)
	if !bytes.HasPrefix(b, []byte(user+":$scram-sha-256$")) || bytes.Contains(b, []byte(password)) {
		t.Fatalf("users file %q", b)
	}
	return file
}

// connectScram connects with SCRAM-SHA-256 as user.
func connectScram(t *testing.T, addr, id, user string, s *scramClient) (*pahov5.Client, *scramAuther, *pahov5.Connack, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	a := &scramAuther{cur: s}
	c := pahov5.NewClient(pahov5.ClientConfig{Conn: conn, PacketTimeout: packetWait, AuthHandler: a})
	ctx, cancel := context.WithTimeout(context.Background(), packetWait)
	defer cancel()
	ack, err := c.Connect(ctx, &pahov5.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
		Username: user, UsernameFlag: true,
		Properties: &pahov5.ConnectProperties{AuthMethod: "SCRAM-SHA-256", AuthData: s.first(), RequestProblemInfo: true}})
	if err != nil {
		conn.Close()
		return nil, a, ack, err
	}
	t.Cleanup(func() { c.Disconnect(&pahov5.Disconnect{}) })
	return c, a, ack, nil
}

// SCRAM-SHA-256 end to end: hooks-node (a real process, its users file
// written by add-scram-user) decides an MQTT 5 enhanced authentication that
// paho.golang drives through its Auther, over a broker whose auth plugin is
// hooks-node over signed HTTP. The exchange succeeds and the client checks
// the server's signature; a wrong password is refused with 0x86; a
// re-authentication succeeds with a fresh exchange, and one with a wrong
// password ends the connection.
func TestScramEnhancedAuth(t *testing.T) {
	root := repoRoot(t)
	node := needHooksNode(t, root)
	hooksDir := filepath.Join(root, "examples", "hooks-node")
	users := scramUsersFile(t, node, hooksDir, "alice", "correct horse")
	secret := randomSecret(t)
	env := append(os.Environ(), "PORT=0", "HOST=127.0.0.1", "USERS_FILE="+users, "HOOKS_SECRET="+secret)
	hn := startProc(t, "hooks-node", hooksDir, env, node, "src/main.js")
	port := fmt.Sprint(hn.waitLog(t, func(m map[string]any) bool { return m["msg"] == "listening" })["port"])

	p, err := webhook.New(webhook.Options{Alias: "hooks", URL: "http://127.0.0.1:" + port, Secret: secret, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m, err := hooks.New(hooks.Options{
		Plugins: map[string]hooks.PluginSpec{"hooks": {Plugin: p, Type: "http"}},
		Auth:    hooks.AuthOptions{Plugins: []string{"hooks"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, addr := hookstest.Serve(t, m)

	s := newScramClient("alice", "correct horse")
	c, auther, ack, err := connectScram(t, addr, "scram-1", "alice", s)
	if err != nil {
		t.Fatalf("SCRAM login: %v (%+v)", err, ack)
	}
	if ack.Properties.AuthMethod != "SCRAM-SHA-256" {
		t.Fatalf("CONNACK method %q", ack.Properties.AuthMethod)
	}
	s.verify(t, ack.Properties.AuthData)

	// A wrong password: 0x86 bad user name or password.
	if _, _, ack, err := connectScram(t, addr, "scram-2", "alice", newScramClient("alice", "battery staple")); err == nil || ack == nil || ack.ReasonCode != 0x86 {
		t.Fatalf("wrong password: err %v ack %+v, want CONNACK 0x86", err, ack)
	}

	// Re-authentication: a new exchange on the same connection.
	re := newScramClient("alice", "correct horse")
	reauth := func(r *scramClient) (*pahov5.AuthResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), packetWait)
		defer cancel()
		return c.Authenticate(ctx, &pahov5.Auth{ReasonCode: 0x19,
			Properties: &pahov5.AuthProperties{AuthMethod: "SCRAM-SHA-256", AuthData: r.first()}})
	}
	// paho.golang routes the server's AUTH 0x18 to the AuthHandler it was
	// built with, which now answers for the new exchange.
	auther.set(re)
	resp, err := reauth(re)
	if err != nil || !resp.Success || resp.ReasonCode != 0 {
		t.Fatalf("re-authentication: %+v, %v", resp, err)
	}
	// (paho.golang's AuthResponse leaves out the final AUTH's data, so the
	// server signature of a re-authentication cannot be checked here.)

	// A re-authentication with a wrong password ends the connection.
	wrong := newScramClient("alice", "battery staple")
	auther.set(wrong)
	if resp, err := reauth(wrong); err == nil && resp.Success {
		t.Fatal("re-authentication with a wrong password succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), packetWait)
	defer cancel()
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("the connection survived a failed re-authentication")
	}
}
