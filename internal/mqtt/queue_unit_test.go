package mqtt

import (
	"strconv"
	"strings"
	"testing"
)

// pushFront returns a popped delivery to the head, before later ones, and
// keeps the byte count; it works whether or not pop left room at the head.
func TestDeliveryQueuePushFront(t *testing.T) {
	mk := func(i int) delivery {
		return delivery{msg: &Message{Topic: "t", Payload: []byte(strconv.Itoa(i))}, qos: 1}
	}
	var q deliveryQueue
	q.pushFront(mk(0)) // empty queue, head 0
	for i := 1; i <= 3; i++ {
		q.push(mk(i))
	}
	want := q.bytes
	d := q.pop()
	four := mk(4)
	q.push(four) // arrives while d is out
	q.pushFront(d)
	if q.bytes != want+four.size() {
		t.Fatalf("bytes %d, want %d", q.bytes, want+four.size())
	}
	d = q.pop()
	q.pop()
	q.pushFront(d) // head > 0 again, after two pops
	var got []string
	for q.len() > 0 {
		got = append(got, string(q.pop().msg.Payload))
	}
	if g := strings.Join(got, ","); g != "0,2,3,4" {
		t.Fatalf("order %s, want 0,2,3,4", g)
	}
	if q.bytes != 0 {
		t.Fatalf("bytes %d after draining, want 0", q.bytes)
	}
}
